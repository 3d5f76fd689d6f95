"""The ``admin`` scope (issue 13, finding 12: declared and enforced nowhere): it is what lets a
caller read another declared consumer's usage, ``GET /v1/usage?consumer=NAME``; without it that
is a 403. Over real HTTP, with a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index
from ferry_testing.gateway_jwt import JWKS, claims, sign

KEYS = Keys()
CONSUMERS = [
    Consumer("ops", "free", frozenset({"admin"})),
    Consumer("shop", "basic", frozenset({"predict"})),
    Consumer("other", "pro", frozenset({"predict", "preview"})),
]


@pytest.fixture(scope="module")
def gw(redis_url: str, active_upstream: Upstream) -> Iterator[str]:
    registry = ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS))
    app = build_app(
        redis_url, registry=registry, jwks=JWKS, upstreams=Upstreams({"titanic": active_upstream.url})
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


def usage(gw: str, who: dict[str, str], query: str = "") -> httpx.Response:
    return httpx.get(f"{gw}/v1/usage{query}", headers=who, timeout=10)


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS.by_consumer[name]}


def test_an_admin_reads_a_declared_consumers_usage(gw: str) -> None:
    httpx.post(f"{gw}/v1/models/titanic:predict", content=b"{}", headers=key("shop"), timeout=10)
    doc = usage(gw, key("ops"), "?consumer=shop").json()
    assert (doc["consumer"], doc["tier"], doc["quota"]["remaining"]) == ("shop", "basic", 10_000 - 1)
    token = {"Authorization": f"Bearer {sign(claims(sub='robot', scope='admin'))}"}
    assert usage(gw, token, "?consumer=shop").json()["consumer"] == "shop"  # a token granted admin too
    missing = usage(gw, key("ops"), "?consumer=nobody")
    assert missing.status_code == 404
    assert missing.json()["details"] == [{"field": "consumer", "reason": "not a declared consumer"}]


def test_without_admin_only_ones_own_usage(gw: str) -> None:
    assert usage(gw, key("shop"), "?consumer=shop").json()["consumer"] == "shop"  # oneself: no scope needed
    token = {"Authorization": f"Bearer {sign(claims(sub='shop'))}"}  # jwt:shop is not shop
    for who, whom in ((key("shop"), "other"), (key("other"), "shop"), (token, "shop")):
        refused = usage(gw, who, f"?consumer={whom}")
        assert refused.status_code == 403
        assert refused.json()["details"] == [{"field": "consumer", "reason": "missing_scope"}]
    twice = usage(gw, key("ops"), "?consumer=shop&consumer=other")
    assert twice.status_code == 422
