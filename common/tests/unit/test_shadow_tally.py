"""The shadow tally's layout: what gateways add up in Redis is what the operator reads back."""

from __future__ import annotations

from collections import Counter

from ferry_common.shadow_tally import (
    LATENCY_BUCKETS_MS,
    Tally,
    bucket,
    increments,
    p99,
    read,
    tally_key,
)
from hypothesis import given
from hypothesis import strategies as st


def add_up(pairs: list[tuple[float, float, bool, bool]]) -> dict[bytes, bytes]:
    """What HINCRBY from any number of gateway replicas leaves in the hash (as HGETALL returns it)."""
    total: Counter[str] = Counter()
    for pair in pairs:
        total.update(increments(*pair))
    return {k.encode(): str(v).encode() for k, v in total.items()}


def test_each_rollout_has_its_own_key() -> None:
    assert tally_key("ml", "titanic", "4", "green") == "ferry:shadow:ml/titanic:4:green"
    assert tally_key("ml", "titanic", "5", "blue") != tally_key("ml", "titanic", "4", "green")


def test_counts_and_p99_read_back() -> None:
    pairs = [(4.0, 6.0, True, False)] * 97 + [(4.0, 40.0, False, False)] * 2 + [(4.0, 900.0, False, True)]
    t = read(add_up(pairs))
    assert t == Tally(samples=100, agreed=97, preview_errors=1, active_p99_ms=5.0, preview_p99_ms=50.0)


def test_nothing_yet_reads_as_no_figures() -> None:
    assert read({}) == Tally()
    assert read({"someone-else": "x", b"samples": b"3"}).samples == 3


@given(st.floats(0, 1e6, allow_nan=False))
def test_a_latency_lands_in_the_first_bucket_that_holds_it(ms: float) -> None:
    b = bucket(ms)
    if b == "inf":
        assert ms > LATENCY_BUCKETS_MS[-1]
    else:
        bound = float(b)
        assert ms <= bound and all(ms > x for x in LATENCY_BUCKETS_MS if x < bound)


@given(st.lists(st.floats(0, 20_000, allow_nan=False), min_size=1, max_size=300))
def test_p99_is_the_bound_of_the_bucket_that_holds_the_99th_percentile(latencies: list[float]) -> None:
    counts = Counter(bucket(ms) for ms in latencies)
    got = p99(counts)
    assert got is not None
    ranked = sorted(latencies)
    nth = ranked[max(0, -(-99 * len(ranked) // 100) - 1)]  # the ceil(0.99 n)-th smallest
    assert got == float(bucket(nth))
