"""Rollout paths end to end on the local cluster (kwok pods, real KServe, real MLflow registry):
progress deadline, rollback outside the window, a superseding version, when the ``<name>``
Service moves, the HPAs KServe creates per colour, and the preview's replica floor.
Fixtures come from ``cluster/conftest.py`` (module scope: this file gets its own operator
process), helpers from ``ferry_testing.operator``; the smoke test is ``ferry_testing.smoke``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferry_devcluster.procs import wait_for
from ferry_testing.operator import (
    WAIT,
    OperatorProcess,
    RegisteredModel,
    actions,
    annotate,
    autoscaling,
    colour,
    core,
    get_md,
    hold_pods,
    isvc,
    patch_md,
    routes_to,
    settles,
    start_stable,
    wait_phase,
    wait_status,
)
from kubernetes import client


def isvc_ready(api: client.ApiClient, ns: str, name: str, version: str) -> bool:
    obj = isvc(api, ns, name)
    if obj is None or (obj["metadata"].get("labels") or {}).get("ferry.dev/model-version") != version:
        return False
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_progress_deadline_aborts_and_blue_keeps_serving(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    v1, v2 = registered_model.versions[:2]
    start_stable(api, namespace, "dl", registered_model, rollout={"progressDeadlineSeconds": 30})
    hold_pods(api, namespace)  # green's pods are never created, so green never becomes Ready
    patch_md(api, namespace, "dl", {"spec": {"model": {"version": v2}}})
    md = wait_phase(api, namespace, "dl", "Deploying")
    assert md["status"]["preview"]["color"] == "green" and colour(api, namespace, "dl") != "green"
    md = wait_phase(api, namespace, "dl", "Degraded")
    last = md["status"]["history"][-1]
    assert last["action"] == "Aborted" and "progress deadline of 30s exceeded" in last["reason"], last
    assert md["status"]["active"]["modelVersion"] == v1 and md["status"].get("preview") is None
    routes_to(api, namespace, "dl", "blue")
    wait_for("timed-out preview torn down", lambda: isvc(api, namespace, "dl-green") is None, WAIT)
    settles("blue still Ready", lambda: isvc_ready(api, namespace, "dl-blue", v1))


def test_rollback_outside_the_window_rolls_the_previous_version_out_again(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    v1, v2 = registered_model.versions[:2]
    start_stable(api, namespace, "rb", registered_model, rollout={"scaleDownDelaySeconds": 1})
    patch_md(api, namespace, "rb", {"spec": {"model": {"version": v2}}})
    wait_phase(api, namespace, "rb", "Stable", observedGeneration=2)
    routes_to(api, namespace, "rb", "green")
    wait_for("window over: blue removed", lambda: isvc(api, namespace, "rb-blue") is None, WAIT)

    annotate(api, namespace, "rb", **{"ferry.dev/command": "rollback@1"})
    md = wait_status(
        api,
        namespace,
        "rb",
        f"version {v1} rolled out again",
        lambda st: st.get("phase") == "Stable" and st.get("active", {}).get("modelVersion") == v1,
    )
    assert md["status"]["active"]["color"] == "blue"
    routes_to(api, namespace, "rb", "blue")
    assert actions(md) == ["Promoted", "Promoted", "RolledBack", "Promoted"], md["status"]["history"]
    settles("blue Ready again", lambda: isvc_ready(api, namespace, "rb-blue", v1))
    events = core(api).list_namespaced_event(namespace, field_selector="involvedObject.name=rb")
    assert any("no longer running" in (e.message or "") for e in events.items)


def test_a_new_version_mid_rollout_supersedes_the_preview(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    import mlflow

    mlflow.set_tracking_uri(registered_model.tracking_uri)
    reg = mlflow.MlflowClient()
    first = reg.get_model_version(registered_model.name, registered_model.versions[0])
    # A third version of the same model (a new registration of version 1's logged model).
    v3 = str(mlflow.register_model(f"runs:/{first.run_id}/model", registered_model.name).version)
    v1, v2 = registered_model.versions[:2]

    start_stable(api, namespace, "sup", registered_model, rollout={"autoPromote": False})
    patch_md(api, namespace, "sup", {"spec": {"model": {"version": v2}}})
    md = wait_phase(api, namespace, "sup", "AwaitingPromotion")
    assert md["status"]["preview"]["modelVersion"] == v2

    patch_md(api, namespace, "sup", {"spec": {"model": {"version": v3}}})
    md = wait_status(
        api,
        namespace,
        "sup",
        f"version {v3} verified as the preview",
        lambda st: st.get("phase") == "AwaitingPromotion" and st.get("preview", {}).get("modelVersion") == v3,
    )
    assert md["status"]["preview"]["color"] == "green"
    assert actions(md)[-1] == "Superseded" and md["status"]["history"][-1]["toVersion"] == v2
    assert md["status"]["active"]["modelVersion"] == v1 and colour(api, namespace, "sup") != "green"
    settles("green Ready with v3", lambda: isvc_ready(api, namespace, "sup-green", v3))
    routes_to(api, namespace, "sup-preview", "green")

    annotate(api, namespace, "sup", **{"ferry.dev/command": "promote@1"})
    md = wait_phase(api, namespace, "sup", "Stable", observedGeneration=3)
    assert md["status"]["active"]["modelVersion"] == v3
    routes_to(api, namespace, "sup", "green")
    assert actions(md) == ["Promoted", "Superseded", "Promoted"], md["status"]["history"]


def test_selector_moves_only_after_the_preview_is_ready_and_verified(
    api: client.ApiClient,
    namespace: str,
    operator_proc: OperatorProcess,
    registered_model: RegisteredModel,
    tmp_path: Path,
) -> None:
    v1, v2 = registered_model.versions[:2]
    start_stable(api, namespace, "sel", registered_model)
    release = tmp_path / "verdict"
    waiting = Path(f"{release}.waiting")
    annotate(api, namespace, "sel", **{"test.ferry.dev/smoke": f"hold:{release}"})
    patch_md(api, namespace, "sel", {"spec": {"model": {"version": v2}}})

    # The smoke test is running (held) and green is Ready: <name> must not select green yet.
    wait_for("smoke test of green started", waiting.exists, WAIT)
    assert waiting.read_text() == f"sel-green {v2}"
    settles("green Ready", lambda: isvc_ready(api, namespace, "sel-green", v2))
    assert colour(api, namespace, "sel") != "green"
    routes_to(api, namespace, "sel", "blue")
    md = get_md(api, namespace, "sel")
    assert md["status"]["active"]["modelVersion"] == v1 and md["status"]["preview"]["modelVersion"] == v2

    release.write_text("pass")
    md = wait_phase(api, namespace, "sel", "Stable", observedGeneration=2)
    assert md["status"]["active"]["color"] == "green"
    routes_to(api, namespace, "sel", "green")
    assert actions(md) == ["Promoted", "Promoted"], md["status"]["history"]


def test_kserve_hpas_for_both_colours_during_a_rollout(
    api: client.ApiClient, namespace: str, operator_proc: OperatorProcess, registered_model: RegisteredModel
) -> None:
    start_stable(
        api,
        namespace,
        "hpa",
        registered_model,
        autoscaling={"minReplicas": 1, "maxReplicas": 3, "metric": "cpu", "target": 55},
        rollout={"autoPromote": False},
    )
    patch_md(api, namespace, "hpa", {"spec": {"model": {"version": registered_model.versions[1]}}})
    wait_phase(api, namespace, "hpa", "AwaitingPromotion")
    hpas = autoscaling(api)

    def both() -> bool:
        names = {h.metadata.name for h in hpas.list_namespaced_horizontal_pod_autoscaler(namespace).items}
        return {"hpa-blue-predictor", "hpa-green-predictor"} <= names

    wait_for("an HPA per colour", both, WAIT)
    for color in ("blue", "green"):
        hpa = hpas.read_namespaced_horizontal_pod_autoscaler(f"hpa-{color}-predictor", namespace)
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3), color
        assert hpa.spec.scale_target_ref.name == f"hpa-{color}-predictor"
        metric = hpa.spec.metrics[0].resource
        assert (metric.name, metric.target.average_utilization) == ("cpu", 55), color


def test_preview_starts_at_the_active_replica_count_and_the_floor_is_restored_after(
    api: client.ApiClient,
    namespace: str,
    operator_proc: OperatorProcess,
    registered_model: RegisteredModel,
    tmp_path: Path,
) -> None:
    v2 = registered_model.versions[1]
    start_stable(api, namespace, "flo", registered_model, autoscaling={"minReplicas": 1, "maxReplicas": 4})
    # What the HPA does under load: scale blue's Deployment through its scale subresource.
    apps: Any = client.AppsV1Api(api)  # untyped, as the helpers in ferry_testing.operator
    apps.patch_namespaced_deployment_scale("flo-blue-predictor", namespace, {"spec": {"replicas": 3}})
    wait_status(
        api,
        namespace,
        "flo",
        "blue at 3 Ready replicas",
        lambda st: st.get("active", {}).get("replicas") == 3,
    )
    release = tmp_path / "verdict"
    annotate(api, namespace, "flo", **{"test.ferry.dev/smoke": f"hold:{release}"})
    patch_md(api, namespace, "flo", {"spec": {"model": {"version": v2}}})

    def min_replicas(color: str) -> int | None:
        obj = isvc(api, namespace, f"flo-{color}")
        return None if obj is None else int(obj["spec"]["predictor"]["minReplicas"])

    def hpa_min(color: str) -> int | None:
        found = autoscaling(api).list_namespaced_horizontal_pod_autoscaler(
            namespace, field_selector=f"metadata.name=flo-{color}-predictor"
        )
        return found.items[0].spec.min_replicas if found.items else None

    # The preview starts where blue is now, not at spec's minimum: it can take blue's traffic.
    wait_for("green created", lambda: min_replicas("green") is not None, WAIT)
    assert min_replicas("green") == 3 and min_replicas("blue") == 1
    wait_for("green's HPA minimum raised to 3", lambda: hpa_min("green") == 3, WAIT)
    assert get_md(api, namespace, "flo")["status"]["rollout"]["preview"]["minReplicas"] == 3
    # (Read from the Deployment: status is not rewritten while the held smoke test runs.)
    settles(
        "green at 3 Ready replicas",
        lambda: apps.read_namespaced_deployment("flo-green-predictor", namespace).status.ready_replicas == 3,
    )

    release.write_text("pass")
    md = wait_phase(api, namespace, "flo", "Stable", observedGeneration=2)
    assert md["status"]["active"]["color"] == "green"
    # Promoted: the rollout's floor is lifted, the HPA owns the replica count again.
    assert min_replicas("green") == 1
    wait_for("green's HPA minimum back to 1", lambda: hpa_min("green") == 1, WAIT)
