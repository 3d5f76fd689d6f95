"""The reconcile shell against an in-memory API: what status says while a smoke test runs.

(That every Kubernetes call gives up when the API server stops answering is process/test_kube_timeouts.py.)
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from ferry_common.contract import LABEL_COLOR
from ferry_operator.builders import Owner, PredictorSettings
from ferry_operator.config import OperatorConfig
from ferry_operator.netpolicy import PredictorIngress, policy_name, predictor_network_policy
from ferry_operator.reconcile import Reconciler, merge_patch
from ferry_operator.registry import RegistryConfig, RegistryError, ResolvedVersion
from ferry_operator.resource import ModelRef
from ferry_operator.smoketest import SmokeOutcome, SmokeTarget

NS, NAME = "ml", "titanic"


def digest_of(version: str) -> str:
    return "sha256:" + version * 64


def _apply_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _apply_merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


class FakeKube:
    """Just enough of ``Kube``: a ModelDeployment, InferenceServices KServe marks Ready at once."""

    def __init__(self, md: dict[str, Any]) -> None:
        self.md = md
        self.isvcs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pdbs: dict[str, dict[str, Any]] = {}
        self.network_policies: dict[str, dict[str, Any]] = {}
        self.events: list[str] = []

    async def get_md(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.md)

    async def patch_md_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        _apply_merge(self.md.setdefault("status", {}), status)

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
        self.events.append(reason)

    def routes(self) -> tuple[str | None, str | None]:
        return tuple(
            (self.services.get(n) or {}).get("spec", {}).get("selector", {}).get(LABEL_COLOR)
            for n in (NAME, f"{NAME}-preview")
        )


class FakeRegistry:
    """One model whose alias points at ``version``; digests what it is asked and counts it."""

    def __init__(self) -> None:
        self.version = "1"
        self.digested: list[str] = []
        self.digest_error: RegistryError | None = None

    async def resolve(self, model: ModelRef) -> ResolvedVersion:
        return ResolvedVersion(model.name, self.version, "run", "source", "READY")

    async def artifact_digest(self, name: str, version: str) -> str:
        self.digested.append(version)
        if self.digest_error is not None:
            raise self.digest_error
        return digest_of(version)

    async def input_example(self, resolved: ResolvedVersion) -> Any:
        return None


class RecordingTester:
    """Passes; records what a user would have seen in status and Services while it ran."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.seen: list[tuple[str, dict[str, Any], tuple[str | None, str | None]]] = []

    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        status = self.kube.md.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        self.seen.append((status.get("phase", ""), conditions, self.kube.routes()))
        return SmokeOutcome(True, "ok")


def following_champion() -> dict[str, Any]:
    """The ModelDeployment the tests start from: it follows titanic-survival@champion."""
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u1", "generation": 1, "annotations": {}},
        "spec": {"model": {"name": "titanic-survival", "alias": "champion"}},
    }


@pytest.fixture
def world() -> tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester]:
    md = following_champion()
    kube, registry = FakeKube(md), FakeRegistry()
    tester = RecordingTester(kube)
    config = OperatorConfig(RegistryConfig("http://mlflow"), PredictorSettings("http://mlflow"))
    # A clock that jumps past the registry poll interval at every look: each pass asks the registry.
    ticks = itertools.count(step=config.poll_seconds + 1)
    reconciler = Reconciler(kube, registry, tester, config, monotonic=lambda: float(next(ticks)))
    return reconciler, kube, registry, tester


