"""The Consumer CRD generated from the typed models, and the consumers file that shares them."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_gateway.consumers.crd import ConsumerSpec, consumer_crd
from ferry_gateway.consumers.registry import parse_consumers_file
from pydantic import ValidationError


def _walk(node: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out += _walk(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk(v)
    return out


def test_crd_is_structural_and_validates_in_the_schema() -> None:
    crd = consumer_crd()
    assert crd["metadata"]["name"] == "consumers.ferry.dev"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    schema = version["schema"]["openAPIV3Schema"]
    for node in _walk(schema):  # what the API server refuses in a structural schema
        assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs", "const", "title"} & set(node)
    spec = schema["properties"]["spec"]["properties"]
    assert spec["scopes"]["items"]["enum"] == ["predict", "preview", "admin"]
    assert spec["tier"]["default"] == "free" and "pattern" in spec["tier"]
    # a key is its hash inline or a Secret's name, exactly one (finding 8: no Secret needed)
    assert spec["apiKeys"]["items"]["x-kubernetes-validations"] == [
        {
            "rule": "has(self.hash) != has(self.name)",
            "message": "exactly one of hash and name (a Secret) must be set",
        }
    ]
    assert "pattern" in spec["apiKeys"]["items"]["properties"]["hash"]
    assert spec["apiKeys"]["items"]["properties"]["expiresAt"]["format"] == "date-time"


def test_spec_model_accepts_a_sample_and_rejects_bad_fields() -> None:
    sample = {
        "tier": "pro",
        "scopes": ["predict", "preview"],
        "models": ["titanic"],
        "apiKeys": [{"name": "acme-key", "key": "apiKey", "expiresAt": "2027-01-01T00:00:00Z"}],
    }
    assert ConsumerSpec.model_validate(sample).api_keys[0].name == "acme-key"
    with pytest.raises(ValidationError) as err:
        ConsumerSpec.model_validate({**sample, "scopes": ["root"]})
    assert err.value.errors()[0]["loc"] == ("scopes", 0)


def test_a_key_is_its_hash_inline_or_a_secret_never_both_nor_neither() -> None:
    stored = "hmac-sha256:0123abcd:" + "f" * 64
    assert ConsumerSpec.model_validate({"apiKeys": [{"hash": stored}]}).api_keys[0].hash == stored
    for entry in ({}, {"hash": stored, "name": "k"}, {"hash": "fry_the_key_itself"}, {"revoked": True}):
        with pytest.raises(ValidationError):
            ConsumerSpec.model_validate({"apiKeys": [entry]})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("consumers:\n  - name: a\n    tier: Gold\n", "consumers.0.tier"),
        ("consumers:\n  - name: a\n    scopes: [predict, sudo]\n", "consumers.0.scopes.1"),
        ("consumers:\n  - name: a\n    apiKeys: [{hash: plain}]\n", "consumers.0.apiKeys.0.hash"),
        ("consumers:\n  - name: a\n  - name: a\n", "duplicate name"),
        ("consumers: [\n", "not valid YAML"),
        ("consumer: []\n", "consumer: Extra inputs"),
    ],
)
def test_consumers_file_errors_name_the_field(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        parse_consumers_file(text, "consumers.yaml")


def test_a_key_listed_twice_refuses_the_file_naming_both_consumers() -> None:
    # finding 12: the last entry used to win, so a stale copy could undo a revocation
    key = "hmac-sha256:0123abcd:" + "e" * 64
    text = (
        "consumers:\n"
        f"  - name: acme\n    apiKeys: [{{hash: '{key}', revoked: true}}]\n"
        f"  - name: shop\n    apiKeys: [{{hash: '{key}'}}]\n"
    )
    with pytest.raises(ValueError) as refused:
        parse_consumers_file(text, "consumers.yaml")
    message = str(refused.value)
    assert "listed twice" in message and "'acme'" in message and "'shop'" in message
