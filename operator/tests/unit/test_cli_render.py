"""kubectl-ferry's output, rendered from a status as the operator writes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ferry_operator.cli import main
from ferry_operator.cliview import render_history, render_status

NOW = datetime(2026, 11, 23, 19, 0, 0, tzinfo=UTC)
MD = {
    "metadata": {"name": "titanic", "namespace": "ml"},
    "spec": {"model": {"name": "titanic-survival", "alias": "champion"}},
    "status": {
        "phase": "Verifying",
        "model": {"version": "4", "runId": "0123456789abcdef"},
        "active": {
            "color": "blue",
            "modelVersion": "3",
            "inferenceService": "titanic-blue",
            "ready": True,
            "replicas": 2,
        },
        "preview": {
            "color": "green",
            "modelVersion": "4",
            "inferenceService": "titanic-green",
            "ready": True,
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "message": "smoke-testing version 4 (green)",
                "lastTransitionTime": "2026-11-23T18:50:00Z",
            },
        ],
        "history": [
            {
                "action": "Promoted",
                "toVersion": "3",
                "color": "blue",
                "reason": "",
                "time": "2026-11-23T17:00:00Z",
            },
            {
                "action": "Aborted",
                "fromVersion": "3",
                "toVersion": "4",
                "color": "green",
                "reason": "smoke test failed: HTTP 500",
                "time": "2026-11-23T18:30:00Z",
            },
        ],
    },
}


def test_status_shows_colours_versions_routes_conditions_and_events() -> None:
    events = [
        {
            "type": "Normal",
            "reason": "RolloutStarted",
            "message": "deploying version 4 as green",
            "lastTimestamp": "2026-11-23T18:58:00Z",
        }
    ]
    text = render_status(MD, {"titanic": "blue", "titanic-preview": "green"}, events, NOW)
    assert "Model:    titanic-survival@champion -> version 4 (run 0123456789ab)" in text
    assert "Phase:    Verifying  smoke-testing version 4 (green)" in text
    assert "Active:   blue   version 3" in text and "replicas 2" in text
    assert "Preview:  green  version 4" in text
    assert "Services: titanic -> blue, titanic-preview -> green" in text
    assert "Ready" in text and "10m" in text
    assert "2m  Normal  RolloutStarted" in text


def test_history_is_newest_first() -> None:
    lines = render_history(MD, NOW).splitlines()
    assert lines[1].split()[:4] == ["30m", "Aborted", "3", "4"] and "HTTP 500" in lines[1]
    assert lines[2].split()[:4] == ["2h", "Promoted", "-", "3"]
    assert render_history({"status": {}}, NOW) == "no promotions or aborts yet"


def test_unknown_command_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dance", "titanic"])
    assert exit_.value.code == 2 and "invalid choice: 'dance'" in capsys.readouterr().err
