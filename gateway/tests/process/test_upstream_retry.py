"""The real ``ferry-gateway`` in front of a predictor that fails the way a pod going away does
(issue 17): a prediction whose connection is refused, or reset before a single byte of answer,
is sent once more on a fresh connection and the caller sees only the answer; a timeout after the
request was sent, or half an answer, is never sent again. ``ferry_gateway_upstream_retries_total``
says how often, and why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_testing.gateway import Upstream

BIN = Path(sys.executable).parent
PREDICT = "/v1/models/titanic:predict"
BODY = {"instances": [{"pclass": 3, "sex": "male", "age": 22.0}]}


class Gateway:
    def __init__(self, url: str, metrics_url: str) -> None:
        self.url = url
        self.metrics_url = metrics_url

    def predict(self) -> httpx.Response:
        return httpx.post(
            self.url + PREDICT, json=BODY, headers={"x-api-key": DEV_KEYS["dev-pro"]}, timeout=30
        )

    def retries(self, reason: str) -> float:
        text = httpx.get(self.metrics_url, timeout=10).text
        pattern = rf'^ferry_gateway_upstream_retries_total\{{model="titanic",reason="{reason}"\}} (\S+)$'
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(mode="echo", name="active")
    yield up
    up.close()


@pytest.fixture
def gateway(tmp_path: Path, redis_url: str, upstream: Upstream) -> Iterator[Gateway]:
    port, metrics = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    environ.update(
        {
            "REDIS_URL": redis_url,
            "FERRY_DEV_DIR": str(tmp_path / "dev"),
            "FERRY_UPSTREAM_TIMEOUT": "2",
            "FERRY_METRICS_PORT": str(metrics),
        }
    )
    args = ["--dev", "--port", str(port), "--upstream", f"titanic={upstream.url}"]
    with (tmp_path / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "ferry-gateway"), *args], env=environ, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for("ferry-gateway", lambda: proc.poll() is None and port_open(port) and port_open(metrics), 30)
        yield Gateway(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics}/metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_reset_before_any_answer_is_sent_again_and_the_caller_sees_only_the_answer(
    gateway: Gateway, upstream: Upstream
) -> None:
    # Connections are not kept, so the reset one is fresh: not the keep-alive race on a reused one.
    upstream.opts.keep_alive = False
    upstream.opts.faults = ["reset"]
    answer = gateway.predict()
    assert answer.status_code == 200 and answer.json()["upstream"] == "active"
    assert upstream.opts.predictions == 2  # the reset one, and the one that was answered
    assert (gateway.retries("reset"), gateway.retries("keepalive")) == (1, 0)


def test_a_reused_connection_closed_before_any_answer_is_sent_again(
    gateway: Gateway, upstream: Upstream
) -> None:
    assert gateway.predict().status_code == 200  # a pooled connection exists now
    upstream.opts.faults = ["reset"]
    assert gateway.predict().status_code == 200
    assert upstream.opts.predictions == 3
    assert gateway.retries("keepalive") == 1


def test_a_second_reset_is_the_callers_502_after_exactly_two_sends(
    gateway: Gateway, upstream: Upstream
) -> None:
    upstream.opts.faults = ["reset", "reset"]
    answer = gateway.predict()
    assert answer.status_code == 502 and answer.json()["error_code"] == "UPSTREAM_UNAVAILABLE"
    assert upstream.opts.predictions == 2


def test_a_timeout_after_sending_is_never_sent_again(gateway: Gateway, upstream: Upstream) -> None:
    upstream.opts.faults = ["hang"]
    answer = gateway.predict()
    assert answer.status_code == 504 and answer.json()["error_code"] == "UPSTREAM_TIMEOUT"
    assert upstream.opts.predictions == 1
    assert sum(gateway.retries(r) for r in ("refused", "reset", "keepalive")) == 0


def test_half_an_answer_is_never_sent_again(gateway: Gateway, upstream: Upstream) -> None:
    upstream.opts.faults = ["partial"]
    answer = gateway.predict()
    assert answer.status_code == 502
    assert upstream.opts.predictions == 1
    assert sum(gateway.retries(r) for r in ("refused", "reset", "keepalive")) == 0


def test_a_refused_connection_is_tried_once_more_then_refused_to_the_caller(
    gateway: Gateway, upstream: Upstream
) -> None:
    upstream.stop_listening()  # like the pods gone: every new connection is refused
    answer = gateway.predict()
    assert answer.status_code == 502 and answer.json()["error_code"] == "UPSTREAM_UNAVAILABLE"
    assert gateway.retries("refused") == 1
