"""NetworkPolicies are enforced on the real node (kube-router's policy controller, node.py).

Clients are real pods on the node's bridge; each probe runs inside a client pod and reports
whether a TCP connection got through. A probe that cannot run, or a name that does not resolve,
is an error, never "blocked": only a refused or timed-out connection counts as blocked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ferry_common.contract import GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster import cluster, images
from ferry_devcluster.procs import wait_for
from ferry_devcluster.stack import PREDICT_BODY, RELEASE, Stack
from kubernetes import client, config

pytestmark = pytest.mark.timeout(600)

# Runs inside a pod. The verdict is the TCP connection's, which is what a policy decides: BLOCKED
# when it is refused or times out, REACHED when it opens (then, for http://, the answer's status
# and body). A name that does not resolve, or anything else, exits non-zero: an error, never
# "blocked". tcp://HOST:PORT only connects.
PROBE = """
import socket, sys, urllib.error, urllib.parse, urllib.request
url, body, headers = sys.argv[1], sys.argv[2], dict(h.split(": ", 1) for h in sys.argv[3:])
u = urllib.parse.urlsplit(url)
try:
    addr = socket.getaddrinfo(u.hostname, u.port or 80, type=socket.SOCK_STREAM)[0][4]
except socket.gaierror as e:
    sys.exit(f"{u.hostname} did not resolve: {e}")
try:
    socket.create_connection(addr, timeout=3).close()
except OSError as e:
    print("BLOCKED", repr(e))
    sys.exit()
if u.scheme != "http":
    print("REACHED")
    sys.exit()