async def test_status_says_verifying_while_the_smoke_test_runs(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, registry, tester = world
    for _ in range(3):  # create blue; it is Ready: verify and promote
        await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["phase"] == "Stable" and kube.routes() == ("blue", "blue")
    assert len(tester.seen) == 1

    registry.version = "2"
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    phase, conditions, routes = tester.seen[-1]
    assert phase == "Verifying"
    rollout = conditions["RolloutInProgress"]
    assert rollout["status"] == "True" and rollout["reason"] == "Verifying"
    assert "smoke-testing version 2 (green)" in rollout["message"]
    assert routes == ("blue", "green")  # the preview is reachable, traffic still on blue
    assert kube.md["status"]["phase"] == "Stable" and kube.md["status"]["active"]["color"] == "green"
    assert kube.routes() == ("green", "green")
    assert kube.events.count("Promoted") == 2 and kube.events.count("SmokeTestPassed") == 2


def test_merge_patch_applied_by_the_fake_matches_the_target() -> None:
    old = {"a": {"b": 1, "c": 2}, "d": 3}
    new = {"a": {"b": 1}, "e": 4}
    assert _apply_merge(copy.deepcopy(old), merge_patch(old, new)) == new


# ---- objects under our names that we do not control (issue 13, finding 5) ----------------------


def _foreign_service(name: str) -> dict[str, Any]:
    """A Service a user (or another ModelDeployment) made under a name Ferry would use."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "theirs"}},
        "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 8080}]},
    }


def _ready_condition(kube: FakeKube) -> dict[str, Any]:
    return next(c for c in kube.md["status"]["conditions"] if c["type"] == "Ready")


async def test_a_service_under_our_name_that_we_do_not_control_is_left_alone_and_named(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, _, _ = world
    theirs = _foreign_service(f"{NAME}-preview")
    kube.services[f"{NAME}-preview"] = copy.deepcopy(theirs)
    for _ in range(4):
        await reconciler.reconcile(NS, NAME)
    assert kube.services[f"{NAME}-preview"] == theirs  # never patched
    ready = _ready_condition(kube)
    assert ready["status"] == "False" and ready["reason"] == "NameConflict"
    expected = f"Service {NS}/{NAME}-preview exists and is not controlled by ModelDeployment {NAME}"
    assert expected in ready["message"]
    assert kube.events.count("NameConflict") == 1  # said once, not at every pass
    # the user renames theirs: Ferry converges and Ready clears
    del kube.services[f"{NAME}-preview"]
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert _ready_condition(kube)["reason"] == "Serving" and kube.routes() == ("blue", "blue")


async def test_an_unlabelled_inference_service_under_our_name_is_neither_deleted_nor_counted(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, _, tester = world
    theirs = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": f"{NAME}-blue", "namespace": NS},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    kube.isvcs[f"{NAME}-blue"] = copy.deepcopy(theirs)
    for _ in range(4):
        await reconciler.reconcile(NS, NAME)
    assert kube.isvcs[f"{NAME}-blue"] == theirs  # not deleted, not patched
    assert tester.seen == []  # its Ready pods were never taken for our version 1
    assert "blue" not in kube.routes()  # no Service routes to their pods
    ready = _ready_condition(kube)
    assert ready["reason"] == "NameConflict" and f"InferenceService {NS}/{NAME}-blue" in ready["message"]


async def test_a_re_created_deployment_adopts_its_predecessors_objects(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    """Deleted and applied again under the same name: what the old one made (its garbage
    collection still pending) is ours, not a conflict."""
    reconciler, kube, _, _ = world
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["phase"] == "Stable"
    kube.md = {**kube.md, "metadata": {**kube.md["metadata"], "uid": "u2"}, "status": {}}
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert _ready_condition(kube)["reason"] == "Serving"
    made = [*kube.services.values(), *kube.isvcs.values()]
    owners = {o["metadata"]["ownerReferences"][0]["uid"] for o in made}
    assert owners == {"u2"} and "NameConflict" not in kube.events


# ---- artifact digests (issue 13, finding 4) -----------------------------------------------------


def _digest_env(kube: FakeKube, isvc: str) -> str | None:
    (container,) = kube.isvcs[isvc]["spec"]["predictor"]["containers"]
    return next((e["value"] for e in container["env"] if e["name"] == "FERRY_ARTIFACT_DIGEST"), None)


async def test_a_version_is_digested_once_and_every_predictor_of_it_verifies_that(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, registry, _ = world
    for _ in range(4):  # each pass asks the registry again (the clock jumps past the poll)
        await reconciler.reconcile(NS, NAME)
    assert registry.digested == ["1"]  # once, not per reconcile
    assert kube.md["status"]["artifactDigests"] == {"1": digest_of("1")}
    assert kube.md["status"]["active"]["artifactDigest"] == digest_of("1")
    assert _digest_env(kube, f"{NAME}-blue") == digest_of("1")
    assert kube.events.count("ArtifactDigestRecorded") == 1

    # A restarted operator reads it back from status: still not downloaded again.
    fresh = Reconciler(kube, registry, reconciler.tester, reconciler.config, monotonic=reconciler.monotonic)
    await fresh.reconcile(NS, NAME)
    assert registry.digested == ["1"]

    # The alias moves: the new version is digested once; the old one's digest stays while it runs.
    registry.version = "2"
    for _ in range(4):
        await reconciler.reconcile(NS, NAME)
    assert registry.digested == ["1", "2"]
    assert _digest_env(kube, f"{NAME}-green") == digest_of("2")
    assert kube.md["status"]["active"] == {**kube.md["status"]["active"], "artifactDigest": digest_of("2")}
    assert set(kube.md["status"]["artifactDigests"]) <= {"1", "2"}


async def test_a_version_that_cannot_be_digested_is_not_deployed(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, registry, _ = world
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    registry.version = "2"
    registry.digest_error = RegistryError(
        "ArtifactsNotVerifiable", "not served by the proxy", retryable=False
    )
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert f"{NAME}-green" not in kube.isvcs  # no preview of artifacts nobody recorded
    resolved = next(c for c in kube.md["status"]["conditions"] if c["type"] == "RegistryResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "ArtifactsNotVerifiable")
    assert kube.md["status"]["active"]["modelVersion"] == "1"  # what runs keeps running
    assert _digest_env(kube, f"{NAME}-blue") == digest_of("1")


# ---- a PodDisruptionBudget per colour (issue 13, finding 11) ------------------------------------


async def test_each_colour_has_its_disruption_budget_exactly_while_it_exists(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, registry, _ = world
    kube.md["spec"]["rollout"] = {"scaleDownDelaySeconds": 0}
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert set(kube.isvcs) == {f"{NAME}-blue"} and set(kube.pdbs) == {f"{NAME}-blue-predictor"}
    blue = kube.pdbs[f"{NAME}-blue-predictor"]
    assert blue["spec"]["selector"]["matchLabels"] == {"ferry.dev/deployment": NAME, LABEL_COLOR: "blue"}
    assert blue["metadata"]["ownerReferences"][0]["uid"] == "u1"

    registry.version = "2"  # green rolls out, is promoted, and blue retires at once
    for _ in range(6):
        await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["active"]["color"] == "green"
    assert set(kube.isvcs) == {f"{NAME}-green"}
    assert set(kube.pdbs) == {f"{NAME}-green-predictor"}


async def test_a_disruption_budget_under_our_name_that_we_do_not_control_is_left_alone(
    world: tuple[Reconciler, FakeKube, FakeRegistry, RecordingTester],
) -> None:
    reconciler, kube, _, _ = world
    theirs = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"{NAME}-blue-predictor", "namespace": NS},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "theirs"}}},
    }
    kube.pdbs[f"{NAME}-blue-predictor"] = copy.deepcopy(theirs)
    for _ in range(4):
        await reconciler.reconcile(NS, NAME)
    assert kube.pdbs[f"{NAME}-blue-predictor"] == theirs  # never patched
    ready = _ready_condition(kube)
    assert ready["reason"] == "NameConflict"
    assert f"PodDisruptionBudget {NS}/{NAME}-blue-predictor exists and is not controlled" in ready["message"]
    assert kube.events.count("NameConflict") == 1
    # The user removes theirs: ours takes its place and Ready clears.
    del kube.pdbs[f"{NAME}-blue-predictor"]
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert _ready_condition(kube)["reason"] == "Serving"
    assert kube.pdbs[f"{NAME}-blue-predictor"]["spec"]["maxUnavailable"] == 1


# ---- the predictor network policy (issue 13, finding 1) ----

GATEWAY = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ferry"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS = PredictorIngress((GATEWAY,), (PROMETHEUS,))


def _owner() -> Owner:
    return Owner(NAME, NS, "u1")


class OrderedKube(FakeKube):
    """Records, at each InferenceService write, whether the predictor network policy existed."""

    def __init__(self, md: dict[str, Any]) -> None:
        super().__init__(md)
        self.guarded_at_isvc_write: list[bool] = []

    async def apply_isvc(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
        self.guarded_at_isvc_write.append(policy_name(NAME) in self.network_policies)
        return await super().apply_isvc(desired, live)


def _world(ingress: PredictorIngress | None) -> tuple[Reconciler, OrderedKube]:
    md = following_champion()
    kube = OrderedKube(md)
    cfg = OperatorConfig(
        RegistryConfig("http://mlflow"), PredictorSettings("http://mlflow"), predictor_ingress=ingress
    )
    ticks = itertools.count(step=cfg.poll_seconds + 1)
    return Reconciler(
        kube, FakeRegistry(), RecordingTester(kube), cfg, monotonic=lambda: float(next(ticks))
    ), kube


async def test_the_policy_exists_before_any_predictor_and_follows_the_configuration() -> None:
    reconciler, kube = _world(INGRESS)
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["phase"] == "Stable"
    assert kube.guarded_at_isvc_write and all(kube.guarded_at_isvc_write)
    assert kube.network_policies == {policy_name(NAME): predictor_network_policy(_owner(), INGRESS)}
    # The chart's peers change (say networkPolicy.metricsFrom): the next pass writes the new ones.
    wider = PredictorIngress((GATEWAY,))
    reconciler.config = OperatorConfig(
        reconciler.config.registry, reconciler.config.predictor, predictor_ingress=wider
    )
    await reconciler.reconcile(NS, NAME)
    assert kube.network_policies[policy_name(NAME)] == predictor_network_policy(_owner(), wider)


async def test_off_writes_none_and_removes_the_one_written_before() -> None:
    reconciler, kube = _world(None)
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["phase"] == "Stable" and kube.network_policies == {}
    kube.network_policies[policy_name(NAME)] = predictor_network_policy(_owner(), INGRESS)  # from before
    await reconciler.reconcile(NS, NAME)
    assert kube.network_policies == {}


def _foreign_policy() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(NAME), "namespace": NS, "labels": {"app": "theirs"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }


async def test_a_policy_under_our_name_that_we_do_not_control_is_left_alone_and_named() -> None:
    reconciler, kube = _world(INGRESS)
    kube.network_policies[policy_name(NAME)] = _foreign_policy()
    for _ in range(4):
        await reconciler.reconcile(NS, NAME)
    assert kube.network_policies[policy_name(NAME)] == _foreign_policy()  # never patched
    ready = _ready_condition(kube)
    assert ready["status"] == "False" and ready["reason"] == "NameConflict"
    expected = f"NetworkPolicy {NS}/{NAME}-predictors exists and is not controlled by ModelDeployment {NAME}"
    assert expected in ready["message"]
    assert kube.events.count("NameConflict") == 1
    del kube.network_policies[policy_name(NAME)]  # the user renames theirs: Ferry converges
    for _ in range(2):
        await reconciler.reconcile(NS, NAME)
    assert _ready_condition(kube)["reason"] == "Serving"
    assert kube.network_policies[policy_name(NAME)] == predictor_network_policy(_owner(), INGRESS)


async def test_off_never_deletes_a_policy_it_does_not_own_nor_calls_it_a_conflict() -> None:
    reconciler, kube = _world(None)
    kube.network_policies[policy_name(NAME)] = _foreign_policy()
    for _ in range(3):
        await reconciler.reconcile(NS, NAME)
    assert kube.network_policies[policy_name(NAME)] == _foreign_policy()
    assert _ready_condition(kube)["reason"] == "Serving" and "NameConflict" not in kube.events


async def test_a_refresh_asks_the_registry_before_the_poll_is_due() -> None:
    """What a webhook delivery does: the next pass re-resolves though the poll is not due."""
    md = following_champion()
    kube, registry = FakeKube(md), FakeRegistry()
    config = OperatorConfig(RegistryConfig("http://mlflow"), PredictorSettings("http://mlflow"))
    reconciler = Reconciler(
        kube, registry, RecordingTester(kube), config, monotonic=lambda: 100.0
    )  # time stands still
    await reconciler.reconcile(NS, NAME)
    assert reconciler.follows() == [((NS, NAME), ModelRef(name="titanic-survival", alias="champion"))]
    registry.version = "2"  # the alias moves in the registry
    await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["model"]["version"] == "1"  # the poll is not due: not seen
    assert "RegistryNotified" not in kube.events
    reconciler.refresh((NS, NAME), "MLflow webhook model_version_alias.created: titanic-survival@champion")
    await reconciler.reconcile(NS, NAME)
    assert kube.md["status"]["model"]["version"] == "2"
    await reconciler.reconcile(NS, NAME)  # told once, on the pass that re-resolved
    assert kube.events.count("RegistryNotified") == 1
    reconciler.refresh(("other", "unknown"))  # one never seen is no error: its first pass resolves
