"""The predictor network policy: who may reach a ModelDeployment's predictor pods (pure).

Without it any pod in the cluster could call ``http://NAME-blue-predictor.NS/v1/models/...``
directly and skip the gateway's authentication, limits, allow-lists and preview scope (issue 13,
finding 1). So the operator writes, per ModelDeployment, one NetworkPolicy named
``<md>-predictors``, owned by the ModelDeployment (collected with it), selecting both colours'
predictor pods (label ``ferry.dev/deployment: <md>``) and admitting, ingress only:

- the predictor's traffic port (8080) from ``trafficFrom``: the gateway's pods (every client
  request, and the shadow requests of an analysis) and the operator's pods (its http smoke test
  calls the preview predictor directly, ``FERRY_SMOKE_URL_TEMPLATE``);
- the predictor's metrics port (8082) from ``metricsFrom``: Prometheus. Empty means every source,
  as the chart's ``networkPolicy.metricsFrom`` does for its own policies.

Nothing else needs to reach a predictor: KServe's controller never calls it (RawDeployment has no
activator; the Serverless mode's activator and queue-proxy would need their own peers), the
kubelet's probes are not subject to NetworkPolicy, and DNS and MLflow are the predictor's egress,
which this policy leaves open.

``FERRY_PREDICTOR_NETWORK_POLICY`` carries the peers as JSON (``parse``); the chart writes it from
the release namespace, the gateway's and operator's selector labels and
``networkPolicy.metricsFrom``, or ``off`` when ``networkPolicy.enabled`` is false. Unset is off
too: outside the chart (``make run-operator``) the operator cannot know where the gateway runs,
and a policy with the wrong peers would cut every predictor off. Off, the operator writes no
predictor network policy and removes one it wrote earlier.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ferry_common import runtime
from ferry_common.contract import LABEL_DEPLOYMENT, LABEL_ROLE

from ferry_operator.builders import Owner, labels

JSON = dict[str, Any]
OFF = "off"
SUFFIX = "-predictors"
ROLE = "predictors"
TRAFFIC_PORT = runtime.HTTP_PORT
METRICS_PORT = runtime.METRICS_PORT

_PEER_KEYS = ("podSelector", "namespaceSelector", "ipBlock")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class PredictorIngress:
    """Who may reach predictor pods: NetworkPolicyPeer objects, as the API server takes them."""

    traffic_from: tuple[JSON, ...]
    """Peers admitted to the traffic port: the gateway and the operator (never empty)."""
    metrics_from: tuple[JSON, ...] = ()
    """Peers admitted to the metrics port: Prometheus; empty: every source."""


def policy_name(md_name: str) -> str:
    """The predictor network policy's name: ``<md>-predictors``."""
    return f"{md_name}{SUFFIX}"


def predictor_network_policy(owner: Owner, ingress: PredictorIngress) -> JSON:
    """The NetworkPolicy admitting only ``ingress``'s peers to ``owner``'s predictor pods."""
    metrics_rule: JSON = {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]}
    if ingress.metrics_from:
        metrics_rule["from"] = copy.deepcopy(list(ingress.metrics_from))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(owner.name),
            "namespace": owner.namespace,
            "labels": {**labels(owner), LABEL_ROLE: ROLE},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            # Both colours, and any later one: every predictor pod of this ModelDeployment.
            "podSelector": {"matchLabels": {LABEL_DEPLOYMENT: owner.name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": copy.deepcopy(list(ingress.traffic_from)),
                    "ports": [{"port": TRAFFIC_PORT, "protocol": "TCP"}],
                },
                metrics_rule,
            ],
        },
    }


# ---- FERRY_PREDICTOR_NETWORK_POLICY ----


