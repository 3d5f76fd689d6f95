"""Consumer names with hash-tag characters against a real three-master Redis Cluster (issue 13,
finding 3): a JWT ``sub`` such as ``}acme`` used to put the rate and quota keys of one request
in different slots, so every request of that consumer raised CROSSSLOT (and wedged the breaker).
Each such name must be limited, exactly, and on its own: no two of them share a bucket."""

from __future__ import annotations

import uuid

import pytest
import redis
from ferry_gateway.limits.breaker import BreakerState
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import parse_limits
from ferry_testing.gateway import FakeClock

# a tier and a per-model override: each request touches two rate buckets and two daily quotas
LIMITS = parse_limits(
    {
        "tiers": {"t": {"perMinute": 60, "burst": 3, "perDay": 100}},
        "models": {"titanic": {"t": {"perMinute": 60, "burst": 2, "perDay": 50}}},
    }
)
NAMES = [
    "acme",
    "{acme}",
    "}acme",
    "acme{",
    "{",
    "}",
    "{}",
    "}{",
    "}}{{",
    "a}b{c",
    "%7D",  # what "}" escapes to: must not be the same consumer as "}"
    "%",
    "",
    "ünï}cødé{🚢",
    "\ud800",  # a lone surrogate: JSON allows it in a string, UTF-8 cannot encode it
    "tab\tnew\nline",
]


def _limiter(url: str) -> RateLimiter:
    return RateLimiter(make_redis(url), LIMITS, clock=FakeClock(), prefix=f"t{uuid.uuid4().hex[:8]}")


async def _each_name_gets_its_own_exact_burst(limiter: RateLimiter) -> None:
    for name in NAMES:  # one after another: a name that shared a bucket would find it spent
        outcomes = [(await limiter.check(name, "t", "titanic")).outcome for _ in range(3)]
        assert outcomes == [Outcome.ALLOWED, Outcome.ALLOWED, Outcome.RATE_LIMITED], repr(name)
        # the model's bucket is spent, the tier's is not: without the model one more is admitted
        assert (await limiter.check(name, "t", None)).outcome is Outcome.ALLOWED, repr(name)
        usage = await limiter.peek(name, "t")
        assert usage.outcome is Outcome.ALLOWED, repr(name)
        assert usage.rate is not None and usage.rate.remaining == 0, repr(name)
        assert usage.quota is not None and usage.quota.remaining == 100 - 3, repr(name)
    assert limiter.breaker.state is BreakerState.CLOSED and limiter.breaker.failures == 0
    assert limiter.redis_calls == 4 * len(NAMES)  # still one round trip per check
    await limiter.redis.aclose()


async def test_hash_tag_characters_in_consumer_names_on_a_redis_cluster(redis_cluster_url: str) -> None:
    await _each_name_gets_its_own_exact_burst(_limiter(redis_cluster_url))


async def test_the_same_names_through_the_pipelined_client_on_one_redis(redis_url: str) -> None:
    await _each_name_gets_its_own_exact_burst(_limiter(redis_url))


@pytest.mark.parametrize("name", ["}acme", "{}", "\ud800"])
async def test_all_keys_of_such_a_name_are_written_in_one_slot(redis_cluster_url: str, name: str) -> None:
    limiter = _limiter(redis_cluster_url)
    assert (await limiter.check(name, "t", "titanic")).outcome is Outcome.ALLOWED
    client: redis.RedisCluster[bytes] = redis.RedisCluster.from_url(redis_cluster_url.replace("+cluster", ""))
    try:
        nodes = redis.RedisCluster.ALL_NODES
        found = list(client.scan_iter(match=f"{limiter.prefix}:*", target_nodes=nodes))
        assert len(found) == 4  # two rate buckets and two quotas, all written
        assert len({client.keyslot(k) for k in found}) == 1
    finally:
        client.close()
        await limiter.redis.aclose()