req = urllib.request.Request(url, data=body.encode() or None, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print("REACHED", r.status, r.read().decode()[:300])
except urllib.error.HTTPError as e:
    print("REACHED", e.code)
"""


def probe(namespace: str, pod: str, url: str, body: str = "", headers: dict[str, str] | None = None) -> str:
    """What ``pod`` (or ``deploy/NAME``) gets from ``url``: REACHED... or BLOCKED... (else it raises)."""
    hdrs = [f"{k}: {v}" for k, v in (headers or {}).items()]
    out = cluster.REAL.kubectl(
        "exec", "-n", namespace, pod, "--", "python3", "-c", PROBE, url, body, *hdrs
    ).stdout.strip()
    if not out.startswith(("REACHED", "BLOCKED")):
        raise RuntimeError(f"probe from {namespace}/{pod} to {url} printed {out!r}")
    return out


def reaches(namespace: str, pod: str, url: str, **kw: Any) -> bool:
    return probe(namespace, pod, url, **kw).startswith("REACHED")


def ready(core: client.CoreV1Api, namespace: str, pod: str) -> bool:
    st = core.read_namespaced_pod(pod, namespace).status
    return any(c.type == "Ready" and c.status == "True" for c in st.conditions or [])


def run_pod(core: client.CoreV1Api, namespace: str, name: str, labels: dict[str, str], **spec: Any) -> None:
    container = {"name": "main", "image": images.BASE, "imagePullPolicy": "Never", **spec}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
        },
    )


def sleeper(core: client.CoreV1Api, namespace: str, name: str, labels: dict[str, str]) -> None:
    run_pod(core, namespace, name, labels, command=["sleep", "infinity"])


@pytest.fixture(scope="module")
def core(real_kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=real_kubeconfig))


@pytest.fixture(scope="module")
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"netpol-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        "default ServiceAccount", lambda: bool(core.read_namespaced_service_account("default", name)), 30
    )
    yield name
    core.delete_namespace(name)


def policy(name: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def test_deny_all_ingress_blocks_a_pod_and_a_policy_for_the_clients_label_readmits_only_it(
    core: client.CoreV1Api, namespace: str
) -> None:
    run_pod(
        core,
        namespace,
        "server",
        {"app": "server"},
        command=["python3", "-m", "http.server", "8080"],
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )
    sleeper(core, namespace, "client", {"role": "client"})
    sleeper(core, namespace, "other", {"role": "other"})
    for pod in ("server", "client", "other"):
        wait_for(f"pod {pod} Ready", lambda pod=pod: ready(core, namespace, pod), 120, 0.5)
    # Pod to pod across the bridge, by address: the path that skips iptables unless the bridge
    # hands its packets to netfilter.
    url = f"http://{core.read_namespaced_pod('server', namespace).status.pod_ip}:8080/"
    assert reaches(namespace, "client", url) and reaches(namespace, "other", url)

    net = client.NetworkingV1Api(core.api_client)
    net.create_namespaced_network_policy(namespace, policy("deny-all-ingress", []))
    for pod in ("client", "other"):
        wait_for(
            f"{pod} refused by deny-all-ingress",
            lambda pod=pod: not reaches(namespace, pod, url),
            60,
            0.5,
        )

    admit = [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]
    net.create_namespaced_network_policy(namespace, policy("admit-clients", admit))
    wait_for("client admitted by its label", lambda: reaches(namespace, "client", url), 60, 0.5)
    assert probe(namespace, "other", url).startswith("BLOCKED")


def test_a_pod_in_another_namespace_reaches_a_predictor_only_through_the_gateway(
    stack: Stack, core: client.CoreV1Api, namespace: str
) -> None:
    md = client.CustomObjectsApi(core.api_client).get_namespaced_custom_object(
        GROUP, VERSION, stack.models_namespace, MODEL_DEPLOYMENT.plural, stack.deployment
    )
    color = md["status"]["active"]["color"]
    predictor = f"{stack.deployment}-{color}-predictor"
    core.read_namespaced_service(predictor, stack.models_namespace)  # the name the bypass would use
    sleeper(core, namespace, "outsider", {"role": "outsider"})
    wait_for("pod outsider Ready", lambda: ready(core, namespace, "outsider"), 120, 0.5)
    body = json.dumps(PREDICT_BODY)
    json_type = {"Content-Type": "application/json"}

    through_gateway = probe(
        namespace,
        "outsider",
        f"{stack.gateway_url}/v1/models/{stack.deployment}:predict",
        body,
        {**json_type, "X-API-Key": stack.api_keys["dev-pro"]},
    )
    assert through_gateway.startswith("REACHED 200") and "predictions" in through_gateway, through_gateway
    # /metrics (consumer names, predictor URLs) is on the metrics port only, not the traffic Service
    scraped = probe(namespace, "outsider", f"{stack.gateway_url}/metrics")
    assert scraped.startswith("REACHED 404"), scraped

    direct = f"http://{predictor}.{stack.models_namespace}/v1/models/{stack.deployment}:predict"
    # The request through the gateway above reached this predictor; straight at it, it must not.
    assert probe(namespace, "outsider", direct, body, json_type).startswith("BLOCKED"), (
        f"{direct} answered a pod in namespace {namespace} without the gateway"
    )


def test_the_charts_policies_keep_a_pod_of_another_namespace_from_redis_and_mlflow(
    stack: Stack, core: client.CoreV1Api, namespace: str
) -> None:
    """Redis admits only the gateway, MLflow the operator and Ferry's predictors (the chart)."""
    ns = stack.namespace

    def address(component: str) -> str:
        svc = core.read_namespaced_service(f"{RELEASE}-{component}", ns)
        return f"tcp://{svc.metadata.name}.{ns}:{svc.spec.ports[0].port}"

    redis, mlflow = address("redis"), address("mlflow")
    sleeper(core, namespace, "visitor", {"role": "visitor"})
    wait_for("pod visitor Ready", lambda: ready(core, namespace, "visitor"), 120, 0.5)
    # The same addresses from the pods the policies admit: what is refused below is the policy.
    assert reaches(ns, f"deploy/{RELEASE}-gateway", redis)
    assert reaches(ns, f"deploy/{RELEASE}-operator", mlflow)
    for target in (redis, mlflow):
        assert probe(namespace, "visitor", target).startswith("BLOCKED"), (
            f"{target} let in a pod of {namespace}"
        )
