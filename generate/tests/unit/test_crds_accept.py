"""The generated CRDs accept what Ferry's samples and fixtures send the API server (offline check).

jsonschema ignores the x-kubernetes-* keywords (CEL rules are the cluster tests' business) but
checks types, enums, patterns, bounds and required fields, which is where the translator decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ferry_generate import crds

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests/samples").glob("*.yaml"))


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = crds.documents()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_modeldeployment_crd_accepts_the_samples(sample: Path) -> None:
    jsonschema.Draft7Validator(_schema("modeldeployments.ferry.dev.yaml")).validate(
        yaml.safe_load(sample.read_text())
    )


def test_modeldeployment_crd_accepts_a_status_as_the_operator_writes_it() -> None:
    doc = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "titanic"},
        "spec": {"model": {"name": "titanic-survival", "alias": "champion"}},
        "status": {
            "phase": "Stable",
            "observedGeneration": 2,
            "active": {
                "color": "blue",
                "modelVersion": "3",
                "inferenceService": "titanic-blue",
                "ready": True,
            },
        },
    }
    jsonschema.Draft7Validator(_schema("modeldeployments.ferry.dev.yaml")).validate(doc)


CONSUMERS = [
    {"tier": "pro", "scopes": ["predict", "preview"], "models": ["titanic"],
     "apiKeys": [{"name": "acme-key", "key": "apiKey", "expiresAt": "2027-01-01T00:00:00Z"}]},
    {},  # every field defaulted
    {"apiKeys": [{"name": "k", "revoked": True}], "disabled": True},
    # gateway/tests/test_k8s_source.py's cluster fixture, before and after its patch
    {"tier": "basic", "scopes": ["predict"], "apiKeys": [{"name": "acme-key"}]},
    {"tier": "basic", "scopes": ["predict"], "apiKeys": [{"name": "acme-key", "revoked": True}]},
    # a key's hash inline (`ferry keys patch`): the gateway needs no Secret for it
    {"apiKeys": [{"hash": "hmac-sha256:0123abcd:" + "f" * 64, "expiresAt": "2027-01-01T00:00:00Z"}]},
]  # fmt: skip


@pytest.mark.parametrize("spec", CONSUMERS)
def test_consumer_crd_accepts_consumers(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "ferry.dev/v1alpha1", "kind": "Consumer", "metadata": {"name": "acme"}, "spec": spec}
    jsonschema.Draft7Validator(_schema("consumers.ferry.dev.yaml")).validate(doc)


def test_consumer_crd_still_refuses_a_bad_scope() -> None:
    doc = {"apiVersion": "ferry.dev/v1alpha1", "kind": "Consumer", "spec": {"scopes": ["root"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema("consumers.ferry.dev.yaml")).validate(doc)
