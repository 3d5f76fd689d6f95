"""Ferry's alert rules as code: one rules file, valid for promtool and as a PrometheusRule spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from ferry_gateway import metrics as gw
from ferry_predictor import metrics as pr

from ferry_generate.dashboards import OP_RECONCILES, OP_REGISTRY_ERRORS, OP_TRANSITIONS
from ferry_generate.header import yaml_header

OUTPUT = Path("charts/ferry/files/rules/ferry.rules.yaml")


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str


def _ratio(num: str, den: str) -> str:
    return f"({num}) / ({den})"


GATEWAY = (
    Alert(
        "FerryGateway5xxRatioHigh",
        _ratio(
            f'sum by (model) (rate({gw.REQUESTS_NAME}{{status=~"5.."}}[5m]))',
            f"sum by (model) (rate({gw.REQUESTS_NAME}[5m])) > 0",
        )
        + " > 0.05",
        "5m",
        "critical",
        "More than 5% of requests to {{ $labels.model }} fail with 5xx",
        "{{ $value | humanizePercentage }} of the gateway's responses for {{ $labels.model }} are 5xx.",
    ),
    Alert(
        "FerryGatewayLatencyP99High",
        f"histogram_quantile(0.99, sum by (le, model) (rate({gw.REQUEST_DURATION_NAME}_bucket[5m]))) > 1",
        "10m",
        "warning",
        "p99 latency of {{ $labels.model }} above 1s",
        "The gateway's p99 for {{ $labels.model }} is {{ $value | humanizeDuration }}.",
    ),
    Alert(
        "FerryGatewayRateLimitSaturation",
        _ratio(
            f"sum by (tier) (rate({gw.RATELIMIT_DECISIONS_NAME}"
            '{outcome=~"rate_limited|quota_exceeded"}[10m]))',
            f"sum by (tier) (rate({gw.RATELIMIT_DECISIONS_NAME}[10m])) > 0",
        )
        + " > 0.2",
        "15m",
        "warning",
        "Over 20% of tier {{ $labels.tier }} requests are rate limited",
        "Consumers of tier {{ $labels.tier }} hit their limits: raise the tier or talk to them.",
    ),
    Alert(
        "FerryGatewayAuthFailureSpike",
        f"sum by (reason) (rate({gw.AUTH_FAILURES_NAME}[5m])) > 1",
        "5m",
        "warning",
        "Authentication failures ({{ $labels.reason }}) above 1/s",
        "Possible credential stuffing or a broken client: "
        "{{ $value | humanize }}/s refused for {{ $labels.reason }}.",
    ),
    Alert(
        "FerryGatewayRedisErrors",
        f"sum(rate({gw.REDIS_ERRORS_NAME}[5m])) > 0",
        "5m",
        "critical",
        "The gateway cannot reach Redis",
        "Rate limits are failing open or closed (per FERRY_RATE_LIMIT_FAILURE_MODE) while Redis is down.",
    ),
    Alert(
        "FerryGatewayConsumersFileRejected",
        f"max({gw.CONSUMERS_REJECTED_NAME}) > 0",
        "5m",
        "critical",
        "A gateway refuses its consumers file",
        "The gateway serves the last good copy of its consumers file: edits to it, revocations "
        "included, are not in force until the file is fixed; its log says why it was refused.",
    ),
)

OPERATOR = (
    Alert(
        "FerryRolloutFailed",
        f'sum by (event) (increase({OP_TRANSITIONS}{{event=~"Aborted|RolledBack"}}[15m])) > 0',
        "0m",
        "warning",
        "A rollout was {{ $labels.event }}",
        "A ModelDeployment rollout ended with {{ $labels.event }}; see `kubectl ferry history`.",
    ),
    Alert(
        "FerryRolloutStuck",
        # "or vector(0)": before any rollout has ever finished, the finished series do not exist yet.
        f'sum(increase({OP_TRANSITIONS}{{event="RolloutStarted"}}[1h]))'
        f' - (sum(increase({OP_TRANSITIONS}{{event=~"Promoted|Aborted|Superseded|RolledBack"}}[1h]))'
        " or vector(0)) > 0",
        "30m",
        "warning",
        "A rollout started over 30 minutes ago has not finished",
        "Rollouts started in the last hour outnumber those that finished; see `kubectl get md -A`.",
    ),
    Alert(
        "FerryOperatorReconcileErrors",
        _ratio(
            f'sum(rate({OP_RECONCILES}{{result="error"}}[10m]))',
            f"sum(rate({OP_RECONCILES}[10m])) > 0",
        )
        + " > 0.1",
        "10m",
        "warning",
        "Over 10% of the operator's reconciles fail",
        "Check the operator's logs and the ModelDeployments' conditions.",
    ),
    Alert(
        "FerryRegistryErrors",
        f"sum by (operation) (rate({OP_REGISTRY_ERRORS}[10m])) > 0",
        "10m",
        "warning",
        "MLflow registry calls ({{ $labels.operation }}) fail",
        "The operator cannot resolve models: new versions will not roll out.",
    ),
)

PREDICTOR = (
    Alert(
        "FerryPredictorNotReady",
        f"max by (namespace, pod, model, version) ({pr.MODEL_READY}) == 0",
        "10m",
        "critical",
        "Predictor {{ $labels.pod }} has not loaded {{ $labels.model }} v{{ $labels.version }}",
        "The model is not loaded; the pod cannot serve.",
    ),
    Alert(
        "FerryPredictorModelLoadFailing",
        f"sum by (namespace, pod, model) (increase({pr.MODEL_LOAD_FAILURES_TOTAL}[15m])) > 0",
        "15m",
        "critical",
        "Predictor {{ $labels.pod }} keeps failing to load {{ $labels.model }}",
        "The model cannot be downloaded or loaded (registry down, wrong URI or credentials).",
    ),
    Alert(
        "FerryPredictorArtifactMismatch",
        f"max by (namespace, pod, model, version) ({pr.ARTIFACT_MISMATCH}) > 0",
        "0m",
        "critical",
        "Predictor {{ $labels.pod }} refused {{ $labels.model }} v{{ $labels.version }}: artifacts changed",
        "The artifact store holds files for this version other than those the operator recorded: "
        "someone with write access to the registry or the store changed them. Nothing was loaded.",
    ),
    Alert(
        "FerryPredictor5xxRatioHigh",
        _ratio(
            f'sum by (model, version) (rate({pr.REQUESTS_TOTAL}{{status=~"5.."}}[5m]))',
            f"sum by (model, version) (rate({pr.REQUESTS_TOTAL}[5m])) > 0",
        )
        + " > 0.05",
        "5m",
        "critical",
        "{{ $labels.model }} v{{ $labels.version }} fails over 5% of requests",
        "The predictor itself answers 5xx.",
    ),
)

GROUPS = (("ferry.gateway", GATEWAY), ("ferry.operator", OPERATOR), ("ferry.predictor", PREDICTOR))


def rules() -> dict[str, object]:
    return {
        "groups": [
            {
                "name": group,
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity, "component": group.removeprefix("ferry.")},
                        "annotations": {
                            "summary": a.summary,
                            "description": a.description,
                        },
                    }
                    for a in alerts
                ],
            }
            for group, alerts in GROUPS
        ]
    }


def render() -> str:
    return yaml_header("ferry_generate/alerts.py") + yaml.safe_dump(rules(), sort_keys=False, width=200)


def expressions() -> list[tuple[str, str]]:
    return [(a.name, a.expr) for _, alerts in GROUPS for a in alerts]
