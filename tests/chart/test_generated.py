"""Generated files are fresh; every PromQL expression parses and names only exported metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chartlib import ROOT, helm
from ferrycharts import alerts, dashboards, install, metricnames, promql

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run `make deps` (Debian prometheus)"
)


def test_dashboards_and_rules_are_fresh() -> None:
    for name, text in dashboards.outputs().items():
        path = ROOT / dashboards.OUTPUT_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `make dashboards`"
    assert (ROOT / alerts.OUTPUT).read_text() == alerts.render(), "alert rules stale: run `make dashboards`"


def test_plain_install_manifests_are_fresh() -> None:
    for name, text in install.outputs(ROOT, helm()).items():
        path = ROOT / install.OUTPUT_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `make install-manifests`"


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


@needs_promtool
def test_alert_rules_pass_promtool() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(ROOT / alerts.OUTPUT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.expressions())} rules found" in result.stdout


@needs_promtool
def test_dashboard_expressions_parse_with_promtool(tmp_path: Path) -> None:
    """Each panel query, as Grafana sends it, becomes a recording rule that promtool's parser checks."""
    rules = [
        {"record": f"ferry:dashboard:{i}", "expr": promql.substitute_grafana_variables(expr)}
        for i, (_, expr) in enumerate(e for b in dashboards.BOARDS for e in dashboards.expressions(b))
    ]
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@needs_promtool
def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    path = tmp_path / "bad.rules.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum by (x"}]}]})
    )
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode != 0
