"""The InferenceService/Service builders and the status computation, as plain data."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_operator.bluegreen import Observation, Policy, State, decide
from ferry_operator.builders import (
    NO_COLOR,
    Owner,
    PredictorSettings,
    inference_service,
    merge_resources,
    pdb_name,
    pod_disruption_budget,
    selected_color,
    service,
)
from ferry_operator.registry import ResolvedVersion
from ferry_operator.resource import Color, ModelDeploymentSpec
from ferry_operator.status import RegistryOutcome, compute_status, predictor_state, set_condition
from hypothesis import given, settings
from hypothesis import strategies as st

OWNER = Owner("titanic", "ml", "uid-1")
SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {"name": "titanic-survival", "alias": "champion"},
        "predictor": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "metric": "memory", "target": 70},
    }
)
SETTINGS = PredictorSettings("http://mlflow.ml:5000", credentials_secret="mlflow-creds")


def test_inference_service_runs_the_pinned_version_through_the_ferry_runtime() -> None:
    isvc = inference_service(OWNER, SPEC, Color.green, "titanic-survival", "4", 2, SETTINGS)
    assert isvc["metadata"]["name"] == "titanic-green"
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    ann = isvc["metadata"]["annotations"]
    assert ann["serving.kserve.io/autoscalerClass"] == "hpa"
    assert ann["serving.kserve.io/metrics"] == "memory"
    assert ann["serving.kserve.io/targetUtilizationPercentage"] == "70"
    pred = isvc["spec"]["predictor"]
    assert (pred["minReplicas"], pred["maxReplicas"], pred["scaleMetric"], pred["scaleTarget"]) == (
        2,
        10,
        "memory",
        70,
    )
    # Ferry's runtime is instantiated as the container itself (no KServe model-puller sidecar).
    assert "model" not in pred
    (container,) = pred["containers"]
    assert container["name"] == "kserve-container" and container["image"] == SETTINGS.image
    assert "--model_name=titanic" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "FERRY_MODEL_DIR": "/tmp/ferry-model",
        "MODEL_URI": "models:/titanic-survival/4",
        "MLFLOW_TRACKING_URI": "http://mlflow.ml:5000",
        "FERRY_COLOR": "green",
        "FERRY_MODEL_VERSION": "4",
        "FERRY_MODEL_NAME": "titanic",
    }
    # The user's requests on top of the runtime's defaults: the default memory limit stays.
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-creds", "optional": True}}]
    # Prometheus scrapes the predictor's metrics port, never the port predictions are served on
    assert pred["annotations"]["prometheus.kserve.io/port"] == "8082"
    assert "--metrics_port=8082" in container["args"]
    assert {"name": "metrics", "containerPort": 8082, "protocol": "TCP"} in container["ports"]
    assert pred["labels"]["ferry.dev/color"] == "green"


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("runtime", ["ferry-mlflow", "my-runtime"])
def test_the_recorded_digest_goes_to_every_predictor_of_its_version(runtime: str) -> None:
    spec = SPEC.model_copy(update={"predictor": SPEC.predictor.model_copy(update={"runtime": runtime})})

    def env(digest: str | None) -> dict[str, str]:
        pred = inference_service(OWNER, spec, Color.blue, "m", "4", 1, SETTINGS, digest)["spec"]["predictor"]
        where = pred["containers"][0] if "containers" in pred else pred["model"]
        return {e["name"]: e["value"] for e in where["env"]}

    assert env(DIGEST)["FERRY_ARTIFACT_DIGEST"] == DIGEST
    assert "FERRY_ARTIFACT_DIGEST" not in env(None)  # a version deployed before digests existed


def test_a_stopping_predictor_pod_keeps_serving_until_its_endpoint_is_gone_then_drains() -> None:
    """Issue 17: the kubelet's preStop sleep holds SIGTERM back while the endpoint is removed;
    the grace period covers that delay and the predictor's drain, so nothing in flight is cut."""
    from ferry_common import runtime

    pred = inference_service(OWNER, SPEC, Color.blue, "titanic-survival", "4", 1, SETTINGS)["spec"][
        "predictor"
    ]
    (container,) = pred["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": runtime.PRESTOP_SECONDS}}}
    assert pred["terminationGracePeriodSeconds"] > runtime.PRESTOP_SECONDS + runtime.DRAIN_SECONDS
    other = SPEC.model_copy(
        update={"predictor": SPEC.predictor.model_copy(update={"runtime": "kserve-mlflowserver"})}
    )
    assert (
        "terminationGracePeriodSeconds"
        in inference_service(OWNER, other, Color.blue, "titanic-survival", "4", 1, SETTINGS)["spec"][
            "predictor"
        ]
    )


