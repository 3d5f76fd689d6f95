"""``kubectl ferry`` as users run it, against the kwok cluster's API server: the installed
``kubectl-ferry`` entry point (what kubectl runs for ``kubectl ferry``) as a subprocess, on
ModelDeployments whose status is written by hand (no operator: what is shown comes from the API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ferry_common.contract import GROUP, VERSION
from ferry_devcluster import tools
from ferry_testing.operator import PLURAL, WAIT, core, custom, md_body
from kubernetes import client

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-ferry"

STATUS = {
    "phase": "AwaitingPromotion",
    "observedGeneration": 1,
    "model": {"version": "4", "runId": "0123456789abcdef"},
    "active": {
        "color": "blue",
        "modelVersion": "3",
        "inferenceService": "titanic-blue",
        "ready": True,
        "replicas": 2,
    },
    "preview": {"color": "green", "modelVersion": "4", "inferenceService": "titanic-green", "ready": True},
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Serving",
            "message": "version 4 (green) verified: waiting for promotion",
            "lastTransitionTime": "2026-11-23T18:50:00Z",
        }
    ],
    "history": [
        {
            "action": "Promoted",
            "toVersion": "3",
            "color": "blue",
            "reason": "",
            "time": "2026-11-23T17:00:00Z",
        }
    ],
    "rollout": {
        "active": {"color": "blue", "version": "3", "since": "2026-11-23T17:00:00Z"},
        "preview": {
            "color": "green",
            "version": "4",
            "since": "2026-11-23T18:45:00Z",
            "minReplicas": 2,
            "smoke": "passed",
            "smokeMessage": "",
        },
    },
}


def make_md(api: client.ApiClient, ns: str, name: str, status: dict[str, Any]) -> None:
    body = md_body(name, {"name": "titanic-survival", "alias": "champion"})
    custom(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    custom(api).patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, {"status": status})


@pytest.fixture
def titanic(api: client.ApiClient, installed: None, namespace: str) -> str:
    make_md(api, namespace, "titanic", STATUS)
    return namespace


@pytest.fixture
def other_namespace(api: client.ApiClient, installed: None) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    core(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core(api).delete_namespace(name)


def ferry(
    kubeconfig: str, *args: str, exe: tuple[str, ...] = (str(PLUGIN),)
) -> subprocess.CompletedProcess[str]:
    """The plugin with $KUBECONFIG set, as a user's shell has it (so no flag is needed for it)."""
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=WAIT, env=env, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "{ns}", "status", "titanic"],
        ["status", "-n", "{ns}", "titanic"],
        ["status", "titanic", "-n", "{ns}"],
        ["status", "titanic", "--namespace={ns}"],
        ["status", "titanic", "-n{ns}"],
        ["--kubeconfig", "{kc}", "status", "titanic", "--context", "{ctx}", "-n", "{ns}"],
    ],
)
def test_status_with_the_namespace_in_every_position(kubeconfig: str, titanic: str, argv: list[str]) -> None:
    done = ferry(kubeconfig, *[a.format(ns=titanic, kc=kubeconfig, ctx=_context(kubeconfig)) for a in argv])
    assert done.returncode == 0, done.stderr
    assert f"ModelDeployment {titanic}/titanic" in done.stdout
    assert "Phase:    AwaitingPromotion" in done.stdout and "Smoke:    passed" in done.stdout
    assert "Active:   blue   version 3" in done.stdout and "Preview:  green  version 4" in done.stdout


def _context(kubeconfig: str) -> str:
    current: str = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    return current


def test_status_as_yaml_and_history_as_json(kubeconfig: str, titanic: str) -> None:
    done = ferry(kubeconfig, "status", "titanic", "-n", titanic, "-o", "yaml")
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert (data["namespace"], data["name"], data["phase"]) == (titanic, "titanic", "AwaitingPromotion")
    assert data["active"]["version"] == "3" and data["preview"]["version"] == "4"
    assert data["smoke"] == {"verdict": "passed", "message": ""}
    assert data["services"] == {"titanic": None, "titanic-preview": None}  # no operator: no Services
    assert data["created"]  # the API server's creationTimestamp
    done = ferry(kubeconfig, "history", "titanic", "-o", "json", "-n", titanic)
    assert done.returncode == 0, done.stderr
    assert [h["action"] for h in json.loads(done.stdout)["history"]] == ["Promoted"]


