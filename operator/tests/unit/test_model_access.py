"""The tenant boundary on the registry (issue 13, finding 10): which namespaces may deploy which
registered models, decided from the namespace and the name alone, before the registry is asked."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from ferry_operator import access, config
from ferry_operator.access import ModelAccess, allowed, refusal
from ferry_operator.builders import PredictorSettings
from ferry_operator.config import OperatorConfig
from ferry_operator.reconcile import Reconciler
from ferry_operator.registry import RegistryConfig, RegistryError, ResolvedVersion
from ferry_operator.resource import ModelRef
from ferry_operator.smoketest import SmokeOutcome, SmokeTarget
from hypothesis import given
from hypothesis import strategies as st

namespaces = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z")
model_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,15}\Z")
# Patterns built from name characters plus glob wildcards and the namespace placeholder.
patterns = st.lists(
    st.sampled_from(["*", "?", "a", "b", "-", "_", ".", "1", "{namespace}", "team", "[ab]"]),
    min_size=1,
    max_size=5,
).map("".join)
rule_sets = st.dictionaries(
    st.one_of(namespaces, st.just("*")), st.lists(patterns, max_size=4).map(tuple), max_size=4
)


@given(namespaces, model_names)
def test_no_setting_means_no_boundary(namespace: str, model: str) -> None:
    assert allowed(None, namespace, model)


@given(namespaces, model_names)
def test_an_empty_setting_allows_nothing(namespace: str, model: str) -> None:
    assert not allowed(ModelAccess({}), namespace, model)


@given(namespaces, model_names)
def test_star_allows_every_model_of_its_namespace_only(namespace: str, model: str) -> None:
    rules = ModelAccess({namespace: ("*",)})
    assert allowed(rules, namespace, model)
    assert not allowed(rules, namespace + "x", model)


@given(namespaces, model_names, model_names)
def test_an_exact_name_allows_that_model_and_no_other(namespace: str, model: str, other: str) -> None:
    rules = ModelAccess({namespace: (model,)})
    assert allowed(rules, namespace, model)
    assert allowed(rules, namespace, other) == (other == model)


@given(rule_sets, namespaces, namespaces, model_names)
def test_one_namespace_entry_never_grants_another_namespace(
    rules: dict[str, tuple[str, ...]], namespace: str, other: str, model: str
) -> None:
    """Adding or changing an entry for ``other`` leaves ``namespace``'s answers as they were."""
    if namespace == other:
        return
    before = allowed(ModelAccess(rules), namespace, model)
    widened = {**rules, other: ("*",)}
    assert allowed(ModelAccess(widened), namespace, model) == before


@given(rule_sets, namespaces, model_names, patterns)
def test_more_patterns_never_take_a_permission_away(
    rules: dict[str, tuple[str, ...]], namespace: str, model: str, extra: str
) -> None:
    for key in (namespace, "*"):
        widened = {**rules, key: (*rules.get(key, ()), extra)}
        assert allowed(ModelAccess(rules), namespace, model) <= allowed(
            ModelAccess(widened), namespace, model
        )


@given(rule_sets, namespaces, model_names)
def test_star_key_applies_to_every_namespace_on_top_of_its_own(
    rules: dict[str, tuple[str, ...]], namespace: str, model: str
) -> None:
    own_only = {k: v for k, v in rules.items() if k != "*"}
    star_only = {"*": rules.get("*", ())}
    assert allowed(ModelAccess(rules), namespace, model) == (
        allowed(ModelAccess(own_only), namespace, model) or allowed(ModelAccess(star_only), namespace, model)
    )


@given(namespaces, namespaces, model_names)
def test_the_namespace_placeholder_is_the_deployments_own_namespace(
    namespace: str, other: str, model: str
) -> None:
    rules = ModelAccess({"*": ("{namespace}-*",)})
    assert allowed(rules, namespace, f"{namespace}-{model}")
    if not f"{namespace}-{model}".startswith(f"{other}-"):
        assert not allowed(rules, other, f"{namespace}-{model}")


