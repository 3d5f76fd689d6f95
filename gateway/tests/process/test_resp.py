"""The pipelined Redis client the limiter uses for redis:// URLs, against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from ferry_devcluster.procs import free_port
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.resp import PipelinedRedis
from ferry_gateway.limits.tiers import LimitsConfig
from ferry_testing.gateway import FakeClock
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


async def test_script_survives_a_script_flush(redis_url: str) -> None:
    # what a restarted or failed-over Redis looks like to the limiter: the script is gone
    limiter = RateLimiter(
        PipelinedRedis(redis_url), LimitsConfig(), clock=FakeClock(), prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    assert (await limiter.check("a", "free", None)).outcome is Outcome.ALLOWED
    redis.Redis.from_url(redis_url).script_flush()
    after = await limiter.check("a", "free", None)
    assert after.outcome is Outcome.ALLOWED and after.rate is not None and after.rate.remaining == 98


async def test_database_from_url_and_errors_as_redis_errors(redis_url: str) -> None:
    client = PipelinedRedis(redis_url.rsplit("/", 1)[0] + "/5")
    key = f"t{uuid.uuid4().hex}"
    assert await client.execute("SET", key, "v") == b"OK"
    assert redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5").get(key) == b"v"
    assert await client.mget([key, key + "-missing"]) == [b"v", None]
    with pytest.raises(ResponseError):
        await client.execute("INCR", key)  # not an integer
    assert await client.ping()  # the connection is still in step after an error reply
    await client.aclose()


async def test_a_silent_server_times_out_and_the_next_call_reconnects() -> None:
    seen: list[int] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        await reader.read()  # read everything, answer nothing

    port = free_port()
    server = await asyncio.start_server(swallow, "127.0.0.1", port)
    async with server:
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
        with pytest.raises(RedisTimeoutError):
            await client.ping()
        with pytest.raises(RedisTimeoutError):
            await client.ping()
        assert len(seen) == 2  # the timed-out connection was dropped, not reused out of step
