"""The limiter against a real Redis: exact under concurrency, burst then steady, daily quota."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.tiers import LimitsConfig, parse_limits
from ferry_testing.gateway import FakeClock

DAY = 86_400.0


def limiter(
    redis_url: str, limits: LimitsConfig | None = None, clock: FakeClock | None = None
) -> RateLimiter:
    return RateLimiter(
        aioredis.from_url(redis_url),
        limits or LimitsConfig(),
        clock=clock or FakeClock(),
        prefix=f"t{uuid.uuid4().hex[:10]}",
    )


async def test_64_concurrent_clients_never_get_more_than_the_burst(redis_url: str) -> None:
    # 64 clients, each with its own connection (like 64 gateway workers), 5 attempts each at one
    # instant: the free tier's burst of 100 must be granted exactly, not one more.
    clock = FakeClock()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    clients = [aioredis.from_url(redis_url) for _ in range(64)]
    limiters = [RateLimiter(c, LimitsConfig(), clock=clock, prefix=prefix) for c in clients]

    async def client(lim: RateLimiter) -> list[Outcome]:
        return [(await lim.check("alice", "free", "titanic")).outcome for _ in range(5)]

    results = [o for batch in await asyncio.gather(*(client(lim) for lim in limiters)) for o in batch]
    assert results.count(Outcome.ALLOWED) == 100
    assert results.count(Outcome.RATE_LIMITED) == 320 - 100
    for c in clients:
        await c.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose


async def test_burst_then_steady_rate(redis_url: str) -> None:
    clock = FakeClock()
    lim = limiter(redis_url, clock=clock)
    first = [await lim.check("bob", "free", None) for _ in range(101)]
    assert [d.outcome for d in first[:100]] == [Outcome.ALLOWED] * 100
    assert first[99].rate is not None and first[99].rate.remaining == 0
    denied = first[100]
    assert denied.outcome is Outcome.RATE_LIMITED
    assert denied.retry_after == pytest.approx(1.0)  # free tier: 60/min, one per second
    # steady state: exactly one more request per emission interval, never two
    for _ in range(5):
        clock.now += 1.0
        assert (await lim.check("bob", "free", None)).outcome is Outcome.ALLOWED
        assert (await lim.check("bob", "free", None)).outcome is Outcome.RATE_LIMITED
    # after a long idle period the burst is whole again, not more
    clock.now += 3600
    outcomes = [(await lim.check("bob", "free", None)).outcome for _ in range(101)]
    assert outcomes.count(Outcome.ALLOWED) == 100


async def test_daily_quota_resets_at_utc_midnight(redis_url: str) -> None:
    clock = FakeClock(now=1_800_000_000 - 1_800_000_000 % DAY + DAY - 120)  # 23:58 UTC
    limits = parse_limits({"tiers": {"tiny": {"perMinute": 6000, "burst": 10000, "perDay": 5}}})
    lim = limiter(redis_url, limits, clock)
    decisions = [await lim.check("carol", "tiny", None) for _ in range(6)]
    assert [d.outcome for d in decisions] == [Outcome.ALLOWED] * 5 + [Outcome.QUOTA_EXCEEDED]
    assert decisions[4].quota is not None and decisions[4].quota.remaining == 0
    assert decisions[5].retry_after == 120  # until midnight
    clock.now += 60  # 23:59: still the same day
    assert (await lim.check("carol", "tiny", None)).outcome is Outcome.QUOTA_EXCEEDED
    clock.now += 61  # 00:00:01 the next day
    after = await lim.check("carol", "tiny", None)
    assert after.outcome is Outcome.ALLOWED
    assert after.quota is not None and after.quota.remaining == 4


async def test_denied_requests_spend_nothing(redis_url: str) -> None:
    # a per-model override that is tighter than the tier: when it denies, the tier's allowance
    # and the daily quota must be left untouched (all-or-nothing in one script)
    clock = FakeClock()
    limits = parse_limits({"models": {"big": {"free": {"perMinute": 2, "burst": 2, "perDay": 100}}}})
    lim = limiter(redis_url, limits, clock)
    outcomes = [(await lim.check("dave", "free", "big")).outcome for _ in range(10)]
    assert outcomes.count(Outcome.ALLOWED) == 2
    other = await lim.check("dave", "free", "small")
    assert other.rate is not None and other.rate.remaining == 100 - 3
    assert other.quota is not None and other.quota.remaining == 1000 - 3


async def test_unlimited_tier_makes_no_redis_call(redis_url: str) -> None:
    lim = limiter(redis_url)
    decision = await lim.check("erin", "enterprise", "titanic")
    assert decision.outcome is Outcome.UNLIMITED and lim.redis_calls == 0


async def test_usage_peek_spends_nothing(redis_url: str) -> None:
    lim = limiter(redis_url)
    await lim.check("fred", "free", None)
    before = await lim.peek("fred", "free")
    again = await lim.peek("fred", "free")
    assert before.rate is not None and again.rate is not None
    assert before.rate.remaining == again.rate.remaining == 99
    assert again.quota is not None and again.quota.remaining == 999
