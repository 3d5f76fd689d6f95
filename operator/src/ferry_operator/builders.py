"""Pure builders of the objects a ModelDeployment owns: one InferenceService and one
PodDisruptionBudget per colour, two Services (and the predictor network policy, ``netpolicy.py``).

Plain functions of data, returning the dicts the shell applies. Names and labels here are the
contract with the gateway (Services ``NAME`` and ``NAME-preview`` on port 80) and with the
predictor (the environment in ``ferry_common.contract.PredictorEnv``); the keys themselves are
defined once in ``ferry_common.contract``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry_common import runtime
from ferry_common.contract import (
    API_VERSION,
    GROUP,
    ISVC_API_VERSION,
    ISVC_KIND,
    LABEL_COLOR,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    LABEL_VERSION,
    MODEL_DEPLOYMENT,
    PART_OF,
    PredictorEnv,
)
from kubernetes.utils import parse_quantity

from ferry_operator.resource import Color, ModelDeploymentSpec

PREDICTOR_PORT = runtime.HTTP_PORT
# A selector value no pod carries: how a Service says "no colour is Ready, route nowhere".
NO_COLOR = "none"


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": MODEL_DEPLOYMENT.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def controls(self, obj: dict[str, Any] | None) -> bool:
        """Whether ``obj`` (an InferenceService or Service found under one of our names) is ours
        to patch, replace or delete.

        Ours: its controller is this ModelDeployment, or a ModelDeployment of the same name in the
        same namespace that was deleted and re-created (a different uid: the old one is gone, as
        names are unique, and its garbage collection is only pending), which we adopt. Anything
        else under our names (no controller, or another controller) belongs to someone else: a
        ModelDeployment ``foo-preview`` and ``foo``'s preview Service, or a user's own object. It
        is never touched; the status says so instead.
        """
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if meta.get("namespace", self.namespace) != self.namespace:
            return False
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") is True:
                group = str(ref.get("apiVersion", "")).split("/")[0]
                kind, name = ref.get("kind"), ref.get("name")
                return group == GROUP and kind == MODEL_DEPLOYMENT.kind and name == self.name
        return False

    def conflict(self, kind: str, name: str) -> str:
        return (
            f"{kind} {self.namespace}/{name} exists and is not controlled by ModelDeployment "
            f"{self.name}: Ferry will not take it over; rename or delete one of them"
        )


@dataclass(frozen=True)
class PredictorSettings:
    """Operator-wide settings the predictor needs (from the operator's configuration)."""

    tracking_uri: str
    # A Secret in the ModelDeployment's namespace whose keys (MLFLOW_TRACKING_TOKEN, ...) become env.
    credentials_secret: str | None = None
    deployment_mode: str = "RawDeployment"
    # The image of Ferry's own runtime, which the operator instantiates itself (see below).
    image: str = runtime.DEFAULT_IMAGE


def isvc_name(md_name: str, color: Color) -> str:
    return f"{md_name}-{color.value}"


def service_names(md_name: str) -> tuple[str, str]:
    return md_name, f"{md_name}-preview"


def pdb_name(md_name: str, color: Color) -> str:
    # KServe names the colour's Deployment, HPA and Service `<isvc>-predictor`; it makes no PDB.
    return f"{isvc_name(md_name, color)}-predictor"


def labels(owner: Owner) -> dict[str, str]:
    """The labels on everything a ModelDeployment owns (its predictor pods too)."""
    return {LABEL_MANAGED_BY: PART_OF, LABEL_DEPLOYMENT: owner.name}


Resources = dict[str, dict[str, str]]


def merge_resources(defaults: Resources, user: Resources) -> Resources:
    """The runtime's resources with the user's on top, one quantity at a time.

    A user's ``requests`` alone keeps the default ``limits`` (a pod without a memory limit can
    take its node's memory). Where a default and a user's value of the same resource would put
    the request above the limit, which the API server rejects, the user's value wins: a request
    above the default limit raises the limit to it, a limit below the default request lowers
    the request to it.
    """
    user_requests, user_limits = user.get("requests", {}), user.get("limits", {})
    requests = {**defaults.get("requests", {}), **user_requests}
    limits = {**defaults.get("limits", {}), **user_limits}
    for name in requests.keys() & limits.keys():
        if parse_quantity(requests[name]) <= parse_quantity(limits[name]):
            continue
        if name in user_requests and name not in user_limits:
            limits[name] = requests[name]
        elif name in user_limits and name not in user_requests:
            requests[name] = limits[name]
        # Both the user's own: the API server says which is wrong, as for any pod.
    merged: Resources = {}
    if requests:
        merged["requests"] = requests
    if limits:
        merged["limits"] = limits
    return merged


def inference_service(
    owner: Owner,
    spec: ModelDeploymentSpec,
    color: Color,
    model_name: str,
    version: str,
    min_replicas: int,
    settings: PredictorSettings,
    artifact_digest: str | None = None,
) -> dict[str, Any]:
    """The InferenceService of one colour, pinned to one registry version and its artifacts.

    The URI is pinned (``models:/NAME/VERSION``) even when the spec follows an alias: a pod that
    restarts must load the version its colour was verified with, not wherever the alias is now.
    A version number does not pin what is stored under it, so ``artifact_digest`` (recorded
    when the version was first resolved) goes along: every pod, restarted or scaled out later,
    refuses artifacts that differ from it before unpickling anything.
    """
    a = spec.autoscaling
    pod_labels = {**labels(owner), LABEL_COLOR: color.value, LABEL_VERSION: version}
    env = [
        {"name": PredictorEnv.MODEL_URI, "value": f"models:/{model_name}/{version}"},
        {"name": PredictorEnv.TRACKING_URI, "value": settings.tracking_uri},
        {"name": PredictorEnv.COLOR, "value": color.value},
        {"name": PredictorEnv.MODEL_VERSION, "value": version},
        # Both colours answer to the ModelDeployment's name, so switching colours never
        # changes the URL clients and the gateway use.
        {"name": PredictorEnv.MODEL_NAME, "value": owner.name},
    ]
    if artifact_digest is not None:
        env.append({"name": PredictorEnv.ARTIFACT_DIGEST, "value": artifact_digest})
    resources: Resources = spec.predictor.resources.model_dump(exclude_none=True)
    env_from = (
        [{"secretRef": {"name": settings.credentials_secret, "optional": True}}]
        if settings.credentials_secret
        else []
    )
    predictor_impl: dict[str, Any]
    annotations: dict[str, str] = {}
    # Predictors never call the Kubernetes API: no token in the pod for whoever runs code in it
    # (a model loads by pickle). Whatever the runtime.
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # Time for the preStop delay and the drain (ferry_common.runtime.PRESTOP_SECONDS).
        "terminationGracePeriodSeconds": runtime.TERMINATION_GRACE_SECONDS,
    }
    if spec.predictor.runtime == runtime.NAME:
        # Ferry's runtime is instantiated as the predictor's own container: KServe treats a
        # `model` without storageUri as multi-model serving and injects its model-puller agent
        # sidecar, which has nothing to pull here (the predictor loads from MLflow itself).
        container = runtime.predictor_container(settings.image, owner.name)
        container["env"] = [*container["env"], *env]
        container["resources"] = merge_resources(container["resources"], resources)
        if env_from:
            container["envFrom"] = env_from
        predictor_impl = {"containers": [container], "volumes": runtime.predictor_volumes()}
        # Ferry's image runs as its non-root user with only /tmp writable (ferry_common.runtime).
        pod["securityContext"] = dict(runtime.POD_SECURITY_CONTEXT)
        annotations = dict(runtime.SCRAPE_ANNOTATIONS)
    else:
        # Another runtime's image: its user and the paths it writes are its own, so only what
        # suits any image is set here (the default seccomp profile of the container runtime).
        pod["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
        model: dict[str, Any] = {
            "modelFormat": {"name": "mlflow"},
            "runtime": spec.predictor.runtime,
            "env": env,
            "resources": resources,
        }
        if env_from:
            model["envFrom"] = env_from
        predictor_impl = {"model": model}
    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": ISVC_KIND,
        "metadata": {
            "name": isvc_name(owner.name, color),
            "namespace": owner.namespace,
            "labels": pod_labels,
            "annotations": {
                "serving.kserve.io/deploymentMode": settings.deployment_mode,
                "serving.kserve.io/autoscalerClass": "hpa",
                "serving.kserve.io/metrics": a.metric.value,
                "serving.kserve.io/targetUtilizationPercentage": str(a.target),
            },
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "predictor": {
                # The floor may be raised for a rollout (never above max: the CRD keeps min <= max).
                "minReplicas": max(min_replicas, a.minReplicas),
                "maxReplicas": max(a.maxReplicas, min_replicas),
                "scaleMetric": a.metric.value,
                "scaleTarget": a.target,
                "labels": pod_labels,
                **({"annotations": annotations} if annotations else {}),
                **pod,
                **predictor_impl,
            }
        },
    }


