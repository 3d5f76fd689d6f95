"""Consumers from Kubernetes objects: the pure index builder (Consumers + their key Secrets)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ferry_gateway.auth.apikeys import hash_key
from ferry_gateway.consumers.k8s_source import build_index
from ferry_gateway.consumers.registry import ConsumerRegistry, KeyProblem
from ferry_testing.gateway import PEPPER


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def consumer(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def test_index_from_consumers_and_secrets() -> None:
    secrets = {"acme-key": {"apiKey": b64("fry_clear_key")}, "hashed": {"k": b64(hash_key(PEPPER, "fry_h"))}}
    objs = [
        consumer("acme", tier="pro", scopes=["predict"], apiKeys=[{"name": "acme-key"}]),
        consumer("pre", apiKeys=[{"name": "hashed", "key": "k", "revoked": True}]),
        consumer("broken", tier="Gold!"),
        consumer("lost", apiKeys=[{"name": "missing"}]),
    ]
    index, problems = build_index(objs, secrets, PEPPER)
    registry = ConsumerRegistry(PEPPER, index)
    assert registry.authenticate_key("fry_clear_key").tier == "pro"
    with pytest.raises(KeyProblem) as revoked:
        registry.authenticate_key("fry_h")
    assert revoked.value.reason == "api_key_revoked"
    assert sorted(index.consumers) == ["acme", "lost", "pre"]  # a broken Consumer does not take others down
    assert any("Consumer broken: spec.tier" in p for p in problems)
    assert any("Secret missing" in p for p in problems)
    assert not any("fry_clear_key" in str(k) for k in index.keys)  # only hashes are kept


def test_a_key_shared_by_two_entries_is_refused_for_all_of_them() -> None:
    # finding 12: the last one used to win, so a revoked reference could be undone by another
    secrets = {"k1": {"apiKey": b64("fry_shared")}, "k2": {"apiKey": b64("fry_shared")}}
    objs = [
        consumer("acme", apiKeys=[{"name": "k1", "revoked": True}]),
        consumer("shop", apiKeys=[{"name": "k2"}]),
        consumer("solo", apiKeys=[{"name": "k1"}]),
    ]
    index, problems = build_index(objs, secrets, PEPPER)
    with pytest.raises(KeyProblem) as refused:
        ConsumerRegistry(PEPPER, index).authenticate_key("fry_shared")
    assert refused.value.reason == "invalid_api_key"
    [problem] = [p for p in problems if "refused" in p]
    for where in ("Consumer acme (Secret k1)", "Consumer shop (Secret k2)", "Consumer solo (Secret k1)"):
        assert where in problem
    assert sorted(index.consumers) == ["acme", "shop", "solo"]  # the consumers themselves stay


def test_a_secret_holding_the_key_itself_still_works_but_is_reported() -> None:
    """Finding 8 (issue 13): clear keys in Secrets are named (never printed) so they get replaced."""
    secrets = {
        "clear": {"apiKey": b64("fry_clear_key")},
        "hashed": {"apiKey": b64(hash_key(PEPPER, "fry_h"))},
        "foreign": {"apiKey": b64(hash_key(b"another pepper", "fry_f"))},
    }
    objs = [consumer("acme", apiKeys=[{"name": "clear"}, {"name": "hashed"}, {"name": "foreign"}])]
    index, problems = build_index(objs, secrets, PEPPER)
    registry = ConsumerRegistry(PEPPER, index)
    assert registry.authenticate_key("fry_clear_key").name == "acme"
    assert registry.authenticate_key("fry_h").name == "acme"
    assert [p for p in problems if "Secret clear" in p and "holds the API key itself" in p]
    assert [p for p in problems if "Secret foreign" in p and "another pepper" in p]
    assert not [p for p in problems if "Secret hashed" in p]
    assert not any("fry_clear_key" in p for p in problems)


def test_inline_hashes_need_no_secret_and_secret_refs_are_reported_when_secrets_are_not_read() -> None:
    """Finding 8 (issue 13): a gateway that reads no Secrets still has every inline key."""
    objs = [
        consumer("acme", apiKeys=[{"hash": hash_key(PEPPER, "fry_inline")}, {"name": "old-key"}]),
        consumer("gone", apiKeys=[{"hash": hash_key(PEPPER, "fry_revoked"), "revoked": True}]),
    ]
    index, problems = build_index(objs, None, PEPPER)
    registry = ConsumerRegistry(PEPPER, index)
    assert registry.authenticate_key("fry_inline").name == "acme"
    with pytest.raises(KeyProblem) as revoked:
        registry.authenticate_key("fry_revoked")
    assert revoked.value.reason == "api_key_revoked"
    [problem] = problems
    assert "Consumer acme: apiKeys[1] names Secret old-key" in problem and "reads no Secrets" in problem


def test_an_inline_hash_and_a_secret_with_the_same_key_are_refused_for_both() -> None:
    stored = hash_key(PEPPER, "fry_twice")
    objs = [consumer("acme", apiKeys=[{"hash": stored}]), consumer("shop", apiKeys=[{"name": "k"}])]
    index, problems = build_index(objs, {"k": {"apiKey": b64(stored)}}, PEPPER)
    with pytest.raises(KeyProblem):
        ConsumerRegistry(PEPPER, index).authenticate_key("fry_twice")
    [problem] = [p for p in problems if "refused" in p]
    assert "Consumer acme (apiKeys[0])" in problem and "Consumer shop (Secret k)" in problem
