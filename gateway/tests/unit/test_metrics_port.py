"""Metrics on a port of their own (issue 13, finding 2): the setting, and what each port answers."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
from ferry_common import metricsport
from ferry_gateway import config, metrics
from ferry_gateway.config import ConfigError


def test_metrics_default_to_their_own_port_and_can_be_moved_or_turned_off() -> None:
    s = config.load(environ={})
    assert (s.port, s.metrics_port) == (8080, 9091)
    assert config.load(environ={"FERRY_METRICS_PORT": "9500"}).metrics_port == 9500
    assert (
        config.load(argparse.Namespace(metrics_port=0), environ={"FERRY_METRICS_PORT": "9500"}).metrics_port
        == 0
    )


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        ({}, {"FERRY_METRICS_PORT": "8080"}, "FERRY_METRICS_PORT"),  # the default listen port
        ({"port": 9000, "metrics_port": 9000}, {}, "--metrics-port"),
        ({}, {"PORT": "7000", "FERRY_METRICS_PORT": "7000"}, "FERRY_METRICS_PORT"),
        ({"metrics_port": 70000}, {}, "--metrics-port"),
        ({}, {"FERRY_METRICS_PORT": "many"}, "FERRY_METRICS_PORT"),
    ],
)
def test_metrics_on_the_traffic_port_or_a_bad_port_is_refused_naming_it(
    flags: dict[str, Any], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(argparse.Namespace(**flags), environ=environ)
    assert refused.value.name == named


def _call(method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    app = metricsport.exposition_app(metrics.exposition)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_the_metrics_port_answers_the_exposition_and_nothing_else() -> None:
    metrics.AUTH_FAILURES.labels("unit-test").inc()
    status, headers, body = _call("GET", "/metrics")
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain")
    assert b'ferry_gateway_auth_failures_total{reason="unit-test"}' in body
    assert int(headers[b"content-length"]) == len(body)
    assert _call("HEAD", "/metrics")[::2] == (200, b"")
    assert _call("GET", "/v1/models")[0] == 404
    status, headers, _ = _call("POST", "/metrics")
    assert (status, headers[b"allow"]) == (405, b"GET, HEAD")
