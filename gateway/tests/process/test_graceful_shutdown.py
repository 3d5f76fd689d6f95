"""The real ``ferry-gateway`` stopped as Kubernetes stops a pod (SIGTERM, after the preStop delay):
the request in flight is answered, then the process exits; one that outlasts
``FERRY_SHUTDOWN_TIMEOUT_SECONDS`` does not hold the pod past it (uvicorn's default waits for ever,
and the kubelet's SIGKILL at the end of the grace period would cut every request still open).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_testing.gateway import Upstream

BIN = Path(sys.executable).parent
PREDICT = "/v1/models/titanic:predict"
BODY = {"instances": [{"pclass": 3, "sex": "male", "age": 22.0}]}

Start = Callable[[Upstream, dict[str, str]], tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def start(tmp_path: Path, redis_url: str) -> Iterator[Start]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(upstream: Upstream, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        environ.update({"REDIS_URL": redis_url, "FERRY_DEV_DIR": str(tmp_path / "dev"), **env})
        args = ["--dev", "--port", str(port), "--metrics-port", "0", "--upstream", f"titanic={upstream.url}"]
        with (tmp_path / f"gateway-{port}.log").open("wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "ferry-gateway"), *args], env=environ, stdout=log, stderr=subprocess.STDOUT
            )
        procs.append(proc)
        wait_for("ferry-gateway", lambda: proc.poll() is None and port_open(port), 30)
        return proc, f"http://127.0.0.1:{port}"

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def in_flight(url: str, timeout: float) -> tuple[threading.Thread, list[httpx.Response | BaseException]]:
    out: list[httpx.Response | BaseException] = []

    def call() -> None:
        try:
            out.append(
                httpx.post(
                    url + PREDICT, json=BODY, headers={"x-api-key": DEV_KEYS["dev-pro"]}, timeout=timeout
                )
            )
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, out


def test_the_request_in_flight_at_sigterm_is_answered_then_the_gateway_exits(start: Start) -> None:
    upstream = Upstream(mode="echo", delay=2.0)
    try:
        proc, url = start(upstream, {})
        thread, out = in_flight(url, 30)
        wait_for(
            "the request reached the predictor", lambda: upstream.opts.predictions == 1, 10, interval=0.05
        )
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        answer = out[0]
        assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
        # uvicorn re-raises the signal it handled once it is done, so the status says SIGTERM.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        upstream.close()


def test_a_request_outlasting_the_shutdown_timeout_does_not_hold_the_gateway(start: Start) -> None:
    upstream = Upstream(mode="echo", delay=120.0)  # a predictor that never answers in time
    try:
        proc, url = start(upstream, {"FERRY_SHUTDOWN_TIMEOUT_SECONDS": "1", "FERRY_UPSTREAM_TIMEOUT": "300"})
        thread, _ = in_flight(url, 300)
        wait_for(
            "the request reached the predictor", lambda: upstream.opts.predictions == 1, 10, interval=0.05
        )
        proc.send_signal(signal.SIGTERM)
        # Well inside a pod's grace period; without the bound uvicorn waits for the 120 s answer.
        wait_for("the gateway exited", lambda: proc.poll() is not None, 20, interval=0.2)
        thread.join(30)
    finally:
        upstream.close()
