"""The analysis verdict: is the preview fit to serve, judged on live traffic mirrored to it.

A pure function of (gates, tally, elapsed time, Prometheus readings), like ``bluegreen.decide``:
the shell gathers the figures (the gateway's shadow counters for this rollout, read from Redis as
``ferry_common.shadow_tally`` lays them out, and the Prometheus checks' values) and writes the
judgement to ``status.analysis``; the state machine aborts or promotes on it. Names follow
``spec.rollout.analysis`` (../shared/DESIGN.md).

How a verdict is reached, in order:
- a gate already failed for good fails at once (a Prometheus check out of bounds, or more
  disagreements or preview errors than ``minSamples`` allows even if every later sample were
  perfect), so a bad model is refused as soon as that is certain, not at the timeout;
- with ``minSamples`` samples, every gate is judged on the figures: the first failing one names
  itself and its figure; all passing is Passed;
- past ``timeoutSeconds`` without a verdict, Failed (no verdict is not a pass);
- otherwise Running, with the tally so far.

After the switch (``postPromotionSeconds``) ``judge_live`` keeps the error and latency gates on the
new colour's live traffic: a failure means an instant rollback, the window's end means Passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from ferry_common.shadow_tally import Tally

# After the switch the rates are judged from this many live requests on (or minSamples if fewer):
# enough that one transient error does not roll a good version back, few enough to act in seconds.
LIVE_MIN_SAMPLES = 20


class Verdict(StrEnum):
    Running = "Running"
    Passed = "Passed"
    Failed = "Failed"


class Gate(StrEnum):
    agreement = "minAgreement"
    error_rate = "maxErrorRate"
    latency_ratio = "maxLatencyRatio"
    prometheus = "prometheus"
    timeout = "timeoutSeconds"


@dataclass(frozen=True)
class Gates:
    """``spec.rollout.analysis``; None: that gate is not asked for."""

    min_samples: int = 200
    timeout_seconds: float = 600.0
    min_agreement: float | None = 0.95
    max_error_rate: float | None = 0.01
    max_latency_ratio: float | None = 1.5
    post_promotion_seconds: float = 0.0


@dataclass(frozen=True)
class Reading:
    """One Prometheus check: its query's value now (None: no data yet) and its bound."""

    name: str
    value: float | None
    min: float | None = None
    max: float | None = None

    @property
    def has_data(self) -> bool:
        # An empty result, or NaN (a rate over no requests): nothing to judge yet.
        return self.value is not None and not math.isnan(self.value)

    def breach(self) -> str | None:
        """The bound the value is beyond, if it is (no data breaches nothing)."""
        value = self.value
        if value is None or math.isnan(value):
            return None
        if self.min is not None and value < self.min:
            return f"below its min {self.min:g}"
        if self.max is not None and value > self.max:
            return f"above its max {self.max:g}"
        return None


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str
    gate: Gate | None = None  # the gate that failed, if one did
    samples: int = 0
    agreement: float | None = None
    error_rate: float | None = None
    latency_ratio: float | None = None


def agreement(t: Tally) -> float | None:
    return t.agreed / t.samples if t.samples else None


def error_rate(t: Tally) -> float | None:
    return t.preview_errors / t.samples if t.samples else None


def latency_ratio(t: Tally) -> float | None:
    if t.active_p99_ms is None or t.preview_p99_ms is None or t.active_p99_ms <= 0:
        return None
    return t.preview_p99_ms / t.active_p99_ms


def _judged(verdict: Verdict, message: str, t: Tally, gate: Gate | None = None) -> Judgement:
    return Judgement(verdict, message, gate, t.samples, agreement(t), error_rate(t), latency_ratio(t))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _certain_failure(g: Gates, t: Tally) -> Judgement | None:
    """A count gate that cannot pass any more, however the remaining samples go."""
    if g.min_agreement is not None:
        allowed = math.floor((1 - g.min_agreement) * g.min_samples + 1e-9)
        disagreed = t.samples - t.agreed
        if disagreed > allowed and t.samples < g.min_samples:
            return _judged(
                Verdict.Failed,
                f"agreement: {disagreed} of {t.samples} mirrored predictions disagree with the active"
                f" version's, more than the {allowed} that minAgreement {g.min_agreement} allows in"
                f" {g.min_samples}",
                t,
                Gate.agreement,
            )
    if g.max_error_rate is not None:
        allowed = math.floor(g.max_error_rate * g.min_samples + 1e-9)
        if t.preview_errors > allowed and t.samples < g.min_samples:
            return _judged(
                Verdict.Failed,
                f"error rate: the preview failed {t.preview_errors} of {t.samples} mirrored requests,"
                f" more than the {allowed} that maxErrorRate {g.max_error_rate} allows in {g.min_samples}",
                t,
                Gate.error_rate,
            )
    return None


