"""Gateways whose clocks disagree still make the same decisions (issue 13, finding 12): the
limiter takes the time from Redis (TIME, inside the one script call), so a gateway two minutes
ahead does not find everyone's bucket refilled, one behind does not refuse what others admit, and
a clock on the wrong side of midnight counts the day's quota in the same key as everyone else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from ferry_gateway.limits.ratelimit import Decision, Outcome, RateLimiter, seconds_to_midnight
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import parse_limits

# one request a minute with a bucket of five: no refill happens while the test runs
LIMITS = parse_limits(
    {
        "tiers": {
            "slow": {"perMinute": 1, "burst": 5, "perDay": None},
            "daily": {"perMinute": 60000, "perDay": 3},
        }
    }
)


def _skewed(by: float) -> Callable[[], float]:
    return lambda: time.time() + by


def _gateways(redis_url: str, skews: list[float]) -> list[RateLimiter]:
    prefix = f"t{uuid.uuid4().hex[:10]}"  # one Redis, one key space: several gateways of one install
    return [
        RateLimiter(make_redis(redis_url), LIMITS, clock=_skewed(s), prefix=prefix, redis_time=True)
        for s in skews
    ]


async def _round_robin(gateways: list[RateLimiter], tier: str, n: int) -> list[Decision]:
    return [await gateways[i % len(gateways)].check("acme", tier, None) for i in range(n)]


@pytest.mark.parametrize("skew", [120.0, -120.0, 3600.0], ids=["ahead-2m", "behind-2m", "ahead-1h"])
async def test_a_skewed_gateway_clock_does_not_change_the_rate_decision(redis_url: str, skew: float) -> None:
    gateways = _gateways(redis_url, [0.0, skew])
    decisions = await _round_robin(gateways, "slow", 8)
    # exactly what one gateway alone decides: the burst of five, then refusals
    assert [d.outcome for d in decisions] == [Outcome.ALLOWED] * 5 + [Outcome.RATE_LIMITED] * 3
    for d in decisions[5:]:  # and both say the same wait: one emission interval
        assert 55.0 <= d.retry_after <= 60.0, d
    for g in gateways:
        assert g.redis_calls == 4  # the time came with the one round trip
        await g.redis.aclose()


@pytest.mark.parametrize("backend", ["redis_url", "redis_cluster_url"], ids=["redis", "cluster"])
async def test_gateway_clocks_on_either_side_of_midnight_share_one_days_quota(
    request: pytest.FixtureRequest, backend: str
) -> None:
    # on a Cluster too: Redis's day's key is not the one declared, but it has the same hash tag
    redis_url: str = request.getfixturevalue(backend)
    now = time.time()
    into_tomorrow = seconds_to_midnight(now) + 3600.0  # 01:00 tomorrow on this gateway
    into_yesterday = -(now % 86_400) - 3600.0  # 23:00 yesterday on this one
    gateways = _gateways(redis_url, [into_tomorrow, into_yesterday, 0.0])
    # the skewed gateways go first, before any reply has told them Redis's time: the script
    # itself moves their count into Redis's day
    decisions = await _round_robin(gateways, "daily", 6)
    assert [d.outcome for d in decisions] == [Outcome.ALLOWED] * 3 + [Outcome.QUOTA_EXCEEDED] * 3
    resets = {d.quota.reset_seconds for d in decisions if d.quota is not None}
    assert max(resets) - min(resets) <= 1  # all count down to Redis's midnight
    for g in gateways:
        usage = await g.peek("acme", "daily")
        assert usage.quota is not None and usage.quota.remaining == 0
        await g.redis.aclose()
