"""Every Prometheus metric the gateway exports, named in ONE place.

Dashboards and alert rules are generated from and checked against the ``*_NAME`` constants
below; rename nothing without updating them. Label values are bounded: models and consumers
are declared, status is an HTTP code, reasons and outcomes are fixed enums.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# *_created series double the exposition and no dashboard uses them
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS_NAME = "ferry_gateway_requests_total"
REQUEST_DURATION_NAME = "ferry_gateway_request_duration_seconds"
UPSTREAM_DURATION_NAME = "ferry_gateway_upstream_duration_seconds"
RATELIMIT_DECISIONS_NAME = "ferry_gateway_ratelimit_decisions_total"
AUTH_FAILURES_NAME = "ferry_gateway_auth_failures_total"
REDIS_ERRORS_NAME = "ferry_gateway_redis_errors_total"
UPSTREAM_ERRORS_NAME = "ferry_gateway_upstream_errors_total"
CIRCUIT_OPEN_NAME = "ferry_gateway_circuit_open"
CONSUMERS_REJECTED_NAME = "ferry_gateway_consumers_file_rejected"
UPSTREAM_RETRIES_NAME = "ferry_gateway_upstream_retries_total"

ALL_NAMES = (
    REQUESTS_NAME,
    REQUEST_DURATION_NAME,
    UPSTREAM_DURATION_NAME,
    RATELIMIT_DECISIONS_NAME,
    AUTH_FAILURES_NAME,
    REDIS_ERRORS_NAME,
    UPSTREAM_ERRORS_NAME,
    CIRCUIT_OPEN_NAME,
    CONSUMERS_REJECTED_NAME,
    UPSTREAM_RETRIES_NAME,
)

# Latency buckets resolve the sub-millisecond gateway overhead as well as slow models.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# prometheus_client appends _total to counters itself, so counters are declared without it.
REQUESTS = Counter(
    REQUESTS_NAME.removesuffix("_total"),
    "Requests handled, by model (or '-' for non-model routes), consumer and HTTP status.",
    ["model", "consumer", "status"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    REQUEST_DURATION_NAME,
    "Time from request received to response sent, including the upstream call.",
    ["model"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_DURATION = Histogram(
    UPSTREAM_DURATION_NAME,
    "Time spent waiting for the predictor; request minus upstream is the gateway's own overhead.",
    ["model"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
RATELIMIT_DECISIONS = Counter(
    RATELIMIT_DECISIONS_NAME.removesuffix("_total"),
    "Rate-limit decisions: allowed, rate_limited, quota_exceeded, fail_open, fail_closed, unlimited.",
    ["tier", "outcome"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    AUTH_FAILURES_NAME.removesuffix("_total"),
    "Requests refused by authentication or authorization, by reason code.",
    ["reason"],
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    REDIS_ERRORS_NAME.removesuffix("_total"),
    "Failed Redis calls by exception type (connection refused, timeout, ...).",
    ["error"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    UPSTREAM_ERRORS_NAME.removesuffix("_total"),
    "Failed upstream calls by model and kind (connect, timeout, circuit_open).",
    ["model", "kind"],
    registry=REGISTRY,
)
UPSTREAM_RETRIES = Counter(
    UPSTREAM_RETRIES_NAME.removesuffix("_total"),
    "Upstream requests sent a second time, on a fresh connection, because the first answered"
    " nothing: refused (connect refused), reset (closed before any byte), keepalive (an idle"
    " connection closed as it was reused). Never after a timeout or a partial answer.",
    ["model", "reason"],
    registry=REGISTRY,
)
CIRCUIT_OPEN = Gauge(
    CIRCUIT_OPEN_NAME,
    "1 while the circuit breaker in front of a dependency (redis or an upstream) is open.",
    ["target"],
    registry=REGISTRY,
)

CONSUMERS_REJECTED = Gauge(
    CONSUMERS_REJECTED_NAME,
    "1 while the consumers file on disk is refused (unreadable or invalid) and the last good copy "
    "still decides who gets in: edits to it, revocations too, are not in force.",
    registry=REGISTRY,
)


def exposition() -> tuple[bytes, str]:
    """What the metrics port answers to GET /metrics (ferry_common.metricsport); the traffic port
    has no /metrics, since consumer names and upstream URLs are not for callers."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
