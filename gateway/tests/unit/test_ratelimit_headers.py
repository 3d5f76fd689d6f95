"""Rate-limit headers that add up: Remaining never above Limit, all numbers non-negative integers,
the draft's fields valid Structured Fields, a policy on every tier."""

from __future__ import annotations

import re

import pytest
from ferry_gateway.limits.headers import rate_limit_headers, refill_seconds
from ferry_gateway.limits.ratelimit import Decision, Outcome, QuotaState, RateState, interpret, plan
from ferry_gateway.limits.tiers import DEFAULT_TIERS, LimitsConfig
from hypothesis import given
from hypothesis import strategies as st

# ---- a strict parser for the draft's fields (RFC 8941 List of Items with Parameters) ---------

_KEY = r"[a-z*][a-z0-9_.*-]*"
_BARE = r'"(?:[^"\\\x00-\x1f\x7f]|\\["\\])*"|[A-Za-z*][!#$%&\'*+.^_`|~0-9A-Za-z:/-]*|-?\d{1,15}'
_PARAM = re.compile(rf";\s*({_KEY})(?:=({_BARE}))?")
_ITEM = re.compile(rf"({_BARE})((?:;\s*{_KEY}(?:=(?:{_BARE}))?)*)")


def parse_sf_list(value: str) -> list[tuple[str, dict[str, str | int | bool]]]:
    """Each member's bare item and parameters; AssertionError when the value is not a valid List."""
    out: list[tuple[str, dict[str, str | int | bool]]] = []
    rest = value
    while True:
        m = _ITEM.match(rest)
        assert m, f"not an sf-item at {rest!r} in {value!r}"
        params: dict[str, str | int | bool] = {}
        for key, raw in _PARAM.findall(m.group(2)):
            assert key not in params, f"duplicate parameter {key} in {value!r}"
            params[key] = True if raw == "" else (int(raw) if re.fullmatch(r"-?\d+", raw) else raw)
        out.append((m.group(1), params))
        rest = rest[m.end() :]
        if not rest:
            return out
        sep = re.match(r"[ \t]*,[ \t]*", rest)
        assert sep and rest[sep.end() :], f"bad list separator in {value!r}"
        rest = rest[sep.end() :]


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    names = [k for k, _ in headers]
    assert len(names) == len(set(names)), "a header sent twice"
    return {k.decode(): v.decode() for k, v in headers}


_count = st.integers(-5, 10**7)
rates = st.builds(
    RateState,
    limit_per_minute=st.integers(1, 60_000_000),
    burst=st.integers(1, 10**7),
    remaining=_count,
    reset_seconds=st.floats(-1, 10**6, allow_nan=False),
)
quotas = st.builds(
    QuotaState, limit=st.integers(1, 10**9), remaining=_count, reset_seconds=st.integers(0, 86_400)
)
decisions = st.builds(
    Decision,
    outcome=st.sampled_from(Outcome),
    retry_after=st.floats(0, 86_400, allow_nan=False),
    rate=st.one_of(st.none(), rates),
    quota=st.one_of(st.none(), quotas),
)


@given(decisions)
def test_every_decision_gives_headers_that_add_up(decision: Decision) -> None:
    h = as_dict(rate_limit_headers(decision))
    numeric = [k for k in h if k.startswith(("x-ratelimit-", "x-quota-")) or k == "retry-after"]
    for k in numeric:
        assert re.fullmatch(r"\d+", h[k]), (k, h[k])
    if "x-ratelimit-limit" in h:
        assert int(h["x-ratelimit-remaining"]) <= int(h["x-ratelimit-limit"])
    if "x-quota-limit" in h:
        assert int(h["x-quota-remaining"]) <= int(h["x-quota-limit"])
    policies = (
        {name: p for name, p in parse_sf_list(h["ratelimit-policy"])} if "ratelimit-policy" in h else {}
    )
    states = {name: p for name, p in parse_sf_list(h["ratelimit"])} if "ratelimit" in h else {}
    assert set(states) <= set(policies)
    for name, state in states.items():
        policy = policies[name]
        assert isinstance(policy["q"], int) and isinstance(policy["w"], int) and policy["w"] >= 1
        r, t = state["r"], state["t"]
        assert isinstance(r, int) and isinstance(t, int) and 0 <= r <= policy["q"] and t >= 0
    if "x-ratelimit-limit" in h:
        assert states['"burst"']["r"] == int(h["x-ratelimit-remaining"])
        assert policies['"burst"']["q"] == int(h["x-ratelimit-limit"])
        assert states['"burst"']["t"] == int(h["x-ratelimit-reset"])
    if "x-quota-limit" in h:
        assert policies['"day"'] == {"q": int(h["x-quota-limit"]), "w": 86400}
    if decision.outcome is Outcome.UNLIMITED and decision.rate is None and decision.quota is None:
        assert h == {"ratelimit-policy": '"unlimited"'}
    assert ("retry-after" in h) is (not decision.admitted)


@pytest.mark.parametrize("tier", sorted(DEFAULT_TIERS))
def test_every_tier_sends_a_policy(tier: str) -> None:
    limits = LimitsConfig()
    gcra, quota_plan = plan(limits, "c", tier, None, 1_800_000_000.0)
    if not gcra and not quota_plan:
        decision = Decision(Outcome.UNLIMITED)
    else:
        # a fresh consumer's first request, as the script answers it
        t = [60_000_000 // g.limits.per_minute for g in gcra if g.limits.per_minute]
        reply = [0, 0]
        for g, ti in zip(gcra, t, strict=True):
            assert g.limits.burst is not None
            reply += [g.limits.burst - 1, ti]
        reply += [0 for _ in quota_plan]
        decision = interpret(gcra, quota_plan, reply, 1_800_000_000.0)
    h = as_dict(rate_limit_headers(decision))
    assert "ratelimit-policy" in h
    t_ = DEFAULT_TIERS[tier]
    if t_.per_minute is not None and t_.burst is not None:
        assert h["x-ratelimit-limit"] == str(t_.burst)
        assert h["x-ratelimit-remaining"] == str(t_.burst - 1)
    if t_.per_day is not None:
        assert f'"day";q={t_.per_day};w=86400' in h["ratelimit-policy"]


def test_free_tier_first_request_reads_as_documented() -> None:
    # 60/min with a burst of 100: a bucket of 100 that an empty state refills in 100 s
    decision = Decision(Outcome.ALLOWED, rate=RateState(60, 100, 99, 1.0), quota=QuotaState(1000, 999, 3600))
    h = as_dict(rate_limit_headers(decision))
    assert h["x-ratelimit-limit"] == "100" and h["x-ratelimit-remaining"] == "99"
    assert h["x-ratelimit-reset"] == "1"
    assert h["ratelimit-policy"] == '"burst";q=100;w=100, "day";q=1000;w=86400'
    assert h["ratelimit"] == '"burst";r=99;t=1, "day";r=999;t=3600'


def test_refill_seconds_is_the_sustained_rate_over_the_burst() -> None:
    assert refill_seconds(60, 100) == 100
    assert refill_seconds(1000, 2000) == 120
    assert refill_seconds(60_000_000, 1) == 1  # never a zero window
    assert refill_seconds(7, 100) == 858  # 857.14...: rounded up, so q/w never overstates the rate