def parse(raw: str) -> PredictorIngress | None:
    """``off``, or JSON ``{"trafficFrom": [peer, ...], "metricsFrom": [peer, ...]}``.

    Raises ValueError naming the field and the reason; every peer is checked as the API server
    would (so a bad value stops the operator at start, not each reconcile at the API server).
    """
    if raw.strip() == OFF:
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not JSON ({exc.msg}); expected 'off' or an object with trafficFrom and metricsFrom"
        ) from None
    if not isinstance(doc, dict):
        raise ValueError("expected 'off' or a JSON object with trafficFrom and metricsFrom")
    unknown = sorted(set(doc) - {"trafficFrom", "metricsFrom"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected trafficFrom and metricsFrom")
    if "trafficFrom" not in doc:
        raise ValueError("trafficFrom: required (the gateway's and the operator's pods)")
    traffic = _peers("trafficFrom", doc["trafficFrom"])
    if not traffic:
        # An empty `from` admits every source: the very bypass this policy closes.
        raise ValueError("trafficFrom: must name at least one peer; empty would admit every pod")
    return PredictorIngress(traffic, _peers("metricsFrom", doc.get("metricsFrom", [])))


def _peers(where: str, value: Any) -> tuple[JSON, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of NetworkPolicy peers")
    for i, peer in enumerate(value):
        _peer(f"{where}[{i}]", peer)
    return tuple(value)


def _peer(where: str, peer: Any) -> None:
    if not isinstance(peer, dict) or not peer:
        raise ValueError(f"{where}: expected a peer: an object of {', '.join(_PEER_KEYS)}")
    unknown = sorted(set(peer) - set(_PEER_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; a peer has {', '.join(_PEER_KEYS)}")
    if "ipBlock" in peer:
        if len(peer) > 1:
            raise ValueError(f"{where}: ipBlock cannot be combined with a selector")
        _ip_block(f"{where}.ipBlock", peer["ipBlock"])
    for key in ("podSelector", "namespaceSelector"):
        if key in peer:
            _selector(f"{where}.{key}", peer[key])


def _ip_block(where: str, block: Any) -> None:
    if not isinstance(block, dict) or "cidr" not in block or set(block) - {"cidr", "except"}:
        raise ValueError(f"{where}: expected {{cidr, except}}")
    _cidr(f"{where}.cidr", block["cidr"])
    excepts = block.get("except", [])
    if not isinstance(excepts, list):
        raise ValueError(f"{where}.except: expected a list of CIDRs")
    for i, cidr in enumerate(excepts):
        _cidr(f"{where}.except[{i}]", cidr)


def _cidr(where: str, value: Any) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
    if "/" not in str(value):
        raise ValueError(f"{where}: {value!r} is not a CIDR (e.g. 10.0.0.0/8)")


def _selector(where: str, selector: Any) -> None:
    """A LabelSelector; ``{}`` selects everything (every pod, or every namespace)."""
    if not isinstance(selector, dict):
        raise ValueError(f"{where}: expected a label selector (matchLabels, matchExpressions)")
    unknown = sorted(set(selector) - set(_SELECTOR_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; a selector has matchLabels, matchExpressions")
    match = selector.get("matchLabels", {})
    if not isinstance(match, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in match.items()
    ):
        raise ValueError(f"{where}.matchLabels: expected an object of label -> string value")
    expressions = selector.get("matchExpressions", [])
    if not isinstance(expressions, list):
        raise ValueError(f"{where}.matchExpressions: expected a list")
    for i, expr in enumerate(expressions):
        _expression(f"{where}.matchExpressions[{i}]", expr)


def _expression(where: str, expr: Any) -> None:
    if not isinstance(expr, dict) or set(expr) - {"key", "operator", "values"}:
        raise ValueError(f"{where}: expected {{key, operator, values}}")
    if not isinstance(expr.get("key"), str) or not expr["key"]:
        raise ValueError(f"{where}.key: required, a label key")
    op = expr.get("operator")
    if op not in _OPERATORS:
        raise ValueError(f"{where}.operator: {op!r} is not one of {', '.join(_OPERATORS)}")
    values = expr.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}.values: expected a list of strings")
    if op in ("In", "NotIn") and not values:
        raise ValueError(f"{where}.values: {op} needs at least one value")
    if op in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{where}.values: {op} takes no values")
