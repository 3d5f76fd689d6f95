"""Ferry's Grafana dashboards as code (grafana-foundation-sdk), from the components' metric names.

Three boards: an overview (traffic, errors, latency by model and colour, rollouts), the gateway and
its consumers (usage, 429s, auth failures by reason), and one model (latency, predictions by class,
input feature drift, versions over time). Every query names metrics through the constants of
ferry_gateway.metrics / ferry_predictor.metrics / ferry_operator.metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ferry_gateway import metrics as gw
from ferry_operator import metrics as op
from ferry_predictor import metrics as pr
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from prometheus_client.metrics import MetricWrapperBase

OUTPUT_DIR = Path("charts/ferry/files/dashboards")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"


# Operator metrics are module-level collectors; their exposition names come from the collectors.
def _name(collector: MetricWrapperBase, suffix: str = "") -> str:
    (family,) = collector.describe()
    return str(family.name) + suffix


OP_RECONCILES = _name(op.RECONCILES, "_total")
OP_RECONCILE_SECONDS = _name(op.RECONCILE_SECONDS)
OP_REGISTRY_SECONDS = _name(op.REGISTRY_SECONDS)
OP_REGISTRY_ERRORS = _name(op.REGISTRY_ERRORS, "_total")
OP_TRANSITIONS = _name(op.TRANSITIONS, "_total")


def rate(metric: str, selector: str = "") -> str:
    return f"rate({metric}{{{selector}}}{RATE})"


def sum_rate(by: str, metric: str, selector: str = "") -> str:
    return f"sum by ({by}) ({rate(metric, selector)})"


def quantile(q: float, by: str, histogram: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) ({rate(histogram + '_bucket', selector)}))"


def ratio_or_zero(numerator: str, denominator: str) -> str:
    """numerator / denominator, 0 (not "no data") for series whose numerator has no samples yet."""
    return f"({numerator} or ({denominator} * 0)) / {denominator}"


Kind = Literal["timeseries", "stat", "table"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Kind = "timeseries"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]
    variables: tuple[tuple[str, str], ...] = field(default=())  # (name, label_values query)


def q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


MODEL = 'model=~"$model"'
GW_REQ = gw.REQUESTS_NAME
GW_DUR = gw.REQUEST_DURATION_NAME
GW_UP = gw.UPSTREAM_DURATION_NAME

OVERVIEW = Board(
    uid="ferry-overview",
    title="Ferry / Overview",
    description="Traffic, errors and latency by model and colour; rollouts and the operator.",
    variables=(("model", f"label_values({GW_REQ}, model)"),),
    rows=(
        (
            "Traffic",
            (
                Panel(
                    "Requests/s by model (gateway)",
                    q(sum_rate("model", GW_REQ, MODEL), "{{model}}"),
                    "reqps",
                ),
                Panel(
                    "5xx ratio by model (gateway)",
                    q(
                        ratio_or_zero(
                            sum_rate("model", GW_REQ, MODEL + ',status=~"5.."'),
                            sum_rate("model", GW_REQ, MODEL),
                        ),
                        "{{model}}",
                    ),
                    "percentunit",
                ),
                Panel(
                    "Gateway latency by model",
                    (
                        Query(quantile(0.5, "model", GW_DUR, MODEL), "p50 {{model}}"),
                        Query(quantile(0.99, "model", GW_DUR, MODEL), "p99 {{model}}"),
                    ),
                    "s",
                ),
                Panel(
                    "Predictor latency p99 by model and colour",
                    q(
                        quantile(0.99, "model, color", pr.REQUEST_DURATION_SECONDS, MODEL),
                        "{{model}} {{color}}",
                    ),
                    "s",
                ),
                Panel(
                    "Predictor requests/s by model, colour and status",
                    q(
                        sum_rate("model, color, status", pr.REQUESTS_TOTAL, MODEL),
                        "{{model}} {{color}} {{status}}",
                    ),
                    "reqps",
                ),
                Panel(
                    "Gateway overhead p50 (request minus upstream)",
                    q(
                        f"{quantile(0.5, 'model', GW_DUR, MODEL)} - {quantile(0.5, 'model', GW_UP, MODEL)}",
                        "{{model}}",
                    ),
                    "s",
                ),
            ),
        ),
        (
            "Rollouts and the operator",
            (
                Panel(
                    "Serving versions (ready predictors)",
                    q(f"sum by (model, version) ({pr.MODEL_READY}{{{MODEL}}})", "{{model}} v{{version}}"),
                    kind="stat",
                ),
                Panel(
                    "Rollout events",
                    q(f"sum by (event) (increase({OP_TRANSITIONS}[$__range]))", "{{event}}"),
                    kind="stat",
                ),
                Panel("Reconciles/s by result", q(sum_rate("result", OP_RECONCILES), "{{result}}"), "ops"),
                Panel(
                    "Reconcile duration p99",
                    q(
                        f"histogram_quantile(0.99, sum by (le) ({rate(OP_RECONCILE_SECONDS + '_bucket')}))",
                        "p99",
                    ),
                    "s",
                ),
                Panel(
                    "MLflow registry latency p99 by operation",
                    q(quantile(0.99, "operation", OP_REGISTRY_SECONDS), "{{operation}}"),
                    "s",
                ),
            ),
        ),
    ),
)

GATEWAY = Board(
    uid="ferry-gateway",
    title="Ferry / Gateway and consumers",
    description="Usage per consumer, rate limiting, authentication failures, upstream health.",
    variables=(("consumer", f"label_values({GW_REQ}, consumer)"),),
    rows=(
        (
            "Consumers",
            (
                Panel(
                    "Requests/s by consumer",
                    q(sum_rate("consumer", GW_REQ, 'consumer=~"$consumer"'), "{{consumer}}"),
                    "reqps",
                ),
                Panel(
                    "Top consumers (requests, last hour)",
                    q(
                        f'topk(10, sum by (consumer) (increase({GW_REQ}{{consumer=~"$consumer"}}[1h])))',
                        "{{consumer}}",
                    ),
                    kind="table",
                ),
                Panel(
                    "429s by consumer",
                    q(sum_rate("consumer", GW_REQ, 'consumer=~"$consumer",status="429"'), "{{consumer}}"),
                    "reqps",
                ),
                Panel(
                    "Rate-limit decisions by tier and outcome",
                    q(sum_rate("tier, outcome", gw.RATELIMIT_DECISIONS_NAME), "{{tier}} {{outcome}}"),
                    "ops",
                ),
            ),
        ),
        (
            "Security and dependencies",
            (
                Panel(
                    "Auth failures by reason",
                    q(sum_rate("reason", gw.AUTH_FAILURES_NAME), "{{reason}}"),
                    "ops",
                ),
                Panel(
                    "Upstream errors by model and kind",
                    q(sum_rate("model, kind", gw.UPSTREAM_ERRORS_NAME), "{{model}} {{kind}}"),
                    "ops",
                ),
                Panel(
                    "Redis errors",
                    q(sum_rate("error", gw.REDIS_ERRORS_NAME), "{{error}}"),
                    "ops",
                ),
                Panel(
                    "Open circuit breakers",
                    q(f"max by (target) ({gw.CIRCUIT_OPEN_NAME})", "{{target}}"),
                    kind="stat",
                ),
                Panel(
                    "Responses/s by status",
                    q(sum_rate("status", GW_REQ), "{{status}}"),
                    "reqps",
                ),
            ),
        ),
    ),
)

_FEATURE = "model, version, feature"
MODEL_BOARD = Board(
    uid="ferry-model",
    title="Ferry / Model",
    description="One model: latency, predictions by class, input feature drift, versions over time.",
    variables=(("model", f"label_values({pr.REQUESTS_TOTAL}, model)"),),
    rows=(
        (
            "Serving",
            (
                Panel(
                    "Predictor latency by version",
                    (
                        Query(
                            quantile(0.5, "version", pr.REQUEST_DURATION_SECONDS, MODEL), "p50 v{{version}}"
                        ),
                        Query(
                            quantile(0.99, "version", pr.REQUEST_DURATION_SECONDS, MODEL), "p99 v{{version}}"
                        ),
                    ),
                    "s",
                ),
                Panel(
                    "Predictions/s by class",
                    q(
                        sum_rate("version, class", pr.PREDICTIONS_TOTAL, MODEL),
                        "v{{version}} class {{class}}",
                    ),
                    "ops",
                ),
                Panel(
                    "Rows per request p95",
                    q(quantile(0.95, "version", pr.BATCH_ROWS, MODEL), "v{{version}}"),
                ),
                Panel(
                    "Versions over time (ready predictors)",
                    q(f"sum by (version) ({pr.MODEL_READY}{{{MODEL}}})", "v{{version}}"),
                ),
                Panel(
                    "Model load time",
                    q(f"max by (version) ({pr.MODEL_LOAD_SECONDS}{{{MODEL}}})", "v{{version}}"),
                    "s",
                    kind="stat",
                ),
                Panel(
                    "Compiled fast path",
                    q(f"max by (version) ({pr.FAST_PATH}{{{MODEL}}})", "v{{version}}"),
                    kind="stat",
                ),
            ),
        ),
        (
            "Input drift",
            (
                Panel(
                    "Feature mean (numeric features)",
                    q(
                        f"(sum by ({_FEATURE}) ({rate(pr.FEATURE_SUM_TOTAL, MODEL)})"
                        f" - (sum by ({_FEATURE}) ({rate(pr.FEATURE_NEGATIVE_SUM_TOTAL, MODEL)})"
                        f" or sum by ({_FEATURE}) ({rate(pr.FEATURE_SUM_TOTAL, MODEL)}) * 0))"
                        f" / sum by ({_FEATURE}) ({rate(pr.FEATURE_PRESENT_TOTAL, MODEL)})",
                        "{{feature}} v{{version}}",
                    ),
                    description="Compare with the training mean; a shift is input drift.",
                ),
                Panel(
                    "Missing-value ratio by feature",
                    q(
                        ratio_or_zero(
                            sum_rate(_FEATURE, pr.FEATURE_MISSING_TOTAL, MODEL),
                            sum_rate(_FEATURE, pr.FEATURE_PRESENT_TOTAL, MODEL),
                        ),
                        "{{feature}} v{{version}}",
                    ),
                    "percentunit",
                ),
                Panel(
                    "Category shares (enumerated features)",
                    q(
                        f"sum by ({_FEATURE}, value) ({rate(pr.FEATURE_CATEGORY_TOTAL, MODEL)})"
                        f" / ignoring (value) group_left"
                        f" sum by ({_FEATURE}) ({rate(pr.FEATURE_CATEGORY_TOTAL, MODEL)})",
                        "{{feature}}={{value}} v{{version}}",
                    ),
                    "percentunit",
                    width=24,
                ),
            ),
        ),
    ),
)

BOARDS = (OVERVIEW, GATEWAY, MODEL_BOARD)


def _panel(p: Panel) -> timeseries.Panel | stat.Panel | table.Panel:
    builder: timeseries.Panel | stat.Panel | table.Panel
    if p.kind == "stat":
        builder = stat.Panel()
    elif p.kind == "table":
        builder = table.Panel()
    else:
        builder = timeseries.Panel().fill_opacity(10)
    builder.title(p.title).datasource(DS).unit(p.unit).height(8).span(p.width)
    if p.description:
        builder.description(p.description)
    for i, query in enumerate(p.queries):
        target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + i))
        if p.kind == "table":
            target = target.instant().format(PromQueryFormat.TABLE)
        builder.with_target(target)
    return builder


def build(board: Board) -> dict[str, object]:
    d = (
        db.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["ferry"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for name, query in board.variables:
        d.with_variable(
            db.QueryVariable(name)
            .label(name.capitalize())
            .datasource(DS)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    for title, panels in board.rows:
        d.with_row(db.Row(title))
        for p in panels:
            d.with_panel(_panel(p))
    result: dict[str, object] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return result


def render(board: Board) -> str:
    return json.dumps(build(board), indent=2, sort_keys=True) + "\n"


def expressions(board: Board) -> list[tuple[str, str]]:
    """(panel title, expression) for every query of a board."""
    return [(p.title, qu.expr) for _, panels in board.rows for p in panels for qu in p.queries]


def outputs() -> dict[str, str]:
    """File name (under OUTPUT_DIR) -> content."""
    return {f"{b.uid}.json": render(b) for b in BOARDS}
