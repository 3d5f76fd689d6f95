"""Redis killed mid-run: fail-open admits, fail-closed refuses, a breaker stops per-request
attempts while Redis is down, and limiting resumes on its own when Redis is back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ferry_gateway.limits.breaker import CircuitBreaker
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import LimitsConfig
from ferry_testing.gateway import FakeClock
from ferry_testing.servers import redis_server


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
async def test_redis_killed_mid_run_then_recovers(tmp_path: Path, fail_open: bool) -> None:
    breaker_clock = FakeClock(0.0)
    with redis_server(tmp_path / "redis") as server:
        port = server.port
        limiter = RateLimiter(
            make_redis(server.url),
            LimitsConfig(),
            fail_open=fail_open,
            clock=FakeClock(),
            breaker=CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=breaker_clock),
            prefix=f"t{uuid.uuid4().hex[:10]}",
        )
        for _ in range(3):
            assert (await limiter.check("alice", "free", None)).outcome is Outcome.ALLOWED
        server.proc.kill()
        server.proc.wait()

        degraded = Outcome.FAIL_OPEN if fail_open else Outcome.FAIL_CLOSED
        first = await limiter.check("alice", "free", None)
        assert first.outcome is degraded
        assert first.admitted is fail_open
        calls_when_opened = limiter.redis_calls
        # the breaker is open: the next requests do not even try Redis, so they cost no latency
        for _ in range(20):
            assert (await limiter.check("alice", "free", None)).outcome is degraded
        assert limiter.redis_calls == calls_when_opened

    with redis_server(tmp_path / "redis2", port=port):
        # still inside the cool-down: no attempt yet
        assert (await limiter.check("alice", "free", None)).outcome is degraded
        breaker_clock.now += 5.0
        recovered = await limiter.check("alice", "free", None)
        assert recovered.outcome is Outcome.ALLOWED
        # a fresh Redis lost the old counters; limiting works again from a whole burst
        assert recovered.rate is not None and recovered.rate.remaining == 99
        assert (await limiter.check("alice", "free", None)).outcome is Outcome.ALLOWED


async def test_trial_after_cooldown_that_fails_reopens_the_breaker(tmp_path: Path) -> None:
    breaker_clock = FakeClock(0.0)
    with redis_server(tmp_path / "redis") as server:
        url = server.url
    limiter = RateLimiter(
        make_redis(url),
        LimitsConfig(),
        fail_open=True,
        clock=FakeClock(),
        breaker=CircuitBreaker(1, 5.0, clock=breaker_clock),
    )
    assert (await limiter.check("bob", "free", None)).outcome is Outcome.FAIL_OPEN
    breaker_clock.now += 5.0
    assert (await limiter.check("bob", "free", None)).outcome is Outcome.FAIL_OPEN  # the one trial
    tried = limiter.redis_calls
    assert (await limiter.check("bob", "free", None)).outcome is Outcome.FAIL_OPEN
    assert limiter.redis_calls == tried  # re-opened: no further attempts
