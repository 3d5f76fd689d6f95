"""Rate-limit headers on successive calls through a real gateway and a real Redis add up."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, FakeClock, GatewayServer, Keys, Upstream, build_app, consumer_index

KEYS = Keys()
CONSUMERS = [
    Consumer("steady", "small", frozenset({"predict"})),
    Consumer("big", "enterprise", frozenset({"predict"})),
]
# 6/min (one every 10 s) with a bucket of 4, and 6 a day. The gateway's clock stands still but
# Redis expires the bucket's key in real time, after the fake seconds it holds: 10 s per request
# leaves a slow machine ample time between calls.
LIMITS = parse_limits({"tiers": {"small": {"perMinute": 6, "burst": 4, "perDay": 6}}})


@dataclass
class Gw:
    url: str
    clock: FakeClock


@pytest.fixture(scope="module")
def gw(redis_url: str, active_upstream: Upstream) -> Iterator[Gw]:
    clock = FakeClock()
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        limits=LIMITS,
        clock=clock,
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    server = GatewayServer(app)
    yield Gw(server.url, clock)
    server.close()


def predict(gw: Gw, consumer: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/models/titanic:predict",
        content=b'{"instances": [[1, 2]]}',
        headers={"X-API-Key": KEYS.by_consumer[consumer]},
        timeout=10,
    )


def state(resp: httpx.Response) -> dict[str, int]:
    h = resp.headers
    r = re.fullmatch(r'"burst";r=(\d+);t=(\d+), "day";r=(\d+);t=(\d+)', h["ratelimit"])
    assert r, h["ratelimit"]
    out = {
        "limit": int(h["x-ratelimit-limit"]),
        "remaining": int(h["x-ratelimit-remaining"]),
        "reset": int(h["x-ratelimit-reset"]),
        "quota": int(h["x-quota-remaining"]),
    }
    assert (int(r[1]), int(r[2]), int(r[3])) == (out["remaining"], out["reset"], out["quota"])
    assert out["remaining"] <= out["limit"]
    return out


def test_successive_calls_count_down_by_one_then_429_with_retry_after(gw: Gw) -> None:
    admitted = [predict(gw, "steady") for _ in range(4)]
    assert [r.status_code for r in admitted] == [200] * 4
    states = [state(r) for r in admitted]
    assert all(r.headers["ratelimit-policy"] == '"burst";q=4;w=40, "day";q=6;w=86400' for r in admitted)
    assert [s["limit"] for s in states] == [4, 4, 4, 4]
    assert [s["remaining"] for s in states] == [3, 2, 1, 0]
    assert [s["quota"] for s in states] == [5, 4, 3, 2]
    # the bucket is full again when every spent request has been refilled, 10 s each
    assert [s["reset"] for s in states] == [10, 20, 30, 40]

    limited = predict(gw, "steady")
    assert limited.status_code == 429 and limited.json()["error_code"] == "RATE_LIMITED"
    assert limited.headers["retry-after"] == "10"
    denied = state(limited)
    assert denied["remaining"] == 0 and denied["quota"] == 2  # a refusal costs no quota
    assert denied["reset"] == 40

    gw.clock.now += 10  # one emission interval: exactly one more
    again = predict(gw, "steady")
    assert again.status_code == 200
    assert state(again) == {"limit": 4, "remaining": 0, "reset": 40, "quota": 1}

    gw.clock.now += 60  # the bucket is whole again, but the day's quota has one left
    last = predict(gw, "steady")
    assert state(last) == {"limit": 4, "remaining": 3, "reset": 10, "quota": 0}
    over = predict(gw, "steady")
    assert over.status_code == 429 and over.json()["error_code"] == "QUOTA_EXCEEDED"
    assert int(over.headers["retry-after"]) == int(over.headers["x-quota-reset"]) > 0


def test_the_unlimited_tier_sends_its_policy(gw: Gw) -> None:
    resp = predict(gw, "big")
    assert resp.status_code == 200
    assert resp.headers["ratelimit-policy"] == '"unlimited"'
    assert "ratelimit" not in resp.headers and "x-ratelimit-remaining" not in resp.headers
