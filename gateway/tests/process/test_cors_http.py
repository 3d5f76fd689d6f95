"""CORS over real HTTP: a gateway under uvicorn with a real Redis and the predictor stand-in.

Preflights are answered before authentication and never counted; actual responses, errors
included, carry the allow-origin so the page can read the envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.edge.cors import DEV_ORIGINS, parse_policy
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, FakeClock, GatewayServer, Keys, Upstream, build_app, consumer_index

KEYS = Keys()
CONSUMERS = [Consumer("page", "small", frozenset({"predict"}))]
LIMITS = parse_limits({"tiers": {"small": {"perMinute": 60, "burst": 5, "perDay": 50}}})
PAGE = "http://localhost:5173"


@pytest.fixture(scope="module")
def gw(redis_url: str, active_upstream: Upstream) -> Iterator[str]:
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        limits=LIMITS,
        clock=FakeClock(),  # frozen: the bucket never refills, so any spend shows
        upstreams=Upstreams({"titanic": active_upstream.url}),
        cors=parse_policy(DEV_ORIGINS),
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


def usage(gw: str) -> dict[str, Any]:
    resp = httpx.get(gw + "/v1/usage", headers={"X-API-Key": KEYS.by_consumer["page"]}, timeout=10)
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return {"rate": doc["rate"]["remaining"], "quota": doc["quota"]["remaining"]}


def preflight(
    gw: str, origin: str, method: str = "POST", headers: str = "x-api-key, content-type"
) -> httpx.Response:
    return httpx.options(
        gw + "/v1/models/titanic:predict",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=10,
    )


def test_preflight_from_an_allowed_origin_is_204_and_costs_nothing(gw: str) -> None:
    before = usage(gw)
    answers = [preflight(gw, PAGE) for _ in range(8)]  # more than the burst of 5
    after = usage(gw)
    assert {r.status_code for r in answers} == {204}
    h = answers[0].headers
    assert h["access-control-allow-origin"] == PAGE
    assert set(h["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    assert "X-API-Key" in h["access-control-allow-headers"]
    assert h["access-control-max-age"] == "600"
    assert "Origin" in h["vary"]
    assert "access-control-allow-credentials" not in h
    assert after == before  # neither the rate bucket nor the daily quota moved


def test_preflight_from_another_origin_is_a_403_envelope_naming_it(gw: str) -> None:
    before = usage(gw)
    for origin in ("http://localhost.evil.com", "https://localhost:5173", "http://evil.test"):
        refused = preflight(gw, origin)
        assert refused.status_code == 403
        body = refused.json()
        assert body["error_code"] == "FORBIDDEN" and body["details"][0]["field"] == "origin"
        assert body["request_id"] == refused.headers["x-request-id"]
        assert "access-control-allow-origin" not in refused.headers
    bad_method = preflight(gw, PAGE, method="DELETE")
    assert bad_method.status_code == 403
    assert bad_method.json()["details"][0]["field"] == "access-control-request-method"
    bad_header = preflight(gw, PAGE, headers="x-api-key, x-admin")
    assert bad_header.json()["details"][0]["field"] == "access-control-request-headers"
    assert usage(gw) == before


def test_actual_request_from_an_allowed_origin_gets_allow_origin_and_vary(gw: str) -> None:
    resp = httpx.post(
        gw + "/v1/models/titanic:predict",
        content=b'{"instances": [[1, 2]]}',
        headers={"Origin": PAGE, "X-API-Key": KEYS.by_consumer["page"]},
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["upstream"] == "active"
    assert resp.headers["access-control-allow-origin"] == PAGE
    assert resp.headers["vary"] == "Origin"
    exposed = resp.headers["access-control-expose-headers"]
    for name in ("X-Request-Id", "Retry-After", "RateLimit", "RateLimit-Policy", "X-RateLimit-Remaining"):
        assert name in exposed
    # the Origin header is not forwarded to the predictor as a credential or otherwise
    assert "origin" not in resp.json()["headers"]
    other = httpx.get(gw + "/healthz", headers={"Origin": "http://evil.test"}, timeout=10)
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"  # the answer depends on the origin: caches must know


def test_an_error_from_an_allowed_origin_still_carries_the_allow_origin(gw: str) -> None:
    unauthenticated = httpx.post(
        gw + "/v1/models/titanic:predict", content=b"{}", headers={"Origin": PAGE}, timeout=10
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error_code"] == "UNAUTHENTICATED"
    assert unauthenticated.headers["access-control-allow-origin"] == PAGE
    assert unauthenticated.headers["vary"] == "Origin"
    unknown = httpx.get(gw + "/nowhere", headers={"Origin": "http://127.0.0.1:3000"}, timeout=10)
    assert unknown.status_code == 404
    assert unknown.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"


def test_with_cors_off_a_preflight_is_refused_before_auth_and_nothing_is_added(
    redis_url: str, active_upstream: Upstream
) -> None:
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        limits=LIMITS,
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    server = GatewayServer(app)
    try:
        refused = preflight(server.url, PAGE)
        plain = httpx.post(
            server.url + "/v1/models/titanic:predict",
            content=b"{}",
            headers={"Origin": PAGE, "X-API-Key": KEYS.by_consumer["page"]},
            timeout=10,
        )
    finally:
        server.close()
    assert refused.status_code == 403 and refused.json()["details"][0]["field"] == "origin"
    assert plain.status_code == 200
    assert not any(k.startswith("access-control-") or k == "vary" for k in plain.headers)
