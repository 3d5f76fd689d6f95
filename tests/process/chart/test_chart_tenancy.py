"""The chart's security boundaries (issue 13): which namespaces the operator deploys registered
models for (finding 10), and which Secrets the gateway may read (finding 8)."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_gateway.config import load as load_gateway_config
from ferry_operator.access import ModelAccess, allowed
from ferry_operator.config import load as load_operator_config
from ferry_testing import snippets
from ferry_testing.chart import CHART, ENVIRONMENTS, JSON, run_helm, template

ALL_ENVS = (None, *ENVIRONMENTS)
README = snippets.claim("charts/ferry/README.md", "model-access")


def _env(docs: list[JSON], component: str) -> dict[str, str]:
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(component)]
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def _operator_access(docs: list[JSON]) -> ModelAccess | None:
    env = _env(docs, "-operator")
    assert "FERRY_MODEL_ACCESS" in env, "the chart must always draw the boundary"
    return load_operator_config(env).model_access


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_by_default_only_the_models_namespace_deploys_models(env: str | None) -> None:
    docs = template(env, namespace="ferry")
    models = _env(docs, "-gateway")["FERRY_MODEL_NAMESPACE"]  # where the gateway routes (modelNamespace)
    access = _operator_access(docs)
    assert allowed(access, models, "titanic-survival")  # what make up and make demo deploy
    assert not allowed(access, "other-team", "titanic-survival")
    access = _operator_access(template(env, "--set", "gateway.modelNamespace=ml", namespace="ferry"))
    assert allowed(access, "ml", "any-model")
    assert not allowed(access, "ferry", "any-model") and not allowed(access, "other-team", "any-model")


def test_the_readmes_model_access_reaches_the_operator_as_written(tmp_path: Any) -> None:
    values = tmp_path / "access.yaml"
    values.write_text(README.text("model-access"))
    access = _operator_access(template("prod", "-f", str(values)))
    assert access == ModelAccess({"ml": ("*",), "team-a": ("team-a-*", "shared-*"), "*": ("{namespace}-*",)})
    assert allowed(access, "team-a", "shared-churn") and allowed(access, "team-b", "team-b-churn")
    assert not allowed(access, "team-b", "team-a-churn") and not allowed(access, "team-b", "shared-churn")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ('operator:\n  modelAccess:\n    Bad_NS: ["*"]\n', "invalid propertyName 'Bad_NS'"),
        ('operator:\n  modelAccess:\n    ml: "*"\n', "at '/operator/modelAccess/ml'"),
        ('operator:\n  modelAccess:\n    ml: [""]\n', "at '/operator/modelAccess/ml/0'"),
    ],
)
def test_schema_rejects_a_malformed_model_access(tmp_path: Any, values: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(values)
    result = run_helm("template", "t", str(CHART), "-f", str(bad), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def _gateway_rules(docs: list[JSON]) -> list[JSON]:
    """Every rule of every Role or ClusterRole bound to the gateway's ServiceAccount."""
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway")]
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in docs
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])
    }
    assert bound, "the gateway's ServiceAccount is bound to nothing"
    roles = [r for r in docs if (r["kind"], r["metadata"]["name"]) in bound]
    return [rule for r in roles for rule in r.get("rules", [])]


def _reads_secrets(rules: list[JSON]) -> bool:
    return any("" in r.get("apiGroups", []) and {"secrets", "*"} & set(r.get("resources", [])) for r in rules)


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
@pytest.mark.parametrize("consumers", [False, True], ids=["no-consumers", "watch-consumers"])
def test_the_gateway_reads_no_secret_by_default(env: str | None, consumers: bool) -> None:
    """Finding 8 (issue 13): the pepper, Redis URL, registry credentials and TLS keys share the
    namespace, and a Role cannot narrow list/watch to the API-key label."""
    docs = template(env, "--set", f"gateway.watchConsumers={str(consumers).lower()}")
    rules = _gateway_rules(docs)
    assert not _reads_secrets(rules), rules
    settings = load_gateway_config(environ=_env(docs, "-gateway"))
    assert (settings.consumer_namespace is not None) is consumers
    if consumers:
        assert settings.key_secrets is False  # or its Secret watch would be refused forever


def test_key_secrets_is_an_explicit_opt_in_that_grants_and_uses_secrets() -> None:
    docs = template("staging", "--set", "gateway.keySecrets=true")
    rules = _gateway_rules(docs)
    assert _reads_secrets(rules)
    secret_rules = [r for r in rules if "secrets" in r.get("resources", [])]
    assert all(set(r["verbs"]) == {"list", "watch"} for r in secret_rules), secret_rules
    assert load_gateway_config(environ=_env(docs, "-gateway")).key_secrets is True
