"""The operator's Prometheus metrics (served by ``ferry-operator --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
WEBHOOK_DELIVERIES = Counter(
    "ferry_operator_webhook_deliveries_total",
    "MLflow webhook deliveries, by result: accepted, ignored (an event Ferry does not act on), or"
    " the refusal's error code (unauthenticated: unsigned, bad signature or stale; conflict: replay).",
    ["result"],
)
WEBHOOK_LAST_ACCEPTED = Gauge(
    "ferry_operator_webhook_last_accepted_timestamp_seconds",
    "When the last MLflow webhook delivery was accepted (unix seconds; 0: none since start).",
)
WEBHOOK_REFRESHES = Counter(
    "ferry_operator_webhook_refreshes_total",
    "ModelDeployments re-resolved at once because a webhook delivery concerned them.",
)
