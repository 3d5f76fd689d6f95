"""Who the chart lets reach predictors and MLflow (issue 13, findings 1 and 12): the peers it hands
the operator for the predictor network policy, and the MLflow policy's models namespaces."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from ferry_operator.builders import Owner, PredictorSettings, inference_service
from ferry_operator.config import load as load_operator_config
from ferry_operator.netpolicy import PredictorIngress, predictor_network_policy
from ferry_operator.resource import Color, ModelDeploymentSpec
from ferry_testing.chart import ENVIRONMENTS, JSON, kube_version, template

ALL_ENVS = (None, *ENVIRONMENTS)
RELEASE_NS = "ferry"


def _env(docs: list[JSON], component: str) -> dict[str, str]:
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(component)]
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def _operator_env(docs: list[JSON]) -> dict[str, str]:
    return _env(docs, "-operator")


def _ingress(docs: list[JSON]) -> PredictorIngress | None:
    env = _operator_env(docs)
    assert "FERRY_PREDICTOR_NETWORK_POLICY" in env, "the chart must always say, on or off"
    return load_operator_config(env).predictor_ingress


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's verdict on ``labels`` (matchLabels and matchExpressions, as Kubernetes)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value, values = e["key"] in labels, labels.get(e["key"]), e.get("values", [])
        ok = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


def _admits(peer: JSON, pod_labels: dict[str, str], pod_ns: str, policy_ns: str) -> bool:
    """Whether a NetworkPolicyPeer of a policy in ``policy_ns`` admits a pod (selectors only)."""
    ns_labels = {"kubernetes.io/metadata.name": pod_ns}
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif pod_ns != policy_ns:
        return False
    return _selects(peer.get("podSelector", {}), pod_labels)


def _pods(docs: list[JSON]) -> dict[str, dict[str, str]]:
    """Each rendered workload's pod labels, by component."""
    pods = {}
    for d in docs:
        if d["kind"] == "Deployment":
            labels = d["spec"]["template"]["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = labels
        elif d["kind"] == "Pod":
            pods[d["metadata"]["labels"]["app.kubernetes.io/component"]] = d["metadata"]["labels"]
    return pods


def _predictor_labels(md: str = "titanic", namespace: str = "ml") -> dict[str, str]:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "titanic-survival", "version": "1"}})
    isvc = inference_service(
        Owner(md, namespace, "u"), spec, Color.blue, "titanic-survival", "1", 1, PredictorSettings("http://m")
    )
    labels: dict[str, str] = isvc["spec"]["predictor"]["labels"]
    return labels


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_only_this_releases_gateway_and_operator_reach_the_predictors_traffic_port(env: str | None) -> None:
    docs = template(env, namespace=RELEASE_NS)
    ingress = _ingress(docs)
    assert ingress is not None, "network policies are on by default in every environment"
    models_ns = _env(docs, "-gateway")["FERRY_MODEL_NAMESPACE"]  # where the policy is written
    pods = _pods(docs)
    for component, labels in pods.items():
        admitted = any(_admits(p, labels, RELEASE_NS, models_ns) for p in ingress.traffic_from)
        assert admitted is (component in ("gateway", "operator")), component
    # Same labels in another namespace (another release, or anyone's pod copying them): refused.
    for labels in (pods["gateway"], pods["operator"]):
        assert not any(_admits(p, labels, "intruder", "ml") for p in ingress.traffic_from)
    # Nothing but Prometheus' peers on the metrics port; none given: every source (the chart's meaning).
    assert ingress.metrics_from == ()
    policy = predictor_network_policy(Owner("titanic", "ml", "u"), ingress)
    kubernetes_validate.validate(policy, kube_version(), strict=True)


def test_metrics_peers_reach_the_operator_with_their_namespace_made_explicit() -> None:
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    local = {"podSelector": {"matchLabels": {"app": "prometheus"}}}
    block = {"ipBlock": {"cidr": "10.10.0.0/16"}}
    docs = template(
        "prod", "--set-json", f"networkPolicy.metricsFrom={json.dumps([monitoring, local, block])}"
    )
    ingress = _ingress(docs)
    assert ingress is not None
    # In the chart's own policies a bare podSelector means the release namespace; the predictor
    # network policy lives in the models namespace, so the chart says which namespace it meant.
    release = {"matchLabels": {"kubernetes.io/metadata.name": RELEASE_NS}}
    assert ingress.metrics_from == (monitoring, {"namespaceSelector": release, **local}, block)
    assert not _admits(ingress.metrics_from[1], {"app": "prometheus"}, "ml", "ml")


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_network_policy_off_means_the_operator_writes_none(env: str | None) -> None:
    docs = template(env, "--set", "networkPolicy.enabled=false")
    assert _operator_env(docs)["FERRY_PREDICTOR_NETWORK_POLICY"] == "off"
    assert _ingress(docs) is None
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]


def test_the_operator_may_manage_network_policies_and_nothing_more_on_them() -> None:
    [role] = [
        d
        for d in template("prod")
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-operator")
    ]
    rules = [r for r in role["rules"] if "networkpolicies" in r["resources"]]
    assert rules == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "create", "patch", "delete"],
        }
    ]


def _mlflow_predictor_peer(docs: list[JSON]) -> JSON:
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-mlflow")]
    [rule] = policy["spec"]["ingress"]
    [peer] = [p for p in rule["from"] if "namespaceSelector" in p]
    found: JSON = peer
    return found


def test_mlflow_admits_predictors_of_the_models_namespaces_only() -> None:
    docs = template("dev", "--set", "gateway.modelNamespace=ml")
    peer = _mlflow_predictor_peer(docs)
    assert _admits(peer, _predictor_labels(namespace="ml"), "ml", RELEASE_NS)
    # Finding 12: before, any pod in any namespace labelled managed-by=ferry was admitted.
    assert not _admits(peer, _predictor_labels(namespace="other"), "other", RELEASE_NS)
    assert not _admits(peer, {"app.kubernetes.io/managed-by": "ferry"}, "ml", RELEASE_NS)
    for component, labels in _pods(docs).items():  # the chart's own pods are not predictors
        assert not _admits(peer, labels, "ml", RELEASE_NS), component


def test_mlflow_follows_the_model_access_namespaces() -> None:
    access = {"ml": ["*"], "team-a": ["team-a-*"]}
    peer = _mlflow_predictor_peer(template("dev", "--set-json", f"operator.modelAccess={json.dumps(access)}"))
    assert [
        ns for ns in ("ml", "team-a", "ferry", "team-b") if _admits(peer, _predictor_labels(), ns, "x")
    ] == [
        "ml",
        "team-a",
    ]
    # Any namespace may deploy: any namespace's predictors download (the residual risk, README).
    anywhere = {"ml": ["*"], "*": ["{namespace}-*"]}
    peer = _mlflow_predictor_peer(
        template("dev", "--set-json", f"operator.modelAccess={json.dumps(anywhere)}")
    )
    assert peer["namespaceSelector"] == {} and _admits(peer, _predictor_labels(), "team-b", "x")