def test_ferry_predictor_pods_are_hardened_and_carry_no_token() -> None:
    """Issue 13, findings 11 and 4: read-only root with /tmp the only writable place, the default
    seccomp profile, a fixed non-root uid, no privilege escalation or capability, no token."""
    pred = inference_service(OWNER, SPEC, Color.blue, "titanic-survival", "4", 1, SETTINGS)["spec"][
        "predictor"
    ]
    assert pred["automountServiceAccountToken"] is False
    assert pred["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pred["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"]) == (True, 65532, 65532)
    # The model directory and TMPDIR are on the one writable volume, an emptyDir.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pred["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FERRY_MODEL_DIR"].startswith("/tmp/") and "TMPDIR" not in env  # tempfile's default
    # Unchanged by the hardening: the named ports and the metrics port argument.
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8082, "protocol": "TCP"},
    ]
    assert container["args"] == ["--model_name=titanic", "--http_port=8080", "--metrics_port=8082"]


def test_the_cluster_serving_runtime_carries_the_same_hardening() -> None:
    from ferry_operator.builders import serving_runtime

    spec = serving_runtime()["spec"]
    (container,) = spec["containers"]
    direct = inference_service(OWNER, SPEC, Color.blue, "m", "1", 1, SETTINGS)["spec"]["predictor"]
    assert container["securityContext"] == direct["containers"][0]["securityContext"]
    assert container["volumeMounts"] == direct["containers"][0]["volumeMounts"]
    assert spec["volumes"] == direct["volumes"]


@pytest.mark.parametrize(
    ("user", "merged"),
    [
        # nothing of the user's: the runtime's defaults
        ({}, {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}),
        # requests alone keep the default memory limit (issue 13, finding 11)
        (
            {"requests": {"cpu": "2", "memory": "512Mi"}},
            {"requests": {"cpu": "2", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        ),
        # a request above the default limit raises it, or the API server would refuse the pod
        (
            {"requests": {"memory": "4Gi"}},
            {"requests": {"cpu": "100m", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        ),
        # a limit below the default request lowers it, for the same reason
        (
            {"limits": {"memory": "128Mi"}},
            {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
        ),
        # the user's own limit, other resources added alongside the defaults
        (
            {"limits": {"memory": "2Gi", "cpu": "1", "nvidia.com/gpu": "1"}},
            {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "2Gi", "cpu": "1", "nvidia.com/gpu": "1"},
            },
        ),
        # both of the user's own, even inconsistent: kept as written (the API server says why)
        (
            {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
            {"requests": {"cpu": "100m", "memory": "2Gi"}, "limits": {"memory": "1Gi"}},
        ),
    ],
)
def test_user_resources_merge_with_the_runtime_defaults(
    user: dict[str, dict[str, str]], merged: dict[str, dict[str, str]]
) -> None:
    defaults = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    assert merge_resources(defaults, user) == merged
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"name": "m", "version": "1"}, "predictor": {"resources": user}}
    )
    (container,) = inference_service(OWNER, spec, Color.blue, "m", "1", 1, SETTINGS)["spec"]["predictor"][
        "containers"
    ]
    assert container["resources"] == merged


def test_each_colour_has_an_owned_disruption_budget_over_its_own_pods() -> None:
    pdb = pod_disruption_budget(OWNER, Color.green)
    assert pdb["metadata"]["name"] == pdb_name("titanic", Color.green) == "titanic-green-predictor"
    assert pdb["metadata"]["namespace"] == "ml"
    assert pdb["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    pod_labels = inference_service(OWNER, SPEC, Color.green, "m", "3", 1, SETTINGS)["spec"]["predictor"][
        "labels"
    ]
    assert selector.items() <= pod_labels.items()  # selects the colour's predictor pods
    blue_labels = inference_service(OWNER, SPEC, Color.blue, "m", "3", 1, SETTINGS)["spec"]["predictor"][
        "labels"
    ]
    assert not selector.items() <= blue_labels.items()  # and not the other colour's
    assert OWNER.controls(pdb)


def test_another_runtime_goes_through_kserve_runtime_selection() -> None:
    spec = SPEC.model_copy(update={"predictor": SPEC.predictor.model_copy(update={"runtime": "my-runtime"})})
    pred = inference_service(OWNER, spec, Color.blue, "titanic-survival", "4", 1, SETTINGS)["spec"][
        "predictor"
    ]
    assert "containers" not in pred
    model = pred["model"]
    assert model["runtime"] == "my-runtime" and model["modelFormat"] == {"name": "mlflow"}
    assert {e["name"]: e["value"] for e in model["env"]}["MODEL_URI"] == "models:/titanic-survival/4"
    assert model["envFrom"] == [{"secretRef": {"name": "mlflow-creds", "optional": True}}]
    # No token whatever the runtime; its image's user and writable paths are its own.
    assert pred["automountServiceAccountToken"] is False
    assert pred["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "volumes" not in pred


@given(floor=st.integers(1, 200))
def test_rollout_floor_never_breaks_min_le_max(floor: int) -> None:
    pred = inference_service(OWNER, SPEC, Color.blue, "m", "1", floor, SETTINGS)["spec"]["predictor"]
    assert SPEC.autoscaling.minReplicas <= pred["minReplicas"] <= pred["maxReplicas"]
    assert pred["minReplicas"] == max(floor, 2)


def test_services_select_one_colour_or_none() -> None:
    svc = service(OWNER, "titanic", Color.blue, "active")
    assert svc["spec"]["selector"] == {"ferry.dev/deployment": "titanic", "ferry.dev/color": "blue"}
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 8080
    assert selected_color(svc) is Color.blue
    nowhere = service(OWNER, "titanic-preview", None, "preview")
    assert nowhere["spec"]["selector"]["ferry.dev/color"] == NO_COLOR and selected_color(nowhere) is None


def isvc(version: str, ready: str, generation: int = 1, observed: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"ferry.dev/model-version": version}, "generation": generation},
        "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready, "reason": "R", "message": "m"}],
            **status,
        },
    }


