"""The operator's Prometheus metrics (served by ``ferry-operator --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "ferry_operator_reconciles_total",
    "Reconciles of ModelDeployments, by result (ok, requeue, error).",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "ferry_operator_reconcile_duration_seconds",
    "Wall time of one reconcile of a ModelDeployment.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REGISTRY_SECONDS = Histogram(
    "ferry_operator_registry_request_duration_seconds",
    "Latency of MLflow registry requests, by operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REGISTRY_ERRORS = Counter(
    "ferry_operator_registry_errors_total",
    "MLflow registry requests that failed, by operation and reason.",
    ["operation", "reason"],
)
TRANSITIONS = Counter(
    "ferry_operator_rollout_transitions_total",
    "Blue-green rollout events (Promoted, Aborted, RolledBack, Superseded, RolloutStarted).",
    ["event"],
)
