"""`helm test` on the stack `make up` brought up: it passes, and fails clearly without a gateway.

The release is `make up`'s (ferry_devcluster.stack: release `ferry` in namespace `ferry`, dev
values): its test hook (charts/ferry/templates/tests/test-prediction.yaml) sends one prediction
of the sample ModelDeployment `titanic` through the gateway's Service with the dev-pro key.
"""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest
from ferry_devcluster import tools
from ferry_devcluster.procs import wait_for
from ferry_devcluster.stack import DEPLOYMENT, RELEASE, Stack
from kubernetes import client, config

pytestmark = pytest.mark.timeout(900)

GATEWAY = f"{RELEASE}-gateway"  # the release name contains the chart's: no "-ferry" in between
HOOK_POD = f"{RELEASE}-test-prediction"


def helm_test(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(tools.bin_path("helm")), f"--kubeconfig={stack.kubeconfig}", "--namespace", stack.namespace,
        "test", RELEASE, "--timeout", "3m", *args,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def why(stack: Stack, run: subprocess.CompletedProcess[str]) -> str:
    """helm's output and, when the hook pod failed (it is kept then), the pod's own line."""
    out = run.stdout + run.stderr
    if run.returncode != 0:
        core = client.CoreV1Api(config.new_client_from_config(stack.kubeconfig))
        try:
            out += "\nPOD LOG: " + core.read_namespaced_pod_log(HOOK_POD, stack.namespace)
        except client.ApiException as e:
            out += f"\n(no pod log: {e.status} {e.reason})"
    return out


def test_helm_test_passes_then_fails_clearly_when_the_gateway_cannot_answer(stack: Stack) -> None:
    api = config.new_client_from_config(stack.kubeconfig)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    passed = helm_test(stack)
    assert passed.returncode == 0, why(stack, passed)
    assert f"TEST SUITE:     {HOOK_POD}" in passed.stdout
    assert "Phase:          Succeeded" in passed.stdout

    replicas = apps.read_namespaced_deployment_scale(GATEWAY, stack.namespace).spec.replicas
    assert replicas >= 1

    def gateway_pods() -> int:
        pods = core.list_namespaced_pod(
            stack.namespace, label_selector="app.kubernetes.io/component=gateway"
        ).items
        return len(pods)

    apps.patch_namespaced_deployment_scale(GATEWAY, stack.namespace, {"spec": {"replicas": 0}})
    try:
        wait_for("the gateway pods gone", lambda: gateway_pods() == 0, 180, interval=1)
        failed = helm_test(stack, "--logs")
        out = failed.stdout + failed.stderr
        assert failed.returncode != 0, out
        assert "Phase:          Failed" in out, out
        # The hook pod's own line (kept on failure; --logs prints it): what it called and why it failed.
        port = urlsplit(stack.gateway_url).port  # the Service's port (make up reads it from the Service)
        url = f"http://{GATEWAY}.{stack.namespace}.svc.cluster.local:{port}/v1/models/{DEPLOYMENT}:predict"
        assert f"POD LOGS: {HOOK_POD}" in out, out
        assert f"FAIL: POST {url}: the gateway did not answer" in out, out
    finally:
        apps.patch_namespaced_deployment_scale(GATEWAY, stack.namespace, {"spec": {"replicas": replicas}})
        wait_for(
            "the gateway Deployment Ready again",
            lambda: (
                (apps.read_namespaced_deployment(GATEWAY, stack.namespace).status.ready_replicas or 0)
                >= replicas
            ),
            300,
            interval=2,
        )
    # Back as it was: the test passes again.
    again = helm_test(stack)
    assert again.returncode == 0, why(stack, again)
