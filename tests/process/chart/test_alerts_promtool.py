"""The alert rules fire on the situations they describe, and stay quiet otherwise (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ferry_generate import alerts

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run `make deps` (Debian prometheus)"
)


def case(series: dict[str, str], eval_time: str, alert: str, fired: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [
            {"eval_time": eval_time, "alertname": alert, "exp_alerts": [{"exp_labels": lbl} for lbl in fired]}
        ],
    }


REQ = "ferry_gateway_requests_total"
TRANSITIONS = "ferry_operator_rollout_transitions_total"
CASES = {
    "5xx ratio of 10% fires": case(
        {
            f'{REQ}{{model="titanic",status="200"}}': "0+90x30",
            f'{REQ}{{model="titanic",status="503"}}': "0+10x30",
        },
        "20m",
        "FerryGateway5xxRatioHigh",
        [{"severity": "critical", "component": "gateway", "model": "titanic"}],
    ),
    "5xx ratio of 1% is quiet": case(
        {
            f'{REQ}{{model="titanic",status="200"}}': "0+99x30",
            f'{REQ}{{model="titanic",status="503"}}': "0+1x30",
        },
        "20m",
        "FerryGateway5xxRatioHigh",
        [],
    ),
    "unfinished rollout is stuck after 30m": case(
        {f'{TRANSITIONS}{{event="RolloutStarted"}}': "0 1x60"},
        "45m",
        "FerryRolloutStuck",
        [{"severity": "warning", "component": "operator"}],
    ),
    "promoted rollout is not stuck": case(
        {
            f'{TRANSITIONS}{{event="RolloutStarted"}}': "0 1x60",
            f'{TRANSITIONS}{{event="Promoted"}}': "0 0 1x59",
        },
        "45m",
        "FerryRolloutStuck",
        [],
    ),
    "aborted rollout fires at once": case(
        {f'{TRANSITIONS}{{event="Aborted"}}': "0 0 1x10"},
        "3m",
        "FerryRolloutFailed",
        [{"severity": "warning", "component": "operator", "event": "Aborted"}],
    ),
    "predictor not ready for 10m": case(
        {'ferry_predictor_model_ready{namespace="ml",pod="p",model="titanic",version="3"}': "0x20"},
        "15m",
        "FerryPredictorNotReady",
        [
            {"severity": "critical", "component": "predictor", "namespace": "ml", "pod": "p"}
            | {"model": "titanic", "version": "3"}
        ],
    ),
    "refused artifacts fire at once": case(
        {'ferry_predictor_artifact_mismatch{namespace="ml",pod="p",model="titanic",version="3"}': "1x5"},
        "1m",
        "FerryPredictorArtifactMismatch",
        [
            {"severity": "critical", "component": "predictor", "namespace": "ml", "pod": "p"}
            | {"model": "titanic", "version": "3"}
        ],
    ),
    "verified artifacts are quiet": case(
        {'ferry_predictor_artifact_mismatch{namespace="ml",pod="p",model="titanic",version="3"}': "0x5"},
        "1m",
        "FerryPredictorArtifactMismatch",
        [],
    ),
    "half the reconciles failing": case(
        {
            'ferry_operator_reconciles_total{result="ok"}': "0+10x30",
            'ferry_operator_reconciles_total{result="error"}': "0+10x30",
        },
        "25m",
        "FerryOperatorReconcileErrors",
        [{"severity": "warning", "component": "operator"}],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_alert_rule_behaviour(name: str, tmp_path: Path) -> None:
    rules = alerts.rules()
    for group in rules["groups"]:  # type: ignore[attr-defined]
        for rule in group["rules"]:
            rule.pop("annotations")  # the logic is under test; annotations are templates for humans
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [CASES[name]]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
