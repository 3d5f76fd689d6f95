"""The predictor network policy (issue 13, finding 1): its builder and its setting. Who may reach a
ModelDeployment's predictor pods is decided here; the reconcile writing it is in
test_reconcile_shell.py, the API server and garbage collector in cluster/test_netpolicy.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ferry_common import runtime
from ferry_common.contract import LABEL_DEPLOYMENT
from ferry_common.envconfig import ConfigError
from ferry_operator import config
from ferry_operator.builders import Owner, PredictorSettings, inference_service
from ferry_operator.netpolicy import PredictorIngress, parse, policy_name, predictor_network_policy
from ferry_operator.resource import Color, ModelDeploymentSpec
from hypothesis import given
from hypothesis import strategies as st

NS, NAME = "ml", "titanic"

GATEWAY = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ferry"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
}
OPERATOR = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ferry"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS = PredictorIngress((GATEWAY, OPERATOR), (PROMETHEUS,))

names = st.from_regex(r"\A[a-z]([-a-z0-9]{0,20}[a-z0-9])?\Z")
label_values = st.from_regex(r"\A[a-z0-9]{0,10}\Z")
match_labels = st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9./-]{0,15}\Z"), label_values, max_size=3)
expressions = st.one_of(
    st.fixed_dictionaries(
        {"key": names, "operator": st.sampled_from(["In", "NotIn"]), "values": st.lists(names, min_size=1)}
    ),
    st.fixed_dictionaries({"key": names, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
selectors = st.fixed_dictionaries(
    {}, optional={"matchLabels": match_labels, "matchExpressions": st.lists(expressions, max_size=2)}
)
cidrs = st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "0.0.0.0/0"])
peers = st.one_of(
    st.fixed_dictionaries({"ipBlock": st.fixed_dictionaries({"cidr": cidrs})}),
    st.fixed_dictionaries({"podSelector": selectors}, optional={"namespaceSelector": selectors}),
    st.fixed_dictionaries({"namespaceSelector": selectors}),
)
ingresses = st.builds(
    PredictorIngress,
    st.lists(peers, min_size=1, max_size=3).map(tuple),
    st.lists(peers, max_size=3).map(tuple),
)


def _owner(name: str = NAME, namespace: str = NS) -> Owner:
    return Owner(name, namespace, "u1")


def _port(rule: dict[str, Any]) -> int:
    [port] = rule["ports"]
    assert port["protocol"] == "TCP"
    return int(port["port"])


# ---- the builder ----


@given(names, names, ingresses)
def test_one_owned_policy_per_deployment_admitting_exactly_the_configured_peers(
    md: str, namespace: str, ingress: PredictorIngress
) -> None:
    policy = predictor_network_policy(_owner(md, namespace), ingress)
    meta = policy["metadata"]
    assert (policy["kind"], meta["name"], meta["namespace"]) == (
        "NetworkPolicy",
        f"{md}-predictors",
        namespace,
    )
    [ref] = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("ModelDeployment", md, "u1", True)
    assert _owner(md, namespace).controls(policy)  # what the reconcile checks before patching it
    assert meta["labels"][LABEL_DEPLOYMENT] == md
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]  # egress (MLflow, DNS) is not this policy's
    assert spec["podSelector"] == {"matchLabels": {LABEL_DEPLOYMENT: md}}
    traffic, metrics = spec["ingress"]
    assert (_port(traffic), traffic["from"]) == (8080, list(ingress.traffic_from))
    assert _port(metrics) == 8082
    # No `from` is "every source": only ever for metrics, and only when configured so.
    assert metrics.get("from") == (list(ingress.metrics_from) or None)


@given(ingresses)
def test_the_policy_is_a_copy_a_caller_cannot_alias_back_into_the_configuration(
    ingress: PredictorIngress,
) -> None:
    before = copy.deepcopy(ingress)
    policy = predictor_network_policy(_owner(), ingress)
    for rule in policy["spec"]["ingress"]:
        for peer in rule.get("from", []):
            peer["podSelector"] = {"matchLabels": {"mutated": "yes"}}
    assert ingress == before


@pytest.mark.parametrize("color", list(Color))
def test_it_selects_every_colours_predictor_pods_and_no_other_deployments(color: Color) -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "titanic-survival", "version": "3"}})
    selector = predictor_network_policy(_owner(), INGRESS)["spec"]["podSelector"]["matchLabels"]
    ours = inference_service(_owner(), spec, color, "titanic-survival", "3", 1, PredictorSettings("http://m"))
    theirs = inference_service(
        _owner("titanic2"), spec, color, "titanic-survival", "3", 1, PredictorSettings("http://m")
    )
    pod_labels = ours["spec"]["predictor"]["labels"]  # KServe puts these on the predictor pods
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= theirs["spec"]["predictor"]["labels"].items()


def test_the_ports_are_the_predictor_containers_http_and_metrics_ports() -> None:
    ports = {p["name"]: p["containerPort"] for p in runtime.predictor_container()["ports"]}
    traffic, metrics = predictor_network_policy(_owner(), INGRESS)["spec"]["ingress"]
    assert (_port(traffic), _port(metrics)) == (ports["http"], ports["metrics"])


def test_the_policy_passes_the_api_servers_schema() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from ferry_testing.chart import kube_version

    for ingress in (INGRESS, PredictorIngress((GATEWAY,))):
        kubernetes_validate.validate(predictor_network_policy(_owner(), ingress), kube_version(), strict=True)


def test_the_name_says_what_it_guards() -> None:
    assert policy_name("titanic") == "titanic-predictors"


# ---- FERRY_PREDICTOR_NETWORK_POLICY ----


@given(ingresses)
def test_every_valid_setting_parses_back_to_its_peers(ingress: PredictorIngress) -> None:
    raw = json.dumps({"trafficFrom": list(ingress.traffic_from), "metricsFrom": list(ingress.metrics_from)})
    assert parse(raw) == ingress


def test_off_and_unset_mean_no_policy_and_metrics_from_may_be_left_out() -> None:
    assert config.load({}).predictor_ingress is None  # make run-operator: no chart, no peers
    assert config.load({"FERRY_PREDICTOR_NETWORK_POLICY": "off"}).predictor_ingress is None
    raw = json.dumps({"trafficFrom": [GATEWAY]})
    assert config.load({"FERRY_PREDICTOR_NETWORK_POLICY": raw}).predictor_ingress == PredictorIngress(
        (GATEWAY,)
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("on", "not JSON"),
        ("[]", "expected 'off' or a JSON object"),
        ('{"metricsFrom": []}', "trafficFrom: required"),
        ('{"trafficFrom": []}', "trafficFrom: must name at least one peer; empty would admit every pod"),
        ('{"trafficFrom": [{}]}', "trafficFrom[0]: expected a peer"),
        ('{"trafficFrom": {"podSelector": {}}}', "trafficFrom: expected a list"),
        ('{"trafficFrom": [{"podSelector": {}}], "extra": 1}', "unknown key 'extra'"),
        ('{"trafficFrom": [{"pod": {}}]}', "trafficFrom[0]: unknown key 'pod'"),
        ('{"trafficFrom": [{"podSelector": []}]}', "trafficFrom[0].podSelector: expected a label selector"),
        (
            '{"trafficFrom": [{"podSelector": {"matchLabels": {"a": 1}}}]}',
            "trafficFrom[0].podSelector.matchLabels: expected an object of label -> string value",
        ),
        (
            '{"trafficFrom": [{"podSelector": {"labels": {}}}]}',
            "trafficFrom[0].podSelector: unknown key 'labels'",
        ),
        (
            '{"trafficFrom": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}]}',
            "trafficFrom[0].podSelector.matchExpressions[0].operator: 'Is' is not one of",
        ),
        (
            '{"trafficFrom": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}',
            "matchExpressions[0].values: In needs at least one value",
        ),
        (
            '{"trafficFrom": [{"podSelector": {"matchExpressions": '
            '[{"key": "a", "operator": "Exists", "values": ["x"]}]}}]}',
            "matchExpressions[0].values: Exists takes no values",
        ),
        (
            '{"trafficFrom": [{"podSelector": {"matchExpressions": [{"operator": "Exists"}]}}]}',
            "matchExpressions[0].key: required",
        ),
        ('{"trafficFrom": [{"ipBlock": {"cidr": "10.0.0.1"}}]}', "trafficFrom[0].ipBlock.cidr: '10.0.0.1'"),
        ('{"trafficFrom": [{"ipBlock": {"cidr": "nowhere/8"}}]}', "is not a CIDR"),
        ('{"trafficFrom": [{"ipBlock": {"net": "10.0.0.0/8"}}]}', "trafficFrom[0].ipBlock: expected"),
        (
            '{"trafficFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["x"]}}]}',
            "ipBlock.except[0]: 'x' is not a CIDR",
        ),
        (
            '{"trafficFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}',
            "trafficFrom[0]: ipBlock cannot be combined with a selector",
        ),
        (
            '{"trafficFrom": [{"podSelector": {}}], "metricsFrom": [{"namespaceSelector": 3}]}',
            "metricsFrom[0].namespaceSelector: expected a label selector",
        ),
    ],
)
def test_a_bad_setting_stops_the_operator_naming_the_variable_field_and_reason(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load({"FERRY_PREDICTOR_NETWORK_POLICY": value})
    assert err.value.name == "FERRY_PREDICTOR_NETWORK_POLICY"
    assert says in err.value.reason, err.value.reason


def test_the_help_documents_the_setting_and_its_default() -> None:
    text = config.help_text()
    assert "FERRY_PREDICTOR_NETWORK_POLICY" in text and "(default: off)" in text