def test_patterns_are_case_sensitive_like_mlflow_names() -> None:
    assert not allowed(ModelAccess({"ml": ("titanic-*",)}), "ml", "Titanic-survival")


@given(namespaces, model_names)
def test_the_refusal_names_the_request_and_the_setting_only(namespace: str, model: str) -> None:
    message = refusal(namespace, model)
    assert namespace in message and repr(model) in message and "operator.modelAccess" in message


def test_the_setting_is_parsed_and_bad_values_are_named() -> None:
    parsed = config.load({"FERRY_MODEL_ACCESS": '{"ml": ["*"], "*": ["{namespace}-*"]}'}).model_access
    assert parsed == ModelAccess({"ml": ("*",), "*": ("{namespace}-*",)})
    assert config.load({}).model_access is None
    for raw, says in (
        ("ml", "not JSON"),
        ('["ml"]', "JSON object"),
        ('{"Bad_NS": ["*"]}', "not a namespace name"),
        ('{"ml": "*"}', "list of non-empty"),
        ('{"ml": [""]}', "list of non-empty"),
    ):
        with pytest.raises(config.envconfig.ConfigError) as err:
            config.load({"FERRY_MODEL_ACCESS": raw})
        assert "FERRY_MODEL_ACCESS" in str(err.value) and says in str(err.value), raw


