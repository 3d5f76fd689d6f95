"""Generated files through the real tools: the plain install renders fresh with helm, and every
alert rule and dashboard expression passes promtool's parser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ferry_generate import alerts, dashboards, install, promql
from ferry_testing.chart import ROOT, helm

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run `make deps` (Debian prometheus)"
)


def test_plain_install_manifests_are_fresh() -> None:
    for name, text in install.outputs(ROOT, helm()).items():
        path = ROOT / install.OUTPUT_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `make generate`"


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
