"""Rate-limit keys whatever a consumer is called (issue 13, finding 3): a JWT ``sub`` is any
string, and a ``}`` in it used to end the Redis Cluster hash tag early, so the rate and quota
keys of one request landed in different slots (CROSSSLOT: every request of that consumer failed,
and the breaker wedged). Every key of a request must hash to one slot, two names must never share
a key, and ordinary names keep the keys (and today's counters) they had."""

from __future__ import annotations

import pytest
from ferry_gateway import config, factory
from ferry_gateway.limits.ratelimit import RateLimiter, hash_tag, plan, script_args
from ferry_gateway.limits.tiers import LimitsConfig, parse_limits
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

NOW = 1_800_000_000.0
# a per-model override too, so a request has four keys: two rate buckets and two quotas
LIMITS = parse_limits({"models": {"titanic": {"free": {"perMinute": 10, "burst": 5, "perDay": 50}}}})
TRICKY = [
    "}",
    "{",
    "{}",
    "}{",
    "}acme",
    "acme{",
    "{acme}",
    "a}b{c",
    "%",
    "%7D",
    "",
    " ",
    "🚢{}",
    "ü}",
    "\ud800",
]
names = st.one_of(
    st.sampled_from(TRICKY), st.text(alphabet=st.sampled_from("{}%:ab7D\ud800é"), max_size=8), st.text()
)


def keys(consumer: str) -> list[str]:
    gcra, quotas = plan(LIMITS, consumer, "free", "titanic", NOW)
    return [g.key for g in gcra] + [q.key for q in quotas]


def _bytes(key: str) -> bytes:
    return key.encode()  # raises for a lone surrogate, as every Redis client would


@given(names)
def test_every_key_of_one_request_hashes_to_one_slot(consumer: str) -> None:
    ks = keys(consumer)
    assert len(ks) == 4
    assert len({key_slot(_bytes(k)) for k in ks}) == 1, ks


@given(names, names)
def test_two_names_never_share_a_key(a: str, b: str) -> None:
    if a != b:
        assert not set(keys(a)) & set(keys(b))
        assert hash_tag(a) != hash_tag(b)


@given(st.text(alphabet=st.characters(blacklist_characters="{}%", blacklist_categories=["Cs"]), min_size=1))
def test_ordinary_names_keep_their_keys(consumer: str) -> None:
    gcra, quotas = plan(LIMITS, consumer, "free", None, NOW)
    assert [g.key for g in gcra] == [f"ferry:rl:{{{consumer}}}"]
    assert [q.key for q in quotas] == [f"ferry:q:{{{consumer}}}:20270115"]


def test_the_escaped_tags_read_back() -> None:
    assert [hash_tag(n) for n in ["}acme", "{}", "%", "", "\ud800x"]] == [
        "%7Dacme",
        "%7B%7D",
        "%25",
        "%",
        "%uD800x",
    ]


@pytest.mark.parametrize("prefix", ["a{b", "x}", "{t}"])
def test_a_prefix_with_braces_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RateLimiter(None, LimitsConfig(), prefix=prefix)


def test_with_redis_time_the_script_gets_no_time_but_the_days_around_the_gateways() -> None:
    gcra, quotas = plan(LIMITS, "acme", "free", "titanic", NOW)
    keys, args = script_args(gcra, quotas, NOW, redis_time=True)
    assert keys[2:] == ["ferry:q:{acme}:20270115", "ferry:q:{acme}:m:titanic:20270115"]
    assert args[:6] == [-1, 2, 2, int(NOW // 86_400), "20270114", "20270116"]
    _, own = script_args(gcra, quotas, NOW)
    assert own[0] == int(NOW * 1_000_000)  # tests and the benchmark drive the time themselves


def test_the_gateway_itself_decides_by_redis_time() -> None:
    settings = config.load(None, {"REDIS_URL": "redis://127.0.0.1:9/0"})  # nothing connects yet
    limiter = factory._limiter(settings, factory._Parts())
    assert limiter.redis_time
