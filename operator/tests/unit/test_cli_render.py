"""kubectl-ferry's output, rendered from a status as the operator writes it: tables, JSON, YAML."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from ferry_operator.cli import main
from ferry_operator.cliview import (
    command_refused,
    dump,
    history_view,
    list_view,
    render_history,
    render_list,
    render_status,
    smoke_verdict,
    status_view,
)

NOW = datetime(2026, 11, 23, 19, 0, 0, tzinfo=UTC)
MD: dict[str, Any] = {
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


# ---- list, and the machine-readable views ----------------------------------------------------

STABLE = {
    "metadata": {"name": "iris", "namespace": "prod", "creationTimestamp": "2026-11-20T19:00:00Z"},
    "spec": {"model": {"name": "iris", "version": "7"}},
    "status": {
        "phase": "Stable",
        "active": {"color": "green", "modelVersion": "7", "inferenceService": "iris-green", "ready": True},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "serving 7"}],
    },
}
ROLLING = {
    **MD,
    "metadata": {**MD["metadata"], "creationTimestamp": "2026-11-23T18:00:00Z"},
    "status": {**MD["status"], "rollout": {"preview": {"color": "green", "version": "4", "smoke": "passed"}}},
}
NEW = {"metadata": {"name": "fresh", "namespace": "ml"}, "spec": {"model": {"name": "m", "alias": "a"}}}
SUMMARY_KEYS = [
    "namespace",
    "name",
    "model",
    "phase",
    "ready",
    "message",
    "active",
    "preview",
    "smoke",
    "created",
]


def test_list_table_is_get_md_wide_plus_the_rollout_sorted_by_namespace_and_name() -> None:
    lines = render_list(list_view([STABLE, ROLLING, NEW]), all_namespaces=False, now=NOW).splitlines()
    assert lines[0].split() == [
        "NAME",
        "MODEL",
        "VERSION",
        "COLOR",
        "PHASE",
        "READY",
        "PREVIEW",
        "SMOKE",
        "AGE",
    ]
    assert lines[1].split() == ["fresh", "m@a", "-", "-", "Unknown", "Unknown", "-", "-", "-"]
    assert lines[2].split() == [
        "titanic", "titanic-survival@champion", "3", "blue", "Verifying", "True",
        "4", "(green)", "passed", "60m",
    ]  # fmt: skip
    assert lines[3].split() == ["iris", "iris/7", "7", "green", "Stable", "True", "-", "-", "3d"]
    # columns line up: every cell of a column starts where its header does
    at = lines[0].index("PHASE")
    assert all(line[at:].split()[0] in ("PHASE", "Unknown", "Verifying", "Stable") for line in lines)


def test_list_with_all_namespaces_has_a_namespace_column_first() -> None:
    lines = render_list(list_view([STABLE, ROLLING]), all_namespaces=True, now=NOW).splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in lines[1:]] == [["ml", "titanic"], ["prod", "iris"]]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_json_and_yaml_carry_the_rows_with_stable_keys(fmt: str) -> None:
    text = dump(list_view([STABLE, ROLLING, NEW]), fmt)
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert [(r["namespace"], r["name"]) for r in data["items"]] == [
        ("ml", "fresh"),
        ("ml", "titanic"),
        ("prod", "iris"),
    ]
    assert all(list(r) == SUMMARY_KEYS for r in data["items"])  # every key, even with no status
    fresh, titanic, iris = data["items"]
    assert fresh["phase"] is None and fresh["active"] is None and fresh["smoke"] is None
    assert titanic["model"] == {
        "name": "titanic-survival", "alias": "champion", "version": None, "resolvedVersion": "4",
        "runId": "0123456789abcdef",
    }  # fmt: skip
    assert titanic["active"] == {
        "color": "blue", "version": "3", "inferenceService": "titanic-blue", "ready": True, "replicas": 2
    }  # fmt: skip
    assert titanic["preview"]["version"] == "4" and titanic["smoke"] == {"verdict": "passed", "message": ""}
    assert titanic["ready"] == "True" and titanic["created"] == "2026-11-23T18:00:00Z"
    assert iris["model"]["version"] == "7" and iris["preview"] is None


def test_smoke_verdict_is_the_previews_or_disabled_by_the_spec() -> None:
    failing = {"status": {"rollout": {"preview": {"smoke": "failed", "smokeMessage": "HTTP 500"}}}}
    assert smoke_verdict(failing) == {"verdict": "failed", "message": "HTTP 500"}
    off = {**failing, "spec": {"rollout": {"smokeTest": {"enabled": False}}}}
    assert smoke_verdict(off) == {"verdict": "disabled", "message": ""}
    assert smoke_verdict({"status": {"rollout": {}}}) is None
    assert "Smoke:    failed  HTTP 500" in render_status({**MD, **failing}, {}, [], NOW)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_status_json_and_yaml_are_the_tables_data(fmt: str) -> None:
    events = [
        {"type": "Normal", "reason": f"R{i}", "message": f"m{i}", "lastTimestamp": f"2026-11-23T18:5{i}:00Z"}
        for i in range(10)
    ]
    routes = {"titanic": "blue", "titanic-preview": None}
    text = dump(status_view(ROLLING, routes, events), fmt)
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert list(data) == [*SUMMARY_KEYS, "services", "conditions", "events"]
    assert data["services"] == routes and data["phase"] == "Verifying"
    assert data["message"] == "smoke-testing version 4 (green)"
    assert data["conditions"] == [
        {
            "type": "Ready", "status": "True", "reason": "Serving",
            "message": "smoke-testing version 4 (green)", "lastTransitionTime": "2026-11-23T18:50:00Z",
        }
    ]  # fmt: skip
    assert [e["reason"] for e in data["events"]] == [f"R{i}" for i in range(2, 10)]  # the table's 8
    assert data["events"][-1] == {
        "time": "2026-11-23T18:59:00Z",
        "type": "Normal",
        "reason": "R9",
        "message": "m9",
    }


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_history_json_and_yaml_are_newest_first_as_the_table(fmt: str) -> None:
    text = dump(history_view(MD), fmt)
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert (data["namespace"], data["name"]) == ("ml", "titanic")
    assert [h["action"] for h in data["history"]] == ["Aborted", "Promoted"]
    assert data["history"][1] == {
        "time": "2026-11-23T17:00:00Z", "action": "Promoted", "fromVersion": None, "toVersion": "3",
        "color": "blue", "reason": "",
    }  # fmt: skip
    assert history_view({"metadata": {"name": "x", "namespace": "y"}, "status": {}})["history"] == []


def test_dump_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="'xml'"):
        dump({}, "xml")


def test_a_command_is_refused_when_the_status_shows_it_changed_nothing() -> None:
    stable = {"status": {"history": [{"action": "Promoted", "toVersion": "1", "time": "t1"}], "rollout": {}}}
    assert command_refused("promote", stable, stable) == "promote: no rollout in progress"
    assert command_refused("abort", stable, stable) == "abort: no rollout in progress"
    assert command_refused("rollback", stable, stable) == "rollback: no previous version to return to"
    assert command_refused("retry", stable, stable) is None

    waiting = {"status": {**stable["status"], "rollout": {"promoteRequested": True}}}
    assert command_refused("promote", stable, waiting) is None
    added = {"status": {"history": [*stable["status"]["history"], {"action": "Aborted", "time": "t2"}]}}
    assert command_refused("abort", stable, added) is None and command_refused("promote", stable, added)
    # the history is trimmed to its limit: a new newest entry still counts as added
    rolled = {"status": {"history": [{"action": "RolledBack", "time": "t3"}]}}
    assert command_refused("rollback", stable, rolled) is None
    promoted = {"status": {"history": [{"action": "Promoted", "toVersion": "2", "time": "t4"}]}}
    assert command_refused("promote", stable, promoted) is None
