"""The real node: containers run, Services route, DNS resolves, and the HPA sees real CPU."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from localcluster import images
from localcluster.procs import wait_for

pytestmark = pytest.mark.cluster

# A tiny HTTP server that answers with its pod's name: enough to see load balancing.
SERVER = """
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""


@pytest.fixture(scope="module")
def api(real_kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=real_kubeconfig)


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"real-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        "default ServiceAccount", lambda: bool(core.read_namespaced_service_account("default", name)), 30
    )
    yield name
    core.delete_namespace(name)


def container(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": images.BASE, "imagePullPolicy": "Never", "command": command, **extra}


@pytest.fixture(scope="module")
def web(api: client.ApiClient, namespace: str) -> str:
    """Two replicas of the server behind a Service; returns the Service's ClusterIP."""
    labels = {"app": "web"}
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            container(
                                "web",
                                ["python3", "-c", SERVER],
                                readinessProbe=probe,
                                resources={"requests": {"cpu": "50m"}},
                            )
                        ]
                    },
                },
            },
        },
    )
    svc = client.CoreV1Api(api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def available() -> bool:
        st = client.AppsV1Api(api).read_namespaced_deployment_status("web", namespace).status
        return (st.available_replicas or 0) == 2

    wait_for("web Deployment available on the real node", available, 120, 0.5)
    return str(svc.spec.cluster_ip)


def test_pods_run_and_a_service_balances_across_them(api: client.ApiClient, namespace: str, web: str) -> None:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    names = {p.metadata.name for p in pods}
    assert all(p.spec.node_name == "ferry-node-0" and p.status.pod_ip.startswith("10.88.") for p in pods)
    seen: set[str] = set()

    def both_answered() -> bool:
        with urllib.request.urlopen(f"http://{web}/", timeout=2) as r:
            seen.add(r.read().decode())
        return seen == names

    wait_for("both pods answering through the ClusterIP", both_answered, 30, 0.05)


def test_pods_resolve_services_by_name(api: client.ApiClient, namespace: str, web: str) -> None:
    """A Job inside the cluster fetches the Service by its DNS name (CoreDNS + kube-proxy)."""
    url = f"http://web.{namespace}.svc.cluster.local/"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "fetch"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [container("fetch", ["python3", "-c", fetch])],
                    }
                },
            },
        },
    )

    def finished() -> bool:
        st = batch.read_namespaced_job_status("fetch", namespace).status
        if st.failed:
            raise AssertionError("the in-cluster fetch failed")
        return bool(st.succeeded)

    wait_for("in-cluster fetch by DNS name", finished, 120, 0.5)
    core = client.CoreV1Api(api)
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=fetch").items[0]
    output = core.read_namespaced_pod_log(pod.metadata.name, namespace).strip()
    assert output.startswith("web-"), output


def test_hpa_reads_real_cpu_from_metrics_server(api: client.ApiClient, namespace: str, web: str) -> None:
    client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )

    def measured() -> bool:
        hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web", namespace)
        current = hpa.status.current_metrics or []
        return bool(current) and current[0].resource.current.average_utilization is not None

    wait_for("HPA reading CPU utilisation from metrics.k8s.io", measured, 180, 1)
    usage = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", namespace, "pods"
    )
    web_pods = [p for p in usage["items"] if p["metadata"]["name"].startswith("web-")]
    assert len(web_pods) >= 2
    assert all(c["usage"]["cpu"] for p in web_pods for c in p["containers"])