def test_predictor_state_reads_kserve_readiness() -> None:
    assert predictor_state(None).reason == "Absent"
    assert predictor_state(isvc("3", "True")).ready
    assert not predictor_state(isvc("3", "True", generation=2, observed=1)).ready  # stale status
    failing = predictor_state(
        isvc(
            "3",
            "False",
            modelStatus={"lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no such file"}},
        )
    )
    assert failing.failing and failing.reason == "ModelLoadFailed" and "no such file" in failing.message


def test_condition_transition_time_moves_only_on_status_change() -> None:
    c = set_condition([], "Ready", True, "Serving", "", "t1", 1)
    c = set_condition(c, "Ready", True, "Serving", "still", "t2", 2)
    assert c[0]["lastTransitionTime"] == "t1" and c[0]["observedGeneration"] == 2
    c = set_condition(c, "Ready", False, "Degraded", "", "t3", 2)
    assert c[0]["lastTransitionTime"] == "t3" and c[0]["status"] == "False"


def test_status_says_what_serves_and_why() -> None:
    resolved = ResolvedVersion("titanic-survival", "1", "run", "models:/m-1", "READY")
    d = decide(State(), Policy(smoke_enabled=False), Observation(0.0, "1", {Color.blue: "1"}))
    status = compute_status(
        md_name="titanic",
        generation=3,
        old_status={},
        registry=RegistryOutcome(resolved, "Resolved", "models:/titanic-survival@champion -> 1"),
        decision=d,
        predictors={Color.blue: predictor_state(isvc("1", "True"))},
        now="2026-11-23T19:00:00Z",
    )
    assert status["phase"] == "Stable" and status["observedGeneration"] == 3
    assert status["active"] == {
        "color": "blue",
        "modelVersion": "1",
        "inferenceService": "titanic-blue",
        "ready": True,
    }
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {
        "RegistryResolved": "True",
        "PredictorReady": "True",
        "Ready": "True",
        "RolloutInProgress": "False",
    }
    assert status["model"]["version"] == "1" and status["model"]["runId"] == "run"
    outage = compute_status(
        md_name="titanic",
        generation=3,
        old_status=status,
        registry=RegistryOutcome(None, "RegistryUnavailable", "connection refused"),
        decision=decide(d.state, Policy(), Observation(1.0, None, {Color.blue: "1"})),
        predictors={Color.blue: predictor_state(isvc("1", "True"))},
        now="2026-11-23T19:01:00Z",
    )
    conds = {c["type"]: (c["status"], c["reason"]) for c in outage["conditions"]}
    assert conds["RegistryResolved"] == ("False", "RegistryUnavailable") and conds["Ready"][0] == "True"
    assert outage["model"] == status["model"] and outage["active"] == status["active"]


