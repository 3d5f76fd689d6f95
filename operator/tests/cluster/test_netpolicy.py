"""The predictor network policy on the local cluster (issue 13, finding 1): the operator, configured
as the chart configures it, writes ``<md>-predictors`` through the real API server, the real KServe
controller's predictor pods are the ones it selects, the garbage collector takes it with the
ModelDeployment, and one under that name the operator does not own is never taken over. (That the
policy is enforced on real pods is the node tier's.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ferry_common.contract import GROUP, VERSION
from ferry_devcluster.procs import wait_for
from ferry_testing.operator import (
    PLURAL,
    WAIT,
    OperatorProcess,
    RegisteredModel,
    condition,
    custom,
    get_or_none,
    md_body,
    wait_phase,
    wait_status,
)
from kubernetes import client

RELEASE = {"matchLabels": {"kubernetes.io/metadata.name": "ferry"}}
GATEWAY = {
    "namespaceSelector": RELEASE,
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
}
OPERATOR = {
    "namespaceSelector": RELEASE,
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


@pytest.fixture(scope="module")
def guarding_operator(
    kubeconfig: str,
    installed: None,
    registered_model: RegisteredModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator with the peers the chart would give it (FERRY_PREDICTOR_NETWORK_POLICY)."""
    proc = OperatorProcess(
        kubeconfig, registered_model.tracking_uri, tmp_path_factory.mktemp("op") / "op.log"
    )
    proc.env["FERRY_PREDICTOR_NETWORK_POLICY"] = json.dumps(
        {"trafficFrom": [GATEWAY, OPERATOR], "metricsFrom": [PROMETHEUS]}
    )
    proc.start()
    yield proc
    proc.stop()


def networking(api: client.ApiClient) -> Any:
    return client.NetworkingV1Api(api)


def policy(api: client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    found = get_or_none(networking(api).read_namespaced_network_policy, name, ns)
    if found is None:
        return None
    result: dict[str, Any] = api.sanitize_for_serialization(found)
    return result


def _create(api: client.ApiClient, ns: str, name: str, model: RegisteredModel) -> None:
    body = md_body(
        name, {"name": model.name, "version": model.versions[0]}, rollout={"scaleDownDelaySeconds": 0}
    )
    custom(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def test_a_deployment_owns_the_policy_guarding_its_predictor_pods(
    api: client.ApiClient,
    namespace: str,
    guarding_operator: OperatorProcess,
    registered_model: RegisteredModel,
) -> None:
    name = "guarded"
    _create(api, namespace, name, registered_model)
    md = wait_phase(api, namespace, name, "Stable")
    found = policy(api, namespace, f"{name}-predictors")
    assert found is not None, "no predictor network policy"
    [ref] = found["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("ModelDeployment", name, md["metadata"]["uid"])
    spec = found["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    traffic, metrics = spec["ingress"]
    assert traffic == {"from": [GATEWAY, OPERATOR], "ports": [{"port": 8080, "protocol": "TCP"}]}
    assert metrics == {"from": [PROMETHEUS], "ports": [{"port": 8082, "protocol": "TCP"}]}

    # The pods KServe's controller makes for the colour carry the labels the policy selects.
    deployment = client.AppsV1Api(api).read_namespaced_deployment(f"{name}-blue-predictor", namespace)
    pod_labels = deployment.spec.template.metadata.labels
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=",".join(f"{k}={v}" for k, v in spec["podSelector"]["matchLabels"].items())
    )
    assert pods.items, "the policy selects no predictor pod"

    # Edited by hand (opened to everyone): the next pass puts it back.
    networking(api).patch_namespaced_network_policy(
        f"{name}-predictors", namespace, {"spec": {"ingress": [{}]}}
    )
    wait_for(
        "the predictor network policy restored",
        lambda: (
            ((policy(api, namespace, f"{name}-predictors") or {}).get("spec") or {}).get("ingress")
            == [traffic, metrics]
        ),
        WAIT,
    )

    # Deleted with its ModelDeployment (garbage collection: no finalizer involved).
    custom(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for(
        "the predictor network policy gone",
        lambda: policy(api, namespace, f"{name}-predictors") is None,
        WAIT,
    )


def test_a_policy_under_its_name_that_it_does_not_own_is_never_taken_over(
    api: client.ApiClient,
    namespace: str,
    guarding_operator: OperatorProcess,
    registered_model: RegisteredModel,
) -> None:
    name = "claimed"
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-predictors", "labels": {"owner": "someone-else"}},
        "spec": {"podSelector": {"matchLabels": {"app": "theirs"}}, "policyTypes": ["Ingress"]},
    }
    networking(api).create_namespaced_network_policy(namespace, theirs)
    before = policy(api, namespace, f"{name}-predictors")
    assert before is not None
    _create(api, namespace, name, registered_model)
    md = wait_status(
        api,
        namespace,
        name,
        "Ready False with NameConflict",
        lambda st: any(
            c["type"] == "Ready" and c.get("reason") == "NameConflict" for c in st.get("conditions", [])
        ),
    )
    assert (
        f"NetworkPolicy {namespace}/{name}-predictors exists and is not controlled"
        in condition(md, "Ready")["message"]
    )
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},reason=NameConflict"
    )
    assert [e.type for e in events.items] == ["Warning"]
    after = policy(api, namespace, f"{name}-predictors")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # never written
    assert "ownerReferences" not in after["metadata"]

    # The user deletes theirs: the operator writes its own and the conflict clears.
    networking(api).delete_namespaced_network_policy(f"{name}-predictors", namespace)
    wait_status(
        api,
        namespace,
        name,
        "Ready once the name is free",
        lambda st: any(
            c["type"] == "Ready" and c.get("reason") != "NameConflict" for c in st.get("conditions", [])
        ),
    )
    wait_for(
        "the operator's own policy",
        lambda: bool(
            (policy(api, namespace, f"{name}-predictors") or {}).get("metadata", {}).get("ownerReferences")
        ),
        WAIT,
    )
