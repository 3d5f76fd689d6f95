"""The `helm test` hook, the models namespace opt-in and the prerequisite checks, rendered offline.

The hook's script (charts/ferry/files/test-prediction.py) also runs here as the pod would run it,
against a local HTTP server standing in for the gateway: what it accepts and how it fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kubernetes_validate
import pytest
from ferry_devcluster.procs import free_port
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_generate.install import OUTPUT_DIR
from ferry_testing.chart import CHART, ENVIRONMENTS, JSON, ROOT, kube_version, template

HOOK = "t-ferry-test-prediction"
SCRIPT = CHART / "files" / "test-prediction.py"


def hook(docs: list[JSON]) -> JSON | None:
    pods = [d for d in docs if d["kind"] == "Pod" and d["metadata"]["name"] == HOOK]
    assert len(pods) <= 1
    return pods[0] if pods else None


def only(docs: list[JSON], kind: str, suffix: str = "") -> JSON:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {len(found)}"
    return found[0]


def env_of(container: JSON) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_dev_hook_predicts_through_the_gateway_service_with_the_dev_key() -> None:
    docs = template("dev")
    pod = hook(docs)
    assert pod is not None
    assert pod["metadata"]["annotations"] == {
        "helm.sh/hook": "test",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    gateway = only(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    gw = gateway["containers"][0]
    # Ferry's own image and pull policy, the same security settings as every Ferry pod.
    assert (c["image"], c["imagePullPolicy"]) == (gw["image"], gw["imagePullPolicy"])
    assert spec["securityContext"] == gateway["securityContext"]
    assert c["securityContext"] == gw["securityContext"]
    assert c["command"] == ["python", "-c"] and c["args"] == [SCRIPT.read_text()]
    env = env_of(c)
    service = only(docs, "Service", "-gateway")
    port = service["spec"]["ports"][0]["port"]
    assert (
        env["FERRY_TEST_URL"]
        == f"http://t-ferry-gateway.ferry.svc.cluster.local:{port}/v1/models/titanic:predict"
    )
    assert env["FERRY_TEST_API_KEY"] == DEV_KEYS["dev-pro"]
    body = json.loads(env["FERRY_TEST_BODY"])
    assert body["instances"][0]["sex"] == "male" and len(body["instances"]) == 1
    kubernetes_validate.validate(pod, kube_version(), strict=True)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_no_hook_outside_dev_mode_without_a_key_secret(env: str) -> None:
    assert hook(template(env)) is None


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_hook_reads_the_named_secret_outside_dev_mode(env: str) -> None:
    docs = template(env, "--set", "tests.apiKeySecret=ferry-test-key", "--set", "tests.model=iris")
    pod = hook(docs)
    assert pod is not None
    env_vars = env_of(pod["spec"]["containers"][0])
    assert env_vars["FERRY_TEST_API_KEY"] == {"secretKeyRef": {"name": "ferry-test-key", "key": "apiKey"}}
    assert env_vars["FERRY_TEST_URL"].endswith("/v1/models/iris:predict")
    kubernetes_validate.validate(pod, kube_version(), strict=True)


def test_tests_enabled_false_renders_no_hook() -> None:
    assert hook(template("dev", "--set", "tests.enabled=false")) is None


def test_hook_is_left_out_of_the_plain_manifests() -> None:
    for path in sorted((ROOT / OUTPUT_DIR).glob("*.yaml")):
        assert "helm.sh/hook" not in path.read_text(), path


def _admits(policy: JSON, labels: dict[str, str], port: str = "http") -> bool:
    """Whether a pod with these labels may reach ``port`` (the gateway's traffic port)."""
    for rule in policy["spec"]["ingress"]:
        if "ports" in rule and port not in [p["port"] for p in rule["ports"]]:
            continue  # a rule for another port (metrics) admits nobody to this one
        peers = rule.get("from")
        if peers is None:
            return True  # no `from`: everyone
        for peer in peers:
            selector = peer.get("podSelector")
            if (
                selector is not None
                and "namespaceSelector" not in peer
                and selector.get("matchLabels", {}).items() <= labels.items()
            ):
                return True
    return False


@pytest.mark.parametrize("restricted", [False, True], ids=["open", "gatewayFrom-set"])
def test_network_policy_admits_the_hook_to_the_gateway(restricted: bool) -> None:
    ingress_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    extra = ["--set-json", f"networkPolicy.gatewayFrom=[{json.dumps(ingress_ns)}]"] if restricted else []
    docs = template("dev", *extra)
    pod = hook(docs)
    assert pod is not None
    policy = only(docs, "NetworkPolicy", "-gateway")
    assert _admits(policy, pod["metadata"]["labels"])
    if restricted:
        # Only the hook's pod is added, not everyone in the namespace.
        assert not _admits(policy, {"app.kubernetes.io/name": "ferry"})
        kubernetes_validate.validate(policy, kube_version(), strict=True)


def namespaces(docs: list[JSON]) -> list[str]:
    return [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]


@pytest.mark.parametrize("env", [None, *ENVIRONMENTS], ids=lambda e: e or "default")
def test_models_namespace_is_not_created_by_default(env: str | None) -> None:
    assert namespaces(template(env)) == []


def test_models_namespace_created_when_opted_in_and_kept_on_uninstall() -> None:
    docs = template("staging", "--set", "gateway.createModelNamespace=true")
    assert namespaces(docs) == ["ml-staging"]
    ns = only(docs, "Namespace")
    assert ns["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    kubernetes_validate.validate(ns, kube_version(), strict=True)
    # The gateway's Role lands in it.
    assert only(docs, "Role", "-gateway")["metadata"]["namespace"] == "ml-staging"


def test_dev_creates_a_models_namespace_only_when_one_is_named() -> None:
    assert namespaces(template("dev")) == []  # the release namespace: helm's --create-namespace
    assert namespaces(template("dev", "--set", "gateway.modelNamespace=ml")) == ["ml"]
    assert namespaces(template("dev", "--set", "gateway.modelNamespace=ferry")) == []


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_offline_render_skips_the_prerequisite_checks(env: str) -> None:
    """No cluster: nothing can be looked up, so nothing fails (make generate, helm template)."""
    docs = template(env, "--namespace", "nowhere", "--set", "tests.apiKeySecret=absent")
    assert hook(docs) is not None


# --- the script the hook runs ---------------------------------------------------------------


@contextmanager
def fake_gateway(
    status: int, answer: bytes, first: list[int] | None = None
) -> Iterator[tuple[str, list[JSON]]]:
    """Answers ``status``/``answer``, after answering the statuses in ``first`` (bodyless) in turn."""
    seen: list[JSON] = []
    before = list(first or [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            seen.append(
                {
                    "path": self.path,
                    "key": self.headers["X-API-Key"],
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            if before:
                self.send_response(before.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/titanic:predict", seen
    finally:
        server.shutdown()
        server.server_close()


def run_script(url: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    env = {
        "FERRY_TEST_URL": url,
        "FERRY_TEST_BODY": json.dumps({"instances": [{"pclass": 3}]}),
        "FERRY_TEST_API_KEY": "fry_test",
        "FERRY_TEST_TIMEOUT": str(timeout),
    }
    # As the pod runs it: `python -c SCRIPT`, the standard library only.
    return subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT.read_text()], env=env, capture_output=True, text=True, timeout=30
    )


def test_script_passes_on_200_with_predictions() -> None:
    with fake_gateway(200, b'{"predictions": [0], "model_version": "3"}') as (url, seen):
        result = run_script(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: POST {url}: HTTP 200, predictions [0]")
    assert seen == [
        {"path": "/v1/models/titanic:predict", "key": "fry_test", "body": {"instances": [{"pclass": 3}]}}
    ]


@pytest.mark.parametrize(
    ("status", "answer", "reason"),
    [
        (503, b'{"error": "no ready predictor"}', 'HTTP 503 (want 200): {"error": "no ready predictor"}'),
        (401, b'{"error": "unknown API key"}', "HTTP 401 (want 200)"),
        (
            200,
            b'{"outputs": []}',
            'HTTP 200 but no non-empty `predictions` array in the answer: {"outputs": []}',
        ),
        (200, b'{"predictions": []}', "HTTP 200 but no non-empty `predictions` array"),
        (200, b"not json", "HTTP 200 but no non-empty `predictions` array in the answer: not json"),
    ],
)
def test_script_fails_naming_what_was_wrong(status: int, answer: bytes, reason: str) -> None:
    with fake_gateway(status, answer) as (url, _):
        result = run_script(url)
    assert result.returncode == 1
    assert f"FAIL: POST {url}: {reason}" in result.stderr, result.stderr


def test_script_fails_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/models/titanic:predict"
    result = run_script(url, timeout=3)
    assert result.returncode == 1
    assert f"FAIL: POST {url}: the gateway did not answer: [Errno 111] Connection refused" in result.stderr
    assert "attempts in 3 s)" in result.stderr, result.stderr


def test_script_asks_again_while_the_gateway_is_not_ready_yet() -> None:
    """A gateway pod just turned Ready (its endpoint or the policy agent's rules still lagging)
    answers 503/502 for a moment: `helm test` run then passes once it answers (CI saw it fail)."""
    with fake_gateway(200, b'{"predictions": [1]}', first=[503, 502]) as (url, seen):
        result = run_script(url, timeout=20)
    assert result.returncode == 0, result.stderr
    assert len(seen) == 3


def test_script_does_not_ask_again_on_a_client_error() -> None:
    with fake_gateway(401, b'{"error": "unknown API key"}') as (url, seen):
        result = run_script(url, timeout=20)
    assert result.returncode == 1
    assert len(seen) == 1


def test_nothing_may_call_the_hook_pod() -> None:
    """Its own deny-all-ingress NetworkPolicy, a test hook created before the pod (issue 13)."""
    docs = template("dev")
    pod = hook(docs)
    assert pod is not None
    (policy,) = (d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == HOOK)
    ann = policy["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "test" and int(ann["helm.sh/hook-weight"]) < 0
    assert ann["helm.sh/hook-delete-policy"] == pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["policyTypes"] == ["Ingress"] and not spec.get("ingress")  # egress to the gateway stays open
