"""Every Prometheus metric the predictor exports, named in this one place.

Dashboards and alert rules are generated from, and checked against, these constants; they are
the exposition names (counters include ``_total``). Labels are listed in ``LABELS``.

Feature summaries are counters (sum, present, missing, category counts) rather than
histograms: a batch updates each once, and ``rate(sum) / rate(present)`` gives a feature's mean
over any window (minus ``rate(negative_sum)`` for features that can be negative), which is what a
drift panel compares with the training mean.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ferry_predictor.schema import FLOAT_TYPES, INTEGER_TYPES, Batch, InputSchema

REQUESTS_TOTAL = "ferry_predictor_requests_total"
REQUEST_DURATION_SECONDS = "ferry_predictor_request_duration_seconds"
BATCH_ROWS = "ferry_predictor_batch_rows"
PREDICTIONS_TOTAL = "ferry_predictor_predictions_total"
FEATURE_SUM_TOTAL = "ferry_predictor_feature_sum_total"
FEATURE_NEGATIVE_SUM_TOTAL = "ferry_predictor_feature_negative_sum_total"
FEATURE_PRESENT_TOTAL = "ferry_predictor_feature_present_total"
FEATURE_MISSING_TOTAL = "ferry_predictor_feature_missing_total"
FEATURE_CATEGORY_TOTAL = "ferry_predictor_feature_category_total"
MODEL_READY = "ferry_predictor_model_ready"
MODEL_LOAD_SECONDS = "ferry_predictor_model_load_seconds"
MODEL_LOAD_FAILURES_TOTAL = "ferry_predictor_model_load_failures_total"
FAST_PATH = "ferry_predictor_fast_path"
ARTIFACT_MISMATCH = "ferry_predictor_artifact_mismatch"

LABELS: dict[str, tuple[str, ...]] = {
    REQUESTS_TOTAL: ("model", "version", "protocol", "status"),
    REQUEST_DURATION_SECONDS: ("model", "version", "protocol", "status"),
    BATCH_ROWS: ("model", "version"),
    PREDICTIONS_TOTAL: ("model", "version", "class"),
    FEATURE_SUM_TOTAL: ("model", "version", "feature"),
    FEATURE_NEGATIVE_SUM_TOTAL: ("model", "version", "feature"),
    FEATURE_PRESENT_TOTAL: ("model", "version", "feature"),
    FEATURE_MISSING_TOTAL: ("model", "version", "feature"),
    FEATURE_CATEGORY_TOTAL: ("model", "version", "feature", "value"),
    MODEL_READY: ("model", "version"),
    MODEL_LOAD_SECONDS: ("model", "version"),
    MODEL_LOAD_FAILURES_TOTAL: ("model",),
    FAST_PATH: ("model", "version"),
    ARTIFACT_MISMATCH: ("model", "version"),
}
ALL: tuple[str, ...] = tuple(LABELS)

# Sub-millisecond buckets: the fast path answers in well under 1 ms, and the defaults start at 5 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


@dataclass
class _BatchStats:
    """Per-row tallies of one model version, kept in plain dicts and turned into metrics at scrape time.

    A 100-row batch would otherwise make hundreds of locked counter updates; the event loop is the
    only writer and the only reader (/metrics), so plain dicts are safe.
    """

    predictions: Tally[str] = field(default_factory=Tally)
    feature_sum: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    feature_negative_sum: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    feature_present: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    feature_missing: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    feature_category: defaultdict[str, Tally[Any]] = field(default_factory=lambda: defaultdict(Tally))


class _BatchCollector(Collector):
    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], _BatchStats] = {}

    def describe(self) -> list[Any]:
        return []  # unchecked collector: families appear once rows have been seen

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = list(self.stats.items())
        fams = {
            name: CounterMetricFamily(name, doc, labels=LABELS[name])
            for name, doc in (
                (PREDICTIONS_TOTAL, "Predicted rows by class"),
                (FEATURE_SUM_TOTAL, "Sum of a numeric feature's non-negative values"),
                (FEATURE_NEGATIVE_SUM_TOTAL, "Sum of |v| over a numeric feature's negative values"),
                (FEATURE_PRESENT_TOTAL, "Rows in which a feature had a value"),
                (FEATURE_MISSING_TOTAL, "Rows in which an optional feature was missing"),
                (FEATURE_CATEGORY_TOTAL, "Rows per value of an enumerated feature"),
            )
        }
        for (model, version), s in stats:
            for cls, n in s.predictions.items():
                fams[PREDICTIONS_TOTAL].add_metric([model, version, cls], n)
            for name, table in (
                (FEATURE_SUM_TOTAL, s.feature_sum),
                (FEATURE_NEGATIVE_SUM_TOTAL, s.feature_negative_sum),
                (FEATURE_PRESENT_TOTAL, s.feature_present),
                (FEATURE_MISSING_TOTAL, s.feature_missing),
            ):
                for feature, value in table.items():
                    fams[name].add_metric([model, version, feature], value)
            for feature, tally in s.feature_category.items():
                for value, n in tally.items():
                    fams[FEATURE_CATEGORY_TOTAL].add_metric([model, version, feature, str(value)], n)
        yield from fams.values()


class Metrics:
    """The predictor's collectors, in their own registry so tests and servers do not share state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(REQUESTS_TOTAL, "Inference requests", LABELS[REQUESTS_TOTAL], registry=r)
        self.duration = Histogram(
            REQUEST_DURATION_SECONDS,
            "Inference request latency (body read to response)",
            LABELS[REQUEST_DURATION_SECONDS],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Histogram(
            BATCH_ROWS, "Rows per inference request", LABELS[BATCH_ROWS], buckets=ROW_BUCKETS, registry=r
        )
        self.ready = Gauge(
            MODEL_READY, "1 when the model is loaded and serving", LABELS[MODEL_READY], registry=r
        )
        self.load_seconds = Gauge(
            MODEL_LOAD_SECONDS,
            "Seconds the last successful model load took",
            LABELS[MODEL_LOAD_SECONDS],
            registry=r,
        )
        self.load_failures = Counter(
            MODEL_LOAD_FAILURES_TOTAL,
            "Failed model load attempts",
            LABELS[MODEL_LOAD_FAILURES_TOTAL],
            registry=r,
        )
        self.fast_path = Gauge(
            FAST_PATH,
            "1 when the compiled scikit-learn fast path serves the model",
            LABELS[FAST_PATH],
            registry=r,
        )
        self.artifact_mismatch = Gauge(
            ARTIFACT_MISMATCH,
            "1 when the downloaded artifacts differ from FERRY_ARTIFACT_DIGEST and the model was refused",
            LABELS[ARTIFACT_MISMATCH],
            registry=r,
        )
        self._batches = _BatchCollector()
        r.register(self._batches)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        # Label lookups cost more than the increments; cache the children per label set.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        s = str(status)
        self._child(self.requests, model, version, protocol, s).inc()
        self._child(self.duration, model, version, protocol, s).observe(seconds)

    def observe_batch(
        self, model: str, version: str, batch: Batch, schema: InputSchema | None, labels: Sequence[Any]
    ) -> None:
        self._child(self.rows, model, version).observe(batch.rows)
        stats = self._batches.stats.get((model, version))
        if stats is None:
            stats = self._batches.stats[(model, version)] = _BatchStats()
        stats.predictions.update(map(str, labels))
        if schema is None:
            return
        for col in schema.columns:
            values = batch.columns[col.name]
            missing = values.count(None)
            present = values
            if missing:
                stats.feature_missing[col.name] += missing
                present = [v for v in values if v is not None]
                if not present:
                    continue
            stats.feature_present[col.name] += len(present)
            if col.enum is not None:
                # Only enumerated features: free-text values would explode the label cardinality.
                stats.feature_category[col.name].update(present)
            elif col.type in FLOAT_TYPES or col.type in INTEGER_TYPES:
                total = sum(present)
                if min(present) >= 0:
                    stats.feature_sum[col.name] += total
                else:
                    # Counters only grow: negatives get their own counter (mean = (sum - negative) / n).
                    negative = -sum(v for v in present if v < 0)
                    stats.feature_sum[col.name] += total + negative
                    stats.feature_negative_sum[col.name] += negative