def pod_disruption_budget(owner: Owner, color: Color) -> dict[str, Any]:
    """A colour's PodDisruptionBudget: a node drain evicts its predictor pods one at a time, so a
    colour with two or more replicas keeps serving through it (with one, the drain still proceeds:
    maxUnavailable, not minAvailable, never blocks it)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": pdb_name(owner.name, color),
            "namespace": owner.namespace,
            "labels": {**labels(owner), LABEL_COLOR: color.value},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {LABEL_DEPLOYMENT: owner.name, LABEL_COLOR: color.value}},
        },
    }


def service(owner: Owner, name: str, color: Color | None, role: str) -> dict[str, Any]:
    """A stable Service whose selector points at one colour's predictor pods (or at none)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**labels(owner), LABEL_ROLE: role},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_DEPLOYMENT: owner.name, LABEL_COLOR: color.value if color else NO_COLOR},
            "ports": [{"name": "http", "port": 80, "targetPort": PREDICTOR_PORT, "protocol": "TCP"}],
        },
    }


def selected_color(svc: dict[str, Any] | None) -> Color | None:
    """Which colour an existing Service routes to, read back from its selector."""
    if not svc:
        return None
    value = (svc.get("spec", {}).get("selector") or {}).get(LABEL_COLOR)
    return Color(value) if value in (Color.blue.value, Color.green.value) else None


DEFAULT_PREDICTOR_IMAGE = runtime.DEFAULT_IMAGE


def serving_runtime(image: str = DEFAULT_PREDICTOR_IMAGE, name: str = runtime.NAME) -> dict[str, Any]:
    """The ClusterServingRuntime every colour's InferenceService runs (shipped in manifests/)."""
    return runtime.cluster_serving_runtime(image, name)
