"""Schemathesis fuzzes the gateway's own OpenAPI document against the running gateway:
no 5xx, no crash, and answers that match what the document promises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from ferry_gateway.apidocs import spec
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index
from hypothesis import HealthCheck, settings

KEYS = Keys()


@pytest.fixture(scope="module")
def fuzz_gateway(redis_url: str, active_upstream: Upstream, preview_upstream: Upstream) -> Iterator[str]:
    consumers = [Consumer("fuzzer", "enterprise", frozenset({"predict", "preview"}))]
    registry = ConsumerRegistry(PEPPER, consumer_index(consumers, KEYS))
    app = build_app(
        redis_url,
        registry=registry,
        upstreams=Upstreams({"titanic": active_upstream.url}, {"titanic": preview_upstream.url}),
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


# The document is built in-process (schemathesis parametrizes at collection time, before any
# server runs); the first test proves the gateway serves exactly this document.
schema = schemathesis.openapi.from_dict(spec())


def test_gateway_serves_this_document(fuzz_gateway: str) -> None:
    assert httpx.get(fuzz_gateway + "/openapi.json", timeout=10).json() == spec()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_break_the_gateway(case: Any, fuzz_gateway: str) -> None:
    case.call_and_validate(base_url=fuzz_gateway, headers={"X-API-Key": KEYS.by_consumer["fuzzer"]})