def test_digests_are_kept_for_the_versions_in_play_and_shown_per_colour() -> None:
    resolved = ResolvedVersion("titanic-survival", "2", "run", "models:/m-2", "READY")
    stable = decide(State(), Policy(smoke_enabled=False), Observation(0.0, "1", {Color.blue: "1"})).state
    d = decide(stable, Policy(), Observation(1.0, "2", {Color.blue: "1"}))  # rollout of 2 starts
    assert d.state.preview is not None and d.state.preview.version == "2"
    recorded = {"1": "sha256:" + "1" * 64, "2": "sha256:" + "2" * 64, "0": "sha256:" + "0" * 64}
    status = compute_status(
        md_name="titanic",
        generation=1,
        old_status={},
        registry=RegistryOutcome(resolved, "Resolved", "-> 2", artifact_digest=recorded["2"]),
        decision=d,
        predictors={Color.blue: predictor_state(isvc("1", "True"))},
        now="2026-11-23T19:00:00Z",
        recorded=recorded,
    )
    assert status["artifactDigests"] == {"1": recorded["1"], "2": recorded["2"]}  # 0 left
    assert status["active"]["artifactDigest"] == recorded["1"]
    assert status["preview"]["artifactDigest"] == recorded["2"]


@settings(deadline=None)
@given(
    old=st.recursive(
        st.dictionaries(st.sampled_from("abc"), st.integers(0, 2)),
        lambda c: st.dictionaries(st.sampled_from("abc"), c),
    ),
    new=st.recursive(
        st.dictionaries(st.sampled_from("abc"), st.integers(0, 2)),
        lambda c: st.dictionaries(st.sampled_from("abc"), c),
    ),
)
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    from ferry_operator.reconcile import merge_patch

    def apply(target: Any, patch: Any) -> Any:  # RFC 7386, as the API server applies it
        if not isinstance(patch, dict):
            return patch
        out = dict(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = apply(out.get(k), v)
        return out

    assert apply(old, merge_patch(old, new)) == new


def test_a_patch_to_the_new_predictor_shape_removes_the_old_one() -> None:
    from ferry_operator.kube import _stale_predictor_keys

    desired = inference_service(OWNER, SPEC, Color.green, "titanic-survival", "4", 2, SETTINGS)
    written_by_an_older_operator = {"spec": {"predictor": {"model": {"runtime": "ferry-mlflow"}}}}
    assert _stale_predictor_keys(written_by_an_older_operator, desired) == {"model": None}
    assert _stale_predictor_keys(desired, desired) == {}


# ---- who controls an object under our names (issue 13, finding 5) -------------------------------


def _with_controller(**ref: Any) -> dict[str, Any]:
    base = {"apiVersion": "ferry.dev/v1alpha1", "kind": "ModelDeployment", "name": "foo", "uid": "u1"}
    return {"metadata": {"namespace": "ml", "ownerReferences": [{**base, "controller": True, **ref}]}}


@pytest.mark.parametrize(
    ("obj", "ours"),
    [
        (None, False),
        ({"metadata": {"namespace": "ml"}}, False),  # no owner: a user's own object
        (_with_controller(), True),
        (_with_controller(uid="old"), True),  # a deleted predecessor of the same name: adopted
        (_with_controller(name="foo-preview"), False),  # ModelDeployment foo-preview's Service
        (_with_controller(kind="Deployment", apiVersion="apps/v1"), False),
        (_with_controller(apiVersion="other.dev/v1"), False),
        (_with_controller(controller=False), False),  # an owner, not the controller
        ({"metadata": {**_with_controller()["metadata"], "namespace": "other"}}, False),
    ],
)
def test_a_deployment_controls_only_what_it_or_its_predecessor_made(obj: Any, ours: bool) -> None:
    assert Owner("foo", "ml", "u1").controls(obj) is ours
