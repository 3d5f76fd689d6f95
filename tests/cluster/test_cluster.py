"""The local control plane behaves like a real cluster: the things every later suite relies on."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ferry_devcluster import tools, versions
from ferry_devcluster.procs import wait_for
from kubernetes import client, config
from kubernetes.client.rest import ApiException

CHARTS = Path(__file__).parent / "charts"


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        "default ServiceAccount", lambda: bool(core.read_namespaced_service_account("default", name)), 30
    )
    yield name
    core.delete_namespace(name)


def deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example.invalid/app:1",
                            "resources": {"requests": {"cpu": "100m"}},
                        }
                    ]
                },
            },
        },
    }


def test_server_runs_the_pinned_release_and_the_node_is_ready(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version == versions.KUBERNETES
    nodes = client.CoreV1Api(api).list_node().items
    assert nodes, "no nodes registered"
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", f"{node.metadata.name} not Ready"


def test_deployment_becomes_available_with_running_pods(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=3))

    def available() -> bool:
        st = apps.read_namespaced_deployment_status("web", namespace).status
        return (st.available_replicas or 0) == 3

    wait_for("deployment web available", available, 60)
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)


def test_deleting_an_owner_garbage_collects_its_dependents(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("garbage collection of the dependent", gone, 60)


def test_hpa_is_accepted_and_reconciled(api: client.ApiClient, namespace: str) -> None:
    apps, hpa_api = client.AppsV1Api(api), client.AutoscalingV2Api(api)
    apps.create_namespaced_deployment(namespace, deployment("scaled", replicas=1))
    hpa_api.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "scaled"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        },
    )

    # The controller-manager enforces minReplicas even before any metric arrives.
    def scaled_to_min() -> bool:
        hpa = hpa_api.read_namespaced_horizontal_pod_autoscaler("scaled", namespace)
        conditions = {c.type for c in (hpa.status.conditions or [])}
        return (
            "AbleToScale" in conditions
            and apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 2
        )

    wait_for("HPA reconciled to minReplicas", scaled_to_min, 60)


def isvc(name: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "scaleMetric": "cpu",
                "scaleTarget": 60,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "example.invalid/model:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ],
                **predictor,
            }
        },
    }


def test_kserve_inferenceservice_yields_deployment_service_hpa_and_ready(
    api: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", isvc("iris")
    )

    def ready() -> bool:
        obj = custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "iris"
        )
        conds = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
        return conds.get("Ready") == "True"

    wait_for("InferenceService iris Ready", ready, 120, 0.5)
    apps, core, hpa_api = client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)
    dep = apps.read_namespaced_deployment("iris-predictor", namespace)
    assert dep.spec.template.spec.containers[0].image == "example.invalid/model:1"
    # The webhook's defaulting ran: KServe labels the pods with the owning InferenceService.
    assert dep.spec.template.metadata.labels["serving.kserve.io/inferenceservice"] == "iris"
    assert core.read_namespaced_service("iris-predictor", namespace).spec.selector
    hpa = hpa_api.read_namespaced_horizontal_pod_autoscaler("iris-predictor", namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3)
    assert hpa.spec.metrics[0].resource.target.average_utilization == 60


def test_kserve_webhook_rejects_an_invalid_inferenceservice(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    bad = isvc("bad")
    bad["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = "no-such-autoscaler"
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", bad
        )
    # A webhook denial: 403 from the API server, naming the webhook and KServe's reason.
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert message.startswith('admission webhook "inferenceservice.kserve-webhook-server.validator" denied')
    assert "[no-such-autoscaler] is not a supported autoscaler class type" in message


def test_helm_installs_and_uninstalls_a_chart(api: client.ApiClient, kubeconfig: str, namespace: str) -> None:
    helm = [str(tools.bin_path("helm")), "--kubeconfig", kubeconfig, "-n", namespace]
    subprocess.run(
        [*helm, "install", "probe", str(CHARTS / "smoke"), "--set", "message=hi", "--wait"],
        check=True,
        capture_output=True,
        text=True,
    )
    core = client.CoreV1Api(api)
    assert core.read_namespaced_config_map("probe-smoke", namespace).data == {"message": "hi"}
    listed = subprocess.run([*helm, "list", "-q"], check=True, capture_output=True, text=True).stdout.split()
    assert listed == ["probe"]
    subprocess.run([*helm, "uninstall", "probe", "--wait"], check=True, capture_output=True, text=True)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("probe-smoke", namespace)
    assert err.value.status == 404
