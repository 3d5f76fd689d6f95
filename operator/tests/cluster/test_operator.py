"""The operator against the local cluster (real API server, KServe controller, kwok pods) and a
real MLflow registry. Pods are simulated, so the smoke test is the injected ``ferry_testing.smoke``.
Fixtures: ``cluster/conftest.py``; helpers: ``ferry_testing.operator``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from ferry_common.contract import GROUP, VERSION
from ferry_devcluster.procs import wait_for
from ferry_testing.operator import (
    INVALID,
    PLURAL,
    WAIT,
    OperatorProcess,
    RegisteredModel,
    autoscaling,
    condition,
    core,
    custom,
    get_md,
    get_or_none,
    isvc,
    kubectl_ferry,
    md_body,
    selector,
    wait_phase,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[3]


# ---- the schema, enforced by the API server itself ----


@pytest.mark.parametrize(("case", "spec", "reason"), INVALID, ids=[c[0] for c in INVALID])
def test_api_server_rejects_invalid_specs(
    api: client.ApiClient, installed: None, case: str, spec: dict[str, Any], reason: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    with pytest.raises(ApiException) as err:
        custom(api).create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body, dry_run="All")
    assert err.value.status == 422, err.value.body
    assert reason.lower() in str(err.value.body).lower(), err.value.body


def test_api_server_rejects_a_name_too_long_for_kserve(api: client.ApiClient, installed: None) -> None:
    body = md_body("a" * 48, {"name": "m", "version": "1"})
    with pytest.raises(ApiException) as err:
        custom(api).create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body, dry_run="All")
    assert "at most 47 characters" in str(err.value.body)


def test_samples_and_defaults_pass_the_api_server(api: client.ApiClient, installed: None) -> None:
    import yaml

    for sample in sorted((ROOT / "manifests/samples").glob("*.yaml")):
        created = custom(api).create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, yaml.safe_load(sample.read_text()), dry_run="All"
        )
        assert created["spec"]["rollout"]["strategy"] == "BlueGreen", sample.name
        assert created["spec"]["predictor"]["runtime"] == "ferry-mlflow"


# ---- the operator ----


def test_apply_edit_delete(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    co = custom(api)
    name = "echo"
    body = md_body(
        name,
        {"name": registered_model.name, "version": "1"},
        autoscaling={"minReplicas": 1, "maxReplicas": 4, "metric": "cpu", "target": 60},
        predictor={"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
        rollout={"scaleDownDelaySeconds": 0},
    )
    co.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    md = wait_phase(api, namespace, name, "Stable")
    assert md["status"]["active"]["color"] == "blue" and md["status"]["active"]["modelVersion"] == "1"
    assert condition(md, "Ready")["status"] == "True"
    assert condition(md, "RegistryResolved")["status"] == "True"
    assert md["status"]["model"]["runId"] and md["status"]["observedGeneration"] == 1

    blue = isvc(api, namespace, "echo-blue")
    assert blue is not None
    pred = blue["spec"]["predictor"]
    (container,) = pred["containers"]  # the ferry-mlflow runtime, instantiated by the operator
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL_URI"] == f"models:/{registered_model.name}/1" and env["FERRY_COLOR"] == "blue"
    assert (pred["minReplicas"], pred["maxReplicas"], pred["scaleTarget"]) == (1, 4, 60)
    assert blue["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert selector(api, namespace, name) == {"ferry.dev/deployment": name, "ferry.dev/color": "blue"}
    assert selector(api, namespace, f"{name}-preview") == {
        "ferry.dev/deployment": name,
        "ferry.dev/color": "blue",
    }
    hpa = autoscaling(api).read_namespaced_horizontal_pod_autoscaler("echo-blue-predictor", namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    assert hpa.spec.metrics[0].resource.name == "cpu"
    assert hpa.spec.metrics[0].resource.target.average_utilization == 60

    # Edit: a new pinned version rolls out to green; the Service switches once green is verified.
    co.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"version": "2"}}}
    )
    md = wait_phase(api, namespace, name, "Stable", observedGeneration=2)
    assert (
        md["status"]["active"]
        == {
            "color": "green",
            "modelVersion": "2",
            "inferenceService": "echo-green",
            "ready": True,
            "replicas": 1,
        }
        or md["status"]["active"]["color"] == "green"
    )
    assert selector(api, namespace, name) == {"ferry.dev/deployment": name, "ferry.dev/color": "green"}
    assert [h["action"] for h in md["status"]["history"]] == ["Promoted", "Promoted"], json.dumps(
        md["status"]["history"]
    )
    wait_for(
        "blue removed after a zero scale-down delay", lambda: isvc(api, namespace, "echo-blue") is None, WAIT
    )

    # Delete: the garbage collector removes what the operator created (no finalizer involved).
    co.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for("InferenceServices gone", lambda: isvc(api, namespace, "echo-green") is None, WAIT)
    wait_for("Services gone", lambda: selector(api, namespace, name) is None, WAIT)


def test_registry_problems_show_in_status_and_recover(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    import mlflow

    co = custom(api)
    alias = f"a{uuid.uuid4().hex[:8]}"
    co.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, md_body("alias", {"name": registered_model.name, "alias": alias})
    )
    co.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, md_body("nomodel", {"name": "no-such-model", "version": "1"})
    )
    for name, reason in (("alias", "AliasNotFound"), ("nomodel", "ModelNotFound")):

        def reported(n: str = name, r: str = reason) -> bool:
            return bool(condition(get_md(api, namespace, n), "RegistryResolved").get("reason") == r)

        wait_for(
            f"{name}: {reason}",
            reported,
            WAIT,
        )
        md = get_md(api, namespace, name)
        assert md["status"]["phase"] == "Pending" and condition(md, "Ready")["status"] == "False"
        assert isvc(api, namespace, f"{name}-blue") is None

    # Fixing the registry is enough: the alias poll picks it up.
    mlflow.set_tracking_uri(registered_model.tracking_uri)
    mlflow.MlflowClient().set_registered_model_alias(registered_model.name, alias, "2")
    md = wait_phase(api, namespace, "alias", "Stable")
    assert md["status"]["active"]["modelVersion"] == "2"
    events = core(api).list_namespaced_event(namespace, field_selector="involvedObject.name=alias")
    reasons = {e.reason for e in events.items}
    assert {"AliasNotFound", "RolloutStarted", "Promoted"} <= reasons, reasons


def test_alias_move_rolls_out_and_smoke_failure_aborts(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    import mlflow

    mlflow.set_tracking_uri(registered_model.tracking_uri)
    reg = mlflow.MlflowClient()
    alias = f"a{uuid.uuid4().hex[:8]}"
    reg.set_registered_model_alias(registered_model.name, alias, "1")
    co = custom(api)
    co.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, md_body("mv", {"name": registered_model.name, "alias": alias})
    )
    wait_phase(api, namespace, "mv", "Stable")
    # The next check will fail: the alias move deploys green, which never receives traffic.
    co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "mv",
        {"metadata": {"annotations": {"test.ferry.dev/smoke": "fail:HTTP 500"}}},
    )
    reg.set_registered_model_alias(registered_model.name, alias, "2")
    md = wait_phase(api, namespace, "mv", "Degraded")
    assert (
        md["status"]["history"][-1]["action"] == "Aborted"
        and "HTTP 500" in md["status"]["history"][-1]["reason"]
    )
    assert md["status"]["active"]["modelVersion"] == "1"
    assert selector(api, namespace, "mv") == {"ferry.dev/deployment": "mv", "ferry.dev/color": "blue"}
    wait_for("aborted preview torn down", lambda: isvc(api, namespace, "mv-green") is None, WAIT)


def test_operator_killed_mid_rollout_converges_and_second_pass_is_a_noop(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    co = custom(api)
    co.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        md_body("rs", {"name": registered_model.name, "version": "1"}, rollout={"autoPromote": False}),
    )
    wait_phase(api, namespace, "rs", "Stable")
    co.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "rs", {"spec": {"model": {"version": "2"}}}
    )
    wait_for("green created", lambda: isvc(api, namespace, "rs-green") is not None, WAIT)
    operator_proc.kill()
    operator_proc.start()
    md = wait_phase(api, namespace, "rs", "AwaitingPromotion")
    assert selector(api, namespace, "rs")["ferry.dev/color"] == "blue"  # type: ignore[index]
    assert selector(api, namespace, "rs-preview")["ferry.dev/color"] == "green"  # type: ignore[index]
    operator_proc.kill()
    co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "rs",
        {"metadata": {"annotations": {"ferry.dev/command": "promote@1"}}},
    )
    operator_proc.start()
    md = wait_phase(api, namespace, "rs", "Stable", observedGeneration=2)
    assert md["status"]["active"]["color"] == "green"
    assert selector(api, namespace, "rs")["ferry.dev/color"] == "green"  # type: ignore[index]

    # Idempotence: further passes change nothing (resourceVersions stay put).
    def versions() -> tuple[str, ...]:
        objs = [
            get_md(api, namespace, "rs"),
            isvc(api, namespace, "rs-green"),
            isvc(api, namespace, "rs-blue"),
        ]
        svcs = [get_or_none(core(api).read_namespaced_service, n, namespace) for n in ("rs", "rs-preview")]
        # InferenceServices by generation: KServe rewrites their status, we must not touch their spec.
        return (
            objs[0]["metadata"]["resourceVersion"],
            *[str(o["metadata"]["generation"]) if o else "-" for o in objs[1:]],
            *[s.metadata.resource_version for s in svcs],
        )

    def snapshot() -> str:
        st = get_md(api, namespace, "rs")["status"]
        return json.dumps(
            [st, selector(api, namespace, "rs"), selector(api, namespace, "rs-preview")], sort_keys=True
        )

    before, seen = versions(), snapshot()
    count = operator_proc.reconciles()
    wait_for("two more reconciles", lambda: operator_proc.reconciles() >= count + 2, WAIT)
    assert versions() == before, (seen, snapshot())


def ferry(kubeconfig: str, *args: str) -> str:
    done = kubectl_ferry("--kubeconfig", kubeconfig, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_ferry_on_a_live_resource(
    api: client.ApiClient,
    kubeconfig: str,
    namespace: str,
    operator_proc: OperatorProcess,
    registered_model: RegisteredModel,
) -> None:
    co = custom(api)
    body = md_body("cli", {"name": registered_model.name, "version": "1"}, rollout={"autoPromote": False})
    co.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_phase(api, namespace, "cli", "Stable")

    def status_showing(*parts: str) -> str:
        """kwok's node can flap NotReady on a loaded machine: read until the view shows `parts`."""
        seen: list[str] = []

        def shows() -> bool:
            seen[:] = [ferry(kubeconfig, "-n", namespace, "status", "cli")]
            return all(p in seen[0] for p in parts)

        try:
            wait_for(f"status showing {parts}", shows, WAIT, interval=1)
        except TimeoutError:
            raise AssertionError(seen[0] if seen else "no output") from None
        return seen[0]

    out = status_showing("Phase:    Stable")
    assert f"ModelDeployment {namespace}/cli" in out
    assert "Active:   blue   version 1" in out and "Services: cli -> blue, cli-preview -> blue" in out
    assert "Promoted" in out  # recent events

    co.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "cli", {"spec": {"model": {"version": "2"}}}
    )
    wait_phase(api, namespace, "cli", "AwaitingPromotion")
    out = status_showing("Phase:    AwaitingPromotion", "cli -> blue, cli-preview -> green")
    assert "Preview:  green  version 2" in out

    out = ferry(kubeconfig, "-n", namespace, "promote", "--wait", "cli")
    assert "promote requested" in out and "applied" in out
    wait_phase(api, namespace, "cli", "Stable", observedGeneration=2)
    assert selector(api, namespace, "cli")["ferry.dev/color"] == "green"  # type: ignore[index]

    ferry(kubeconfig, "-n", namespace, "rollback", "--wait", "cli")  # inside the window: instant
    md = wait_phase(api, namespace, "cli", "Stable")
    assert md["status"]["active"]["modelVersion"] == "1"
    assert selector(api, namespace, "cli")["ferry.dev/color"] == "blue"  # type: ignore[index]
    history = ferry(kubeconfig, "-n", namespace, "history", "cli").splitlines()
    assert history[1].split()[1:4] == ["RolledBack", "2", "1"], history
    assert [line.split()[1] for line in history[1:]] == ["RolledBack", "Promoted", "Promoted"]

    missing = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubectl-ferry"),
            "--kubeconfig",
            kubeconfig,
            "-n",
            namespace,
            "promote",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert missing.returncode == 3 and "'nope' not found" in missing.stderr  # exit 3: not found
