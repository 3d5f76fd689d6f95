"""The analysis verdict (pure): exact early failure, every gate named with its figure, no pass
without evidence, and the post-promotion watch."""

from __future__ import annotations

import math

import pytest
from ferry_common.shadow_tally import Tally
from ferry_operator.analysis import (
    LIVE_MIN_SAMPLES,
    Gate,
    Gates,
    Reading,
    Verdict,
    judge,
    judge_live,
)
from hypothesis import given
from hypothesis import strategies as st

GATES = Gates(
    min_samples=200, timeout_seconds=600, min_agreement=0.95, max_error_rate=0.01, max_latency_ratio=1.5
)
FAST = {"active_p99_ms": 10.0, "preview_p99_ms": 12.0}


def test_a_preview_that_agrees_passes_with_its_figures() -> None:
    j = judge(GATES, Tally(samples=200, agreed=196, preview_errors=1, **FAST), elapsed=30)
    assert j.verdict is Verdict.Passed and j.gate is None
    assert (j.samples, j.agreement, j.error_rate, j.latency_ratio) == (200, 0.98, 0.005, 1.2)


def test_a_model_trained_on_wrong_labels_fails_on_agreement_as_soon_as_that_is_certain() -> None:
    # 11 disagreements: at most 10 of 200 may disagree for 95%, whatever the next 150 say.
    j = judge(GATES, Tally(samples=50, agreed=39, **FAST), elapsed=5)
    assert j.verdict is Verdict.Failed and j.gate is Gate.agreement
    assert "11 of 50" in j.message and "10" in j.message and "minAgreement 0.95" in j.message
    # 10 is still recoverable: wait for more samples.
    assert judge(GATES, Tally(samples=50, agreed=40, **FAST), elapsed=5).verdict is Verdict.Running


def test_with_enough_samples_the_first_failing_gate_is_named_with_its_figure() -> None:
    low = judge(GATES, Tally(samples=400, agreed=370, **FAST), elapsed=60)
    assert (low.verdict, low.gate) == (Verdict.Failed, Gate.agreement) and "92.5%" in low.message
    errors = judge(GATES, Tally(samples=400, agreed=400, preview_errors=6, **FAST), elapsed=60)
    assert (errors.verdict, errors.gate) == (Verdict.Failed, Gate.error_rate) and "1.5%" in errors.message
    slow = judge(GATES, Tally(samples=200, agreed=200, active_p99_ms=10.0, preview_p99_ms=31.0), elapsed=60)
    assert (slow.verdict, slow.gate) == (Verdict.Failed, Gate.latency_ratio)
    assert "3.10" in slow.message and "31.0 ms" in slow.message and "10.0 ms" in slow.message


def test_no_verdict_by_the_timeout_is_a_failure_saying_what_was_missing() -> None:
    assert judge(GATES, Tally(samples=120, agreed=120, **FAST), elapsed=599).verdict is Verdict.Running
    j = judge(GATES, Tally(samples=120, agreed=120, **FAST), elapsed=600)
    assert (j.verdict, j.gate) == (Verdict.Failed, Gate.timeout) and "120 of 200 samples" in j.message


def test_latency_is_a_gate_only_with_figures_for_both_colours() -> None:
    no_latency = Tally(samples=200, agreed=200)
    assert judge(GATES, no_latency, elapsed=10).verdict is Verdict.Running
    assert "latency figures" in judge(GATES, no_latency, elapsed=600).message
    without_gate = Gates(min_samples=200, max_latency_ratio=None)
    assert judge(without_gate, no_latency, elapsed=10).verdict is Verdict.Passed


