"""checkov (PyPI) over the predictor Deployment KServe makes for a ModelDeployment, on the live
cluster, with the objects around it the operator writes (its PodDisruptionBudget, any
NetworkPolicy): nothing fails but the allow-list's `predictor` entries, and each is still needed
(issue 13, finding 11). The Deployment is read back from the API server, so what is scanned is
what KServe made of the operator's InferenceService, with the server's defaults in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ferry_common.contract import GROUP, VERSION
from ferry_devcluster.procs import wait_for
from ferry_testing import checkov
from ferry_testing.operator import WAIT, OperatorProcess, RegisteredModel, custom, md_body
from kubernetes import client

PLURAL = "modeldeployments"
# The one predictor NetworkPolicy check the operator can pass only once it writes
# `<md>-predictors` (issue 13, finding 1).
NETWORK_POLICY_CHECK = "CKV2_K8S_6"


@pytest.fixture(scope="module")
def operator_with_registry_secret(
    kubeconfig: str,
    installed: None,
    registered_model: RegisteredModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator as the chart configures it: predictors get the registry Secret as env."""
    proc = OperatorProcess(
        kubeconfig, registered_model.tracking_uri, tmp_path_factory.mktemp("op") / "op.log"
    )
    proc.env["FERRY_REGISTRY_SECRET"] = "ferry-registry"
    proc.start()
    yield proc
    proc.stop()


def _plain(api: client.ApiClient, obj: Any, api_version: str, kind: str) -> dict[str, Any]:
    """An object as a manifest: what checkov reads, without status and server bookkeeping."""
    doc: dict[str, Any] = api.sanitize_for_serialization(obj)
    meta = doc["metadata"]
    keep = ("name", "namespace", "labels", "annotations")
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {k: meta[k] for k in keep if k in meta},
        "spec": doc["spec"],
    }


def test_live_predictor_deployment_passes_checkov(
    api: client.ApiClient,
    namespace: str,
    operator_with_registry_secret: OperatorProcess,
    registered_model: RegisteredModel,
) -> None:
    name = "scanned"
    body = md_body(
        name,
        {"name": registered_model.name, "version": "1"},
        predictor={"resources": {"requests": {"cpu": "200m"}}},
    )
    custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    apps, policy, net = client.AppsV1Api(api), client.PolicyV1Api(api), client.NetworkingV1Api(api)

    def made() -> bool:
        return bool(apps.list_namespaced_deployment(namespace).items) and bool(
            policy.list_namespaced_pod_disruption_budget(namespace).items
        )

    wait_for("KServe's predictor Deployment and the operator's PodDisruptionBudget", made, WAIT)
    deployments = apps.list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == [f"{name}-blue-predictor"]
    docs = [_plain(api, d, "apps/v1", "Deployment") for d in deployments]
    docs += [
        _plain(api, p, "policy/v1", "PodDisruptionBudget")
        for p in policy.list_namespaced_pod_disruption_budget(namespace).items
    ]
    policies = net.list_namespaced_network_policy(namespace).items
    docs += [_plain(api, p, "networking.k8s.io/v1", "NetworkPolicy") for p in policies]

    failures = checkov.scan(docs)
    allowed = checkov.load_allowlist("predictor")
    stale = checkov.unused(failures, allowed)
    assert not stale, "no longer failed, remove from the allow-list: " + ", ".join(
        f"{a.check} {a.names}" for a in stale
    )
    found = checkov.unexpected(failures, allowed)
    if not policies:
        # No exemption: once the operator writes the predictor NetworkPolicy this branch is
        # never taken, and the check must pass like every other.
        assert {f.check for f in found} <= {NETWORK_POLICY_CHECK}, "\n".join(map(str, found))
        pytest.xfail(f"the operator writes no predictor NetworkPolicy yet ({NETWORK_POLICY_CHECK})")
    assert not found, "\n".join(map(str, found))
