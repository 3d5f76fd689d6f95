"""The ClusterServingRuntime ``ferry-mlflow``: the contract between operator and predictor.

It lives here, in the one package both depend on, because it is that contract: the operator
refers to it by name from each InferenceService (``runtime: ferry-mlflow``) and sets MODEL_URI,
MLFLOW_TRACKING_URI, FERRY_COLOR, FERRY_MODEL_VERSION and FERRY_MODEL_NAME on the predictor, which
reads them. ``manifests/runtime`` and the chart are rendered from here;
``python -m ferry_common.runtime --image IMAGE`` prints it as JSON.

KServe names each colour's model after its InferenceService (``titanic-blue``), but clients and
the gateway address the ModelDeployment (``titanic``) whichever colour answers; FERRY_MODEL_NAME
carries that public name, so both colours serve ``/v1/models/titanic:predict`` and a Service
switch between colours never changes the URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ferry_common.contract import PredictorEnv

NAME = "ferry-mlflow"
MODEL_FORMAT = "mlflow"
HTTP_PORT = 8080
# Prometheus scrapes this port, apart from the traffic port (ferry_common.metricsport). 8081 is
# KServe's gRPC port.
METRICS_PORT = 8082
DEFAULT_IMAGE = "ghcr.io/ferry-dev/ferry-predictor:0.1.0"
# The environment variable naming the model as clients address it (see the module docstring).
SERVED_NAME_ENV = PredictorEnv.MODEL_NAME
SCRAPE_ANNOTATIONS = {"prometheus.kserve.io/port": str(METRICS_PORT), "prometheus.kserve.io/path": "/metrics"}

# Shutting a predictor pod down without dropping a request. Deleting a pod removes it from its
# Service's endpoints while the kubelet stops it, and kube-proxy (and the gateway's pool) learn it
# a few seconds later: the preStop sleep keeps the pod serving through that window; only then does
# SIGTERM arrive, uvicorn stops accepting, finishes the requests in flight (for at most
# DRAIN_SECONDS, the predictor's FERRY_SHUTDOWN_TIMEOUT_SECONDS) and closes its keep-alive
# connections, which the gateway retries elsewhere. The grace period covers both, with room to exit.
PRESTOP_SECONDS = 5
DRAIN_SECONDS = 20
TERMINATION_GRACE_SECONDS = PRESTOP_SECONDS + DRAIN_SECONDS + 5

# The image's non-root user (Containerfile: `nonroot`, 65532:65532), named here too so the pod
# refuses to start if an image ever runs as root, and above 10000 so no host user shares it.
UID = GID = 65532
# The only writable place: the root filesystem is read-only, and /tmp is an emptyDir. The model is
# downloaded to MODEL_DIR below it; MLflow's other temporary files go through Python's tempfile,
# whose default directory is /tmp (no TMPDIR is set: the runtime sets only contract variables).
TMP_DIR = "/tmp"
MODEL_DIR = f"{TMP_DIR}/ferry-model"
TMP_VOLUME = "tmp"
# Pod-level settings the ClusterServingRuntime cannot carry (its pod spec has no securityContext
# and no automountServiceAccountToken); the operator sets them on each InferenceService.
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": GID,
    "fsGroup": GID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def predictor_container(image: str = DEFAULT_IMAGE, model_name: str = "{{.Name}}") -> dict[str, Any]:
    """The predictor's container: in the ClusterServingRuntime (``{{.Name}}`` filled in by KServe),
    and instantiated directly by the operator (see ``ferry_operator.builders``)."""
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    return {
        "name": "kserve-container",
        "image": image,
        "args": [f"--model_name={model_name}", f"--http_port={HTTP_PORT}", f"--metrics_port={METRICS_PORT}"],
        "env": [{"name": PredictorEnv.MODEL_DIR, "value": MODEL_DIR}],
        "ports": [
            # Named: KServe's predictor Service takes every container port, and a Service with
            # more than one port must name each.
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe,
        # The kubelet's own sleep (no binary needed in the image): see PRESTOP_SECONDS.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": HTTP_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        # Everything at container level too: the ClusterServingRuntime has no pod securityContext.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": GID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": TMP_DIR}],
    }


def predictor_volumes() -> list[dict[str, Any]]:
    """The predictor pod's volumes: the emptyDir behind ``TMP_DIR`` (the model lives there, so it
    is as large as the model; its size counts against the pod's ephemeral storage)."""
    return [{"name": TMP_VOLUME, "emptyDir": {}}]


def cluster_serving_runtime(image: str = DEFAULT_IMAGE, name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "ferry"}},
        "spec": {
            "annotations": SCRAPE_ANNOTATIONS,
            # Selected explicitly by the operator, so it never displaces KServe's own MLflow runtime.
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "3", "autoSelect": False}],
            "protocolVersions": ["v1", "v2"],
            "containers": [predictor_container(image)],
            "volumes": predictor_volumes(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ferry_common.runtime",
        description="Print the ferry-mlflow ClusterServingRuntime as JSON.",
    )
    p.add_argument("--image", default=DEFAULT_IMAGE, help="predictor image (default: %(default)s)")
    p.add_argument("--name", default=NAME, help="runtime name (default: %(default)s)")
    args = p.parse_args(argv)
    json.dump(cluster_serving_runtime(args.image, args.name), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