def test_prometheus_checks_fail_at_once_out_of_bounds_and_are_waited_for_without_data() -> None:
    ok = Tally(samples=200, agreed=200, **FAST)
    over = Reading("p99", 0.08, max=0.05)
    j = judge(GATES, Tally(samples=3, agreed=3), elapsed=1, readings=(over,))
    assert (j.verdict, j.gate) == (
        Verdict.Failed,
        Gate.prometheus,
    ) and "p99: 0.08 is above its max 0.05" in j.message
    under = judge(GATES, ok, elapsed=1, readings=(Reading("rps", 2.0, min=5.0),))
    assert "below its min 5" in under.message
    for no_data in (None, math.nan):
        waiting = judge(GATES, ok, elapsed=1, readings=(Reading("p99", no_data, max=0.05),))
        assert waiting.verdict is Verdict.Running
    assert judge(GATES, ok, elapsed=1, readings=(Reading("p99", 0.01, max=0.05),)).verdict is Verdict.Passed


def test_gates_not_asked_for_are_not_judged() -> None:
    only_samples = Gates(min_samples=10, min_agreement=None, max_error_rate=None, max_latency_ratio=None)
    assert (
        judge(only_samples, Tally(samples=10, agreed=0, preview_errors=10), elapsed=1).verdict
        is Verdict.Passed
    )


gates = st.builds(
    Gates,
    min_samples=st.integers(1, 500),
    timeout_seconds=st.just(math.inf),
    min_agreement=st.one_of(st.none(), st.floats(0.5, 1.0)),
    max_error_rate=st.one_of(st.none(), st.floats(0.0, 0.2)),
    max_latency_ratio=st.none(),
)


@st.composite
def partial(draw: st.DrawFn, g: Gates) -> Tally:
    samples = draw(st.integers(0, g.min_samples - 1))
    agreed = draw(st.integers(0, samples))
    errors = draw(st.integers(0, samples - agreed))
    return Tally(samples=samples, agreed=agreed, preview_errors=errors)


@given(st.data())
def test_early_failure_is_exact_it_fails_only_what_no_remaining_samples_could_save(
    data: st.DataObject,
) -> None:
    g = data.draw(gates)
    t = data.draw(partial(g))
    early = judge(g, t, elapsed=0).verdict
    # The best the rest could do: every remaining sample agrees and succeeds.
    rest = g.min_samples - t.samples
    best = judge(g, Tally(g.min_samples, t.agreed + rest, t.preview_errors), elapsed=0).verdict
    assert early in (Verdict.Running, Verdict.Failed)
    assert (early is Verdict.Failed) == (best is Verdict.Failed)


@given(st.data())
def test_nothing_passes_before_min_samples(data: st.DataObject) -> None:
    g = data.draw(gates)
    assert judge(g, data.draw(partial(g)), elapsed=0).verdict is not Verdict.Passed


@given(st.integers(0, 1000), st.integers(0, 1000), st.floats(0, 1e6))
def test_a_verdict_is_always_given_by_the_timeout(samples: int, agreed: int, elapsed: float) -> None:
    t = Tally(samples=samples, agreed=min(agreed, samples), **FAST)
    j = judge(Gates(timeout_seconds=600), t, elapsed=elapsed)
    if elapsed >= 600:
        assert j.verdict is not Verdict.Running
    assert j.samples == samples


@pytest.mark.parametrize(
    ("tally", "since", "verdict"),
    [
        (Tally(samples=LIVE_MIN_SAMPLES, preview_errors=5, **FAST), 10.0, Verdict.Failed),
        # One error in the first few requests is not yet a rate.
        (Tally(samples=LIVE_MIN_SAMPLES - 1, preview_errors=1, **FAST), 10.0, Verdict.Running),
        (Tally(samples=500, preview_errors=0, active_p99_ms=10.0, preview_p99_ms=40.0), 10.0, Verdict.Failed),
        (Tally(samples=500, preview_errors=2, **FAST), 10.0, Verdict.Running),
        (Tally(samples=500, preview_errors=2, **FAST), 120.0, Verdict.Passed),
    ],
)
def test_after_promotion_the_error_and_latency_gates_keep_watching(
    tally: Tally, since: float, verdict: Verdict
) -> None:
    g = Gates(max_error_rate=0.01, max_latency_ratio=1.5, post_promotion_seconds=120)
    j = judge_live(g, tally, since)
    assert j.verdict is verdict, j.message
    if verdict is Verdict.Failed:
        assert j.message.startswith("after promotion: ")
