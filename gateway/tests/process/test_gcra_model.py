"""The Lua limiter in Redis agrees with an independent model of GCRA on random traffic."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.tiers import parse_limits
from ferry_testing.gateway import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def reference(per_minute: int, burst: int, steps: list[tuple[int, int]]) -> list[bool]:
    """Token bucket of ``burst`` tokens refilled at per_minute/60 per second, in microseconds.

    GCRA is this bucket written with one timestamp; an independent formulation catches
    off-by-ones in the script."""
    interval = 60_000_000 // per_minute
    capacity = burst * interval  # bucket content measured in microseconds of credit
    level, now, out = capacity, 0, []
    for advance_us, requests in steps:
        now += advance_us
        level = min(capacity, level + advance_us)
        for _ in range(requests):
            if level >= interval:
                level -= interval
                out.append(True)
            else:
                out.append(False)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    per_minute=st.sampled_from([60, 120, 600]),
    burst=st.integers(min_value=1, max_value=8),
    steps=st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(0, 6)), min_size=1, max_size=12),
)
def test_script_matches_reference(
    redis_url: str, per_minute: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    limits = parse_limits({"tiers": {"t": {"perMinute": per_minute, "burst": burst, "perDay": None}}})
    expected = reference(per_minute, burst, steps)

    async def run() -> list[bool]:
        client = aioredis.from_url(redis_url)
        clock = FakeClock(1_800_000_000.0)
        limiter = RateLimiter(client, limits, clock=clock, prefix=f"h{uuid.uuid4().hex[:10]}")
        got = []
        for advance_us, requests in steps:
            clock.now += advance_us / 1_000_000
            for _ in range(requests):
                got.append((await limiter.check("c", "t", None)).outcome is Outcome.ALLOWED)
        await client.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
        return got

    assert asyncio.run(run()) == expected