def test_list_all_namespaces_as_json_and_as_a_table(
    api: client.ApiClient, kubeconfig: str, titanic: str, other_namespace: str
) -> None:
    make_md(api, other_namespace, "iris", {**STATUS, "phase": "Stable", "preview": None, "rollout": {}})
    done = ferry(kubeconfig, "list", "-A", "-o", "json")
    assert done.returncode == 0, done.stderr
    mine = {
        (r["namespace"], r["name"]): r
        for r in json.loads(done.stdout)["items"]
        if r["namespace"] in (titanic, other_namespace)  # the cluster is shared with other tests
    }
    assert set(mine) == {(titanic, "titanic"), (other_namespace, "iris")}
    assert mine[(titanic, "titanic")]["smoke"]["verdict"] == "passed"
    assert (
        mine[(other_namespace, "iris")]["phase"] == "Stable"
        and mine[(other_namespace, "iris")]["preview"] is None
    )

    table = ferry(kubeconfig, "get", "--all-namespaces").stdout.splitlines()
    assert table[0].split()[:3] == ["NAMESPACE", "NAME", "MODEL"]
    row = next(line.split() for line in table if line.startswith(titanic))
    assert row[:8] == [
        titanic,
        "titanic",
        "titanic-survival@champion",
        "3",
        "blue",
        "AwaitingPromotion",
        "True",
        "4",
    ]

    one = ferry(kubeconfig, "-n", other_namespace, "list").stdout.splitlines()
    assert one[0].split()[0] == "NAME" and [line.split()[0] for line in one[1:]] == ["iris"]


def test_a_missing_name_or_namespace_is_exit_3_with_a_clear_message(kubeconfig: str, titanic: str) -> None:
    done = ferry(kubeconfig, "status", "nope", "-n", titanic)
    assert (done.returncode, done.stderr) == (
        3,
        f"error: modeldeployment 'nope' not found in namespace '{titanic}'\n",
    )
    done = ferry(kubeconfig, "promote", "nope", "-n", titanic)
    assert done.returncode == 3 and "'nope' not found" in done.stderr
    done = ferry(kubeconfig, "history", "titanic", "-n", f"{titanic}-gone")
    assert (done.returncode, done.stderr) == (3, f"error: namespace '{titanic}-gone' not found\n")


def test_an_unreachable_cluster_is_exit_4_and_a_bad_flag_exit_2(kubeconfig: str, tmp_path: Path) -> None:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:9"  # the discard port: nothing listens
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    done = ferry(kubeconfig, "list", "--kubeconfig", str(dead))
    assert done.returncode == 4 and "cannot reach the cluster" in done.stderr, done.stderr
    done = ferry(kubeconfig, "status", "titanic", "-o", "xml")
    assert done.returncode == 2 and "--output" in done.stderr


def test_kubectl_runs_the_plugin_with_flags_after_the_name(kubeconfig: str, titanic: str) -> None:
    # The cluster's own kubectl (make tools), which finds kubectl-ferry on PATH as a user's does.
    kubectl = str(tools.bin_path("kubectl"))
    done = ferry(kubeconfig, "ferry", "status", "titanic", "-n", titanic, "-o", "json", exe=(kubectl,))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "titanic"


def test_bash_completion_completes_commands_flags_and_names_from_the_cluster(
    kubeconfig: str, titanic: str
) -> None:
    script = ferry(kubeconfig, "completion", "bash").stdout

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        program = f"{script}\nCOMP_WORDS=(kubectl-ferry {line}); COMP_CWORD={len(words)}; _kubectl_ferry; "
        program += 'printf "%s\\n" "${COMPREPLY[@]}"'
        done = ferry(kubeconfig, "-c", program, exe=("bash",))
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("st") == ["status"]
    assert set(complete("")) >= {"list", "get", "status", "history", "promote", "completion"}
    assert complete("status", "--wa") == ["--watch"]
    assert complete("list", "-o", "") == ["table", "wide", "json", "yaml"]
    assert complete("-n", titanic, "status", "ti") == ["titanic"]
    assert complete("status", f"--namespace={titanic}", "") == ["titanic"]
    assert complete("status", "--namespace", "=", titanic, "") == ["titanic"]  # as bash splits it
    assert complete("status", "--output", "=", "j") == ["json"]
    assert complete("completion", "") == ["bash", "zsh"]