def _gate_failures(g: Gates, t: Tally) -> Judgement | None:
    """With enough samples: the first gate whose figure is out of bounds."""
    a, e, r = agreement(t), error_rate(t), latency_ratio(t)
    if g.min_agreement is not None and a is not None and a < g.min_agreement:
        return _judged(
            Verdict.Failed,
            f"agreement {_pct(a)} over {t.samples} mirrored predictions is below minAgreement"
            f" {_pct(g.min_agreement)}",
            t,
            Gate.agreement,
        )
    if g.max_error_rate is not None and e is not None and e > g.max_error_rate:
        return _judged(
            Verdict.Failed,
            f"error rate {_pct(e)} over {t.samples} mirrored requests is above maxErrorRate"
            f" {_pct(g.max_error_rate)}",
            t,
            Gate.error_rate,
        )
    if g.max_latency_ratio is not None and r is not None and r > g.max_latency_ratio:
        return _judged(
            Verdict.Failed,
            f"latency ratio {r:.2f} (preview p99 {t.preview_p99_ms:.1f} ms over active p99"
            f" {t.active_p99_ms:.1f} ms on the same requests) is above maxLatencyRatio {g.max_latency_ratio}",
            t,
            Gate.latency_ratio,
        )
    return None


def _out_of_bounds(readings: tuple[Reading, ...], t: Tally) -> Judgement | None:
    for c in readings:
        breach = c.breach()
        if breach:
            return _judged(
                Verdict.Failed, f"prometheus check {c.name}: {c.value:g} is {breach}", t, Gate.prometheus
            )
    return None


def judge(g: Gates, t: Tally, elapsed: float, readings: tuple[Reading, ...] = ()) -> Judgement:
    """The preview's verdict while the rollout is Verifying."""
    failed = _out_of_bounds(readings, t) or _certain_failure(g, t)
    if failed:
        return failed
    waiting_for = [c.name for c in readings if not c.has_data]
    if t.samples >= g.min_samples:
        failed = _gate_failures(g, t)
        if failed:
            return failed
        if g.max_latency_ratio is not None and latency_ratio(t) is None:
            waiting_for.append("latency figures")
        if not waiting_for:
            return _judged(Verdict.Passed, f"every gate passed over {t.samples} mirrored requests", t)
    if elapsed >= g.timeout_seconds:
        missing = f"{t.samples} of {g.min_samples} samples"
        if waiting_for:
            missing += f", no data for {', '.join(waiting_for)}"
        return _judged(
            Verdict.Failed, f"no verdict after {elapsed:.0f} s (timeoutSeconds): {missing}", t, Gate.timeout
        )
    return _judged(Verdict.Running, f"{t.samples} of {g.min_samples} samples", t)


def judge_live(g: Gates, t: Tally, since_promotion: float, readings: tuple[Reading, ...] = ()) -> Judgement:
    """After the switch: the error and latency gates on the new colour's live traffic.

    ``t`` counts live requests since the promotion (``agreed`` is not used: there is nothing to
    compare with any more). Failed means roll back now; Passed once the window is over.
    """
    live = Gates(
        min_samples=1,
        timeout_seconds=math.inf,
        min_agreement=None,
        max_error_rate=g.max_error_rate,
        max_latency_ratio=g.max_latency_ratio,
    )
    judged = t.samples >= min(g.min_samples, LIVE_MIN_SAMPLES)
    failed = _out_of_bounds(readings, t) or (_gate_failures(live, t) if judged else None)
    if failed:
        return replace(failed, message=f"after promotion: {failed.message}")
    if since_promotion >= g.post_promotion_seconds:
        return _judged(
            Verdict.Passed,
            f"no gate failed in the {g.post_promotion_seconds:.0f} s after promotion ({t.samples} requests)",
            t,
        )
    return _judged(Verdict.Running, f"watching live traffic: {t.samples} requests since promotion", t)
