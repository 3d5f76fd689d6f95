"""Generated dashboards and rules are fresh; every PromQL expression names only exported metrics.

(Their checks through helm and promtool are in tests/process/chart/test_generated_tools.py.)
"""

from __future__ import annotations

import pytest
from ferry_generate import alerts, dashboards, metricnames, promql
from ferry_testing.chart import ROOT


def test_dashboards_and_rules_are_fresh() -> None:
    for name, text in dashboards.outputs().items():
        path = ROOT / dashboards.OUTPUT_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `make generate`"
    assert (ROOT / alerts.OUTPUT).read_text() == alerts.render(), "alert rules stale: run `make generate`"


def test_declared_metric_names_are_what_the_registries_export() -> None:
    families = metricnames.families()
    exported = {f.name: f.component for f in families} | metricnames.exported_series()
    for component, names in metricnames.declared_names().items():
        for name in names:
            assert exported.get(name) == component, f"{component} declares {name} but does not export it"
    assert {f.component for f in families} == {"operator", "gateway", "predictor"}


def _all_expressions() -> list[tuple[str, str]]:
    out = [(f"alert {n}", e) for n, e in alerts.expressions()]
    for board in dashboards.BOARDS:
        out += [(f"{board.uid}: {t}", e) for t, e in dashboards.expressions(board)]
    return out


@pytest.mark.parametrize(("where", "expr"), _all_expressions(), ids=[w for w, _ in _all_expressions()])
def test_expression_names_only_exported_metrics(where: str, expr: str) -> None:
    names = promql.metric_names(promql.substitute_grafana_variables(expr))
    assert names, f"{where}: selects no metric"
    unknown = names - set(metricnames.exported_series())
    assert not unknown, f"{where}: {sorted(unknown)} not exported by any component"


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{model=~"x|y", status!="5.."}[5m])))'
        " / ignoring (value) group_left sum without (job) (b_total offset 5m) or on (x) vector(0)"
        ' + count({__name__="c"}) and d'
    )
    assert promql.metric_names(expr) == {"a_bucket", "b_total", "c", "d"}
    assert promql.metric_names("sum(rate(x[$__rate_interval]))") == {"x"}