class CountingRegistry:
    """Knows one model; counts every question, so a test sees that none was asked."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.asked: list[str] = []

    async def resolve(self, model: ModelRef) -> ResolvedVersion:
        self.asked.append(model.name)
        if model.name not in self.known:
            raise RegistryError(
                "ModelNotFound", f"registered model {model.name!r} not found", retryable=False
            )
        return ResolvedVersion(model.name, "7", "run", "source", "READY")

    async def artifact_digest(self, name: str, version: str) -> str:
        self.asked.append(name)
        return "sha256:" + "7" * 64

    async def input_example(self, resolved: ResolvedVersion) -> Any:
        return None


def _md(namespace: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "md", "namespace": namespace, "uid": "u1", "generation": 1, "annotations": {}},
        "spec": {"model": {"name": model, "alias": "champion"}},
    }


class EventKube:
    """Just enough of ``Kube`` (as in test_reconcile_shell): KServe marks InferenceServices Ready at once."""

    def __init__(self, md: dict[str, Any]) -> None:
        self.md = md
        self.isvcs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pdbs: dict[str, dict[str, Any]] = {}
        self.network_policies: dict[str, dict[str, Any]] = {}
        self.full_events: list[tuple[str, str, str]] = []

    async def get_md(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.md)

    async def patch_md_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        target = self.md.setdefault("status", {})
        merged = reconcile_merge(target, status)
        self.md["status"] = merged

    async def get_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.isvcs.get(name))

    async def apply_isvc(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
        obj = copy.deepcopy(desired)
        obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        self.isvcs[desired["metadata"]["name"]] = obj
        return "created"

    async def delete_isvc(self, namespace: str, name: str) -> None:
        self.isvcs.pop(name, None)

    async def ready_replicas(self, namespace: str, isvc: str) -> int | None:
        return 1 if isvc in self.isvcs else None

    async def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.services.get(name))

    async def apply_service(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
        self.services[desired["metadata"]["name"]] = copy.deepcopy(desired)
        return "patched"

    async def get_pdb(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pdbs.get(name))

    async def apply_pdb(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
        self.pdbs[desired["metadata"]["name"]] = copy.deepcopy(desired)
        return "patched"

    async def delete_pdb(self, namespace: str, name: str) -> None:
        self.pdbs.pop(name, None)

    async def get_network_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.network_policies.get(name))

    async def apply_network_policy(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
        self.network_policies[desired["metadata"]["name"]] = copy.deepcopy(desired)
        return "patched"

    async def delete_network_policy(self, namespace: str, name: str) -> None:
        self.network_policies.pop(name, None)

    async def post_event(self, md: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.full_events.append((type_, reason, message))


def reconcile_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge, as the API server applies a status patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            reconcile_merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


class PassingTester:
    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        return SmokeOutcome(True, "ok")


async def _run(
    rules: ModelAccess | None, namespace: str, model: str, known: set[str], passes: int = 3
) -> tuple[EventKube, CountingRegistry]:
    kube, registry = EventKube(_md(namespace, model)), CountingRegistry(known)
    cfg = OperatorConfig(
        RegistryConfig("http://mlflow"), PredictorSettings("http://mlflow"), model_access=rules
    )
    ticks = itertools.count(step=cfg.poll_seconds + 1)
    reconciler = Reconciler(kube, registry, PassingTester(), cfg, monotonic=lambda: float(next(ticks)))
    for _ in range(passes):
        await reconciler.reconcile(namespace, "md")
    return kube, registry


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(status)
    for c in out.get("conditions", []):
        c.pop("lastTransitionTime", None)
    return out


RULES = ModelAccess({"ml": ("*",), "team-a": ("team-a-*",)})


async def test_a_refused_deployment_is_failed_with_one_warning_and_nothing_deployed() -> None:
    kube, registry = await _run(RULES, "team-a", "titanic-survival", {"titanic-survival"})
    status = kube.md["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed"
    ready = conditions["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", access.REASON)
    assert ready["message"] == refusal("team-a", "titanic-survival")
    assert conditions["RegistryResolved"]["reason"] == access.REASON
    assert kube.full_events == [("Warning", access.REASON, refusal("team-a", "titanic-survival"))]
    assert registry.asked == [] and kube.isvcs == {} and kube.services == {}
    assert "model" not in status and "active" not in status


async def test_a_refusal_reads_the_same_whether_the_model_exists_or_not() -> None:
    """No oracle: status and events of a refused namespace do not depend on the registry."""
    exists, asked_exists = await _run(RULES, "team-a", "secret-model", {"secret-model"})
    missing, asked_missing = await _run(RULES, "team-a", "secret-model", set())
    assert _without_times(exists.md["status"]) == _without_times(missing.md["status"])
    assert exists.full_events == missing.full_events
    assert asked_exists.asked == asked_missing.asked == []


async def test_an_allowed_deployment_deploys_as_before() -> None:
    for namespace, model in (("ml", "titanic-survival"), ("team-a", "team-a-churn")):
        kube, registry = await _run(RULES, namespace, model, {model})
        assert kube.md["status"]["phase"] == "Stable", (namespace, model)
        assert registry.asked and kube.isvcs
    kube, _ = await _run(None, "anywhere", "titanic-survival", {"titanic-survival"})
    assert kube.md["status"]["phase"] == "Stable"  # no setting: no boundary, as before


async def test_a_model_changed_to_a_refused_one_stops_resolving_and_leaves_what_runs() -> None:
    kube, registry = await _run(RULES, "team-a", "team-a-churn", {"team-a-churn", "titanic-survival"})
    assert kube.md["status"]["phase"] == "Stable" and kube.isvcs
    running = copy.deepcopy(kube.isvcs)
    kube.md["spec"]["model"]["name"] = "titanic-survival"
    kube.md["metadata"]["generation"] = 2
    cfg = OperatorConfig(
        RegistryConfig("http://mlflow"), PredictorSettings("http://mlflow"), model_access=RULES
    )
    reconciler = Reconciler(kube, registry, PassingTester(), cfg)
    asked = len(registry.asked)
    for _ in range(2):
        await reconciler.reconcile("team-a", "md")
    assert len(registry.asked) == asked  # titanic-survival was never looked up
    assert kube.md["status"]["phase"] == "Failed" and kube.isvcs == running
    assert [e for e in kube.full_events if e[1] == access.REASON] == [
        ("Warning", access.REASON, refusal("team-a", "titanic-survival"))
    ]


@pytest.mark.parametrize("name", ["ml\n", "ml\nprod", "-ml", "ML"])
def test_a_setting_naming_no_namespace_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a namespace name"):
        access.parse(json.dumps({name: ["*"]}))
