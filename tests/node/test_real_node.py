"""The real node: containers run, Services route, DNS resolves, the HPA sees real CPU, and Ferry's own
images (built locally with buildah) run there."""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ferry_devcluster import images
from ferry_devcluster.procs import wait_for
from ferry_testing.chart import template
from kubernetes import client, config

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


# Each Ferry image runs its own entrypoint under the chart's pod security settings.
ENTRYPOINT_HELP = {
    images.OPERATOR.ref: "usage: ferry-operator",
    images.GATEWAY.ref: "usage: ferry-gateway",
    images.PREDICTOR.ref: "usage: ferry-predictor",
    images.MLFLOW.ref: "Usage: mlflow",
}
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}]
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "securityContext": RESTRICTED,
        "volumeMounts": mounts,
        **extra,
    }


def _pod_spec(uid: int, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": list(containers),
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
    }


def _why_not_running(core: client.CoreV1Api, namespace: str, selector: str) -> str:
    """What a user would look at in `kubectl describe`: waiting reasons and the logs."""
    out = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        for cs in pod.status.container_statuses or []:
            where = f"{pod.metadata.name}/{cs.name}"
            if cs.state.waiting:
                out.append(f"{where}: {cs.state.waiting.reason}: {cs.state.waiting.message}")
            with contextlib.suppress(client.ApiException):
                log = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=cs.name, tail_lines=20
                )
                out.append(f"{where} log:\n{log}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def ferry_images(real_kubeconfig: str) -> None:
    """Ferry's images built (cached after the first run) and imported into the node's containerd."""
    images.import_ferry_images()


def test_ferry_images_run_on_the_node(api: client.ApiClient, namespace: str, ferry_images: None) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    jobs = {}
    for i, ref in enumerate(ENTRYPOINT_HELP):
        name = f"help-{i}-{ref.rsplit('/', 1)[1].split(':')[0]}"
        jobs[name] = ref
        spec = _pod_spec(
            65532,
            _container("main", ref, args=["--help"]),
            # kopf and MLflow ask getpass for the user's name; the uid must have one.
            _container("user", ref, command=["python3", "-c", "import getpass; print(getpass.getuser())"]),
        )
        batch.create_namespaced_job(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {"backoffLimit": 0, "template": {"spec": {**spec, "restartPolicy": "Never"}}},
            },
        )
    # The chart's Redis: its args, its uid, read-only root, ready when `redis-cli ping` answers.
    (chart_redis,) = (
        d for d in template("dev") if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-redis")
    )
    redis = _pod_spec(
        chart_redis["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        _container(
            "main",
            images.REDIS.ref,
            args=["--save", "", "--appendonly", "no", "--protected-mode", "no"],
            readinessProbe={"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 1},
        ),
    )
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "redis", "labels": {"app": "redis"}}, "spec": redis}
    )

    pending, failed = set(jobs), set()

    def all_finished() -> bool:  # wait_for retries on exceptions, so a failure ends the wait instead
        for name in list(pending):
            st = batch.read_namespaced_job_status(name, namespace).status
            if st.failed or st.succeeded:
                pending.discard(name)
                if st.failed:
                    failed.add(name)
        return not pending

    try:
        wait_for("every Ferry image's entrypoint --help finishing on the real node", all_finished, 180, 0.5)
    except TimeoutError as exc:
        why = "\n".join(_why_not_running(core, namespace, f"job-name={n}") for n in pending)
        raise AssertionError(f"{exc}\n{why}") from None
    assert not failed, "\n".join(
        f"{jobs[n]} failed on the node:\n{_why_not_running(core, namespace, f'job-name={n}')}" for n in failed
    )
    for name, ref in jobs.items():
        pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items[0]
        assert pod.spec.node_name == "ferry-node-0"
        assert ENTRYPOINT_HELP[ref] in core.read_namespaced_pod_log(
            pod.metadata.name, namespace, container="main"
        )
        assert (
            core.read_namespaced_pod_log(pod.metadata.name, namespace, container="user").strip() == "nonroot"
        )

    def redis_ready() -> bool:
        pod = core.read_namespaced_pod("redis", namespace)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    try:
        wait_for("the Redis pod answering redis-cli ping", redis_ready, 60, 0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_why_not_running(core, namespace, 'app=redis')}") from None
    assert "Ready to accept connections" in core.read_namespaced_pod_log("redis", namespace)
