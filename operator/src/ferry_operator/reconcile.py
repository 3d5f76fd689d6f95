"""One reconcile of one ModelDeployment: read, resolve, decide (pure), converge, write status.

Level-triggered: nothing here assumes an earlier pass ran or finished. State lives in
``status.rollout``; the registry memo below is only a cache (lost on restart, rebuilt on the
next pass). Returns when to look again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry_common.contract import ANNOTATION_COMMAND, LABEL_VERSION
from ferry_common.timefmt import format_time
from pydantic import ValidationError

from ferry_operator import access, netpolicy
from ferry_operator import builders as b
from ferry_operator.bluegreen import (
    Decision,
    Event,
    Observation,
    Policy,
    SmokeResult,
    decide,
    from_status,
    parse_command,
)
from ferry_operator.config import OperatorConfig
from ferry_operator.metrics import RECONCILE_SECONDS, RECONCILES, TRANSITIONS
from ferry_operator.ports import KubeAPI, RegistryAPI
from ferry_operator.registry import RegistryError, ResolvedVersion
from ferry_operator.resource import Color, ModelDeploymentSpec, ModelRef, Phase
from ferry_operator.smoketest import SmokeTarget, SmokeTester
from ferry_operator.status import (
    NAME_CONFLICT,
    PredictorState,
    RegistryOutcome,
    compute_status,
    predictor_state,
    set_condition,
)

log = logging.getLogger("ferry.reconcile")

Key = tuple[str, str]
PREVIEW_RECHECK_SECONDS = 5.0
REGISTRY_NOTIFIED = "RegistryNotified"  # the event of a re-resolve a registry webhook asked for


@dataclass
class _Memo:
    """The last registry answer for one ModelDeployment, and when to ask again."""

    ref: ModelRef
    outcome: RegistryOutcome
    next_poll: float
    failures: int = 0
    command: str | None = None

    @property
    def uri(self) -> str:
        return self.ref.uri


def _policy(spec: ModelDeploymentSpec) -> Policy:
    return Policy(
        auto_promote=spec.rollout.autoPromote,
        smoke_enabled=spec.rollout.smokeTest.enabled,
        scale_down_delay=float(spec.rollout.scaleDownDelaySeconds),
        progress_deadline=float(spec.rollout.progressDeadlineSeconds),
        history_limit=spec.rollout.historyLimit,
        min_replicas=spec.autoscaling.minReplicas,
        max_replicas=spec.autoscaling.maxReplicas,
    )


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning ``old`` into ``new``.

    Merge patches merge nested objects, so a key that disappears at any depth (say
    ``rollout.preview`` after a promotion) must be sent as null, or the old value survives.
    """
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(old.get(k), dict):
            sub = merge_patch(old[k], v)
            if sub:
                patch[k] = sub
        elif old.get(k) != v or k not in old:
            patch[k] = v
    return patch


def _clean(value: Any) -> Any:
    """Drop None recursively: how a status reads back from the API server."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class Reconciler:
    def __init__(
        self,
        kube: KubeAPI,
        registry: RegistryAPI,
        tester: SmokeTester,
        config: OperatorConfig,
        clock: Any = time.time,
        monotonic: Any = time.monotonic,
    ) -> None:
        self.kube = kube
        self.registry = registry
        self.tester = tester
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.memos: dict[Key, _Memo] = {}
        self.notices: dict[Key, str] = {}  # why a refresh was asked for, told once it is done

    def forget(self, key: Key) -> None:
        self.memos.pop(key, None)
        self.notices.pop(key, None)

    def follows(self) -> list[tuple[Key, ModelRef]]:
        """What each ModelDeployment seen so far points at in the registry."""
        return [(key, memo.ref) for key, memo in self.memos.items()]

    def refresh(self, key: Key, notice: str | None = None) -> None:
        """Ask the registry again at ``key``'s next pass instead of at its poll time; ``notice``
        (what the registry said happened) becomes a RegistryNotified event on that pass."""
        memo = self.memos.get(key)
        if memo is not None:
            memo.next_poll = -math.inf
            if notice:
                self.notices[key] = notice

    async def resolve(
        self,
        key: Key,
        spec: ModelDeploymentSpec,
        command: str | None,
        recorded: Mapping[str, str] | None = None,
    ) -> RegistryOutcome:
        """The registry's answer for ``spec.model``, with the resolved version's artifact digest.

        The digest is taken from ``recorded`` (status) or the memo when this version has one, and
        computed (every artifact downloaded once) only the first time a version is resolved:
        trust on first use. A version whose digest cannot be computed counts as unresolved, so
        nothing is deployed that its predictors could not be held to.
        """
        recorded = recorded or {}
        memo = self.memos.get(key)
        mono = self.monotonic()
        uri = spec.model.uri
        # Ask again when the spec points elsewhere, when the poll interval is up, or when a human
        # command arrives (`kubectl ferry` commands double as "re-resolve now").
        if memo is not None and memo.uri == uri and mono < memo.next_poll and memo.command == command:
            return memo.outcome
        try:
            resolved = await self.registry.resolve(spec.model)
            known = memo.outcome if memo is not None and memo.outcome.resolved == resolved else None
            artifact_digest = recorded.get(resolved.version) or (known.artifact_digest if known else None)
            if artifact_digest is None:
                artifact_digest = await self.registry.artifact_digest(resolved.name, resolved.version)
                log.info("%s/%s: %s artifacts: %s", *key, resolved.uri, artifact_digest)
        except RegistryError as err:
            failures = (memo.failures + 1) if memo is not None and memo.uri == uri else 1
            # Outages back off exponentially up to the poll interval; a missing model is re-checked
            # at the poll interval (someone may register it).
            delay = (
                min(2.0**failures, self.config.poll_seconds) if err.retryable else self.config.poll_seconds
            )
            outcome = RegistryOutcome(None, err.reason, err.message)
            self.memos[key] = _Memo(spec.model, outcome, mono + delay, failures, command)
            return outcome
        message = f"{uri} -> version {resolved.version}"
        outcome = RegistryOutcome(resolved, "Resolved", message, format_time(self.clock()), artifact_digest)
        if known is not None:
            outcome = RegistryOutcome(resolved, "Resolved", message, known.resolved_at, artifact_digest)
        self.memos[key] = _Memo(spec.model, outcome, mono + self.config.poll_seconds, 0, command)
        return outcome

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one ModelDeployment; returns seconds until the next look (None: it is gone)."""
        started = time.perf_counter()
        try:
            delay = await self._reconcile(namespace, name)
        except Exception:
            RECONCILES.labels("error").inc()
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
        RECONCILES.labels("ok").inc()
        return delay

    async def _reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        md = await self.kube.get_md(namespace, name)
        if md is None or md["metadata"].get("deletionTimestamp"):
            self.forget(key)
            return None  # ownerReferences let the garbage collector remove what we created
        meta = md["metadata"]
        read_status: dict[str, Any] = md.get("status") or {}
        old_status = read_status
        generation = meta.get("generation")
        now = self.clock()
        try:
            spec = ModelDeploymentSpec.model_validate(md.get("spec") or {})
        except ValidationError as exc:
            await self._invalid(md, old_status, generation, now, exc)
            return self.config.poll_seconds
        if not access.allowed(self.config.model_access, namespace, spec.model.name):
            # Before the registry is asked: the refusal must not depend on what it holds. What
            # already runs is left alone (a tightened setting does not take a model offline);
            # deleting the ModelDeployment removes it.
            self.forget(key)
            message = access.refusal(namespace, spec.model.name)
            # RegistryResolved says the same: whatever it said before is not this model's answer.
            refused = ("Ready", "RegistryResolved")
            await self._fail(md, old_status, generation, now, access.REASON, message, refused)
            return self.config.poll_seconds
        owner = b.Owner(name, namespace, meta["uid"])
        annotations = meta.get("annotations") or {}
        raw_command = annotations.get(ANNOTATION_COMMAND)

        recorded = dict(old_status.get("artifactDigests") or {})
        outcome = await self.resolve(key, spec, raw_command, recorded)
        notice = self.notices.pop(key, None)
        if notice is not None:
            await self.kube.post_event(
                md, "Normal", REGISTRY_NOTIFIED, f"{notice}; the registry says {outcome.message}"
            )
        target = outcome.resolved.version if outcome.resolved else None
        if target is not None and outcome.artifact_digest is not None:
            recorded[target] = outcome.artifact_digest
        state = from_status(old_status.get("rollout"), old_status.get("history"))
        policy = _policy(spec)

        live, predictors, ready = await self._observe(owner)
        active_replicas = predictors[state.active.color].replicas if state.active else None
        obs = Observation(now, target, ready, active_replicas, None, parse_command(raw_command))
        decision = decide(state, policy, obs)
        if decision.run_smoke is not None:
            # The smoke test can take a while (a request each, up to its timeout): first show what
            # is happening (phase Verifying, the preview Service on the preview), then run it and
            # decide again on a fresh observation, as the next pass would.
            _, conflicts = await self._converge(owner, spec, decision, live, recorded)
            old_status = await self._write_status(
                md, old_status, outcome, decision, predictors, now, conflicts, recorded
            )
            await self._post(md, decision.events)
            log.info("%s/%s: %s", namespace, name, decision.message)
            result = await self._smoke(md, spec, decision)
            log.info(
                "%s/%s: smoke test of %s %s: %s",
                namespace,
                name,
                result.color,
                "passed" if result.passed else "failed",
                result.message,
            )
            now = self.clock()
            live, predictors, ready = await self._observe(owner)
            active = decision.state.active
            active_replicas = predictors[active.color].replicas if active else None
            obs = Observation(now, target, ready, active_replicas, result)
            decision = decide(decision.state, policy, obs)

        requeue, conflicts = await self._converge(owner, spec, decision, live, recorded)
        if decision.phase.value != old_status.get("phase"):
            log.info("%s/%s: phase %s: %s", namespace, name, decision.phase.value, decision.message)
        await self._write_status(md, old_status, outcome, decision, predictors, now, conflicts, recorded)
        await self._post(md, decision.events)
        for reason, message in _registry_events(read_status, outcome):
            await self.kube.post_event(md, "Warning" if reason != "Resolved" else "Normal", reason, message)
        return self._next_look(key, decision, requeue, now)

    async def _observe(
        self, owner: b.Owner
    ) -> tuple[dict[Color, dict[str, Any] | None], dict[Color, PredictorState], dict[Color, str]]:
        """Both colours' InferenceServices, their readiness and replicas, and which are Ready.
        One under our name that we do not control is never counted as ours, Ready or not."""
        namespace = owner.namespace
        live = {c: await self.kube.get_isvc(namespace, b.isvc_name(owner.name, c)) for c in Color}
        predictors: dict[Color, PredictorState] = {}
        for c in Color:
            isvc = b.isvc_name(owner.name, c)
            if live[c] is not None and not owner.controls(live[c]):
                predictors[c] = PredictorState(
                    None, False, "NotOwned", owner.conflict("InferenceService", isvc)
                )
                continue
            replicas = await self.kube.ready_replicas(namespace, isvc) if live[c] else None
            predictors[c] = predictor_state(live[c], replicas)
        ready = {c: p.version for c, p in predictors.items() if p.ready and p.version}
        return live, predictors, ready

    async def _write_status(
        self,
        md: dict[str, Any],
        old_status: dict[str, Any],
        outcome: RegistryOutcome,
        decision: Decision,
        predictors: dict[Color, PredictorState],
        now: float,
        conflicts: tuple[str, ...] = (),
        recorded: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Patch status to what ``decision`` says (nothing when unchanged); returns the new status.
        A name conflict newly found is also a Warning event, a digest newly recorded a Normal one."""
        meta = md["metadata"]
        status: dict[str, Any] = _clean(
            compute_status(
                md_name=meta["name"],
                generation=meta.get("generation"),
                old_status=old_status,
                registry=outcome,
                decision=decision,
                predictors=predictors,
                now=format_time(now),
                conflicts=conflicts,
                recorded=recorded or {},
            )
        )
        if status != _clean(old_status):
            await self.kube.patch_md_status(meta["namespace"], meta["name"], merge_patch(old_status, status))
        before = old_status.get("artifactDigests") or {}
        for version, value in sorted((status.get("artifactDigests") or {}).items()):
            if before.get(version) != value:
                await self.kube.post_event(
                    md,
                    "Normal",
                    "ArtifactDigestRecorded",
                    f"version {version}: artifacts {value} (first seen now; every predictor of this "
                    "version must load exactly these)",
                )
        if conflicts and _ready_reason(old_status) != NAME_CONFLICT:
            for message in conflicts:
                log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
                await self.kube.post_event(md, "Warning", NAME_CONFLICT, message)
        return status

    async def _post(self, md: dict[str, Any], events: tuple[Event, ...]) -> None:
        for e in events:
            TRANSITIONS.labels(e.reason).inc()
            await self.kube.post_event(md, e.type, e.reason, e.message)

    async def _smoke(self, md: dict[str, Any], spec: ModelDeploymentSpec, d: Decision) -> SmokeResult:
        color = d.run_smoke
        assert color is not None and d.state.preview is not None
        version = d.state.preview.version
        meta = md["metadata"]
        model_name = spec.model.name

        async def example() -> Any | None:
            return await self.registry.input_example(
                ResolvedVersion(model_name, version, None, None, "READY")
            )

        target = SmokeTarget(
            namespace=meta["namespace"],
            md_name=meta["name"],
            md_body=md,
            color=color,
            version=version,
            isvc=b.isvc_name(meta["name"], color),
            spec=spec.rollout.smokeTest,
            input_example=example,
        )
        try:
            outcome = await self.tester.run(target)
        except Exception as exc:  # a broken tester must fail the check, not the reconcile
            log.exception("smoke tester crashed")
            return SmokeResult(color, version, False, f"smoke tester error: {type(exc).__name__}: {exc}")
        return SmokeResult(color, version, outcome.passed, outcome.message)

    async def _converge(
        self,
        owner: b.Owner,
        spec: ModelDeploymentSpec,
        d: Decision,
        live: dict[Color, dict[str, Any] | None],
        recorded: Mapping[str, str],
    ) -> tuple[bool, tuple[str, ...]]:
        """Make the cluster match the decision, touching only objects we control. Returns
        whether another pass is needed soon, and each object under our names we do not control."""
        again = False
        conflicts: list[str] = list(await self._converge_network_policy(owner))
        for color in Color:
            plan = d.colours.get(color)
            current = live[color]
            isvc = b.isvc_name(owner.name, color)
            if current is not None and not owner.controls(current):
                conflicts.append(owner.conflict("InferenceService", isvc))
                continue
            conflicts += await self._converge_pdb(owner, color, wanted=plan is not None)
            if plan is None:
                if current is not None:
                    await self.kube.delete_isvc(owner.namespace, isvc)
                continue
            live_version = (current or {}).get("metadata", {}).get("labels", {}).get(LABEL_VERSION)
            if current is not None and live_version != plan.version:
                # A colour never changes version in place: KServe would keep reporting Ready while
                # old pods serve, and we would verify the wrong version. Replace it instead.
                if not current["metadata"].get("deletionTimestamp"):
                    await self.kube.delete_isvc(owner.namespace, isvc)
                again = True
                continue
            desired = b.inference_service(
                owner,
                spec,
                color,
                spec.model.name,
                plan.version,
                plan.min_replicas,
                self.config.predictor,
                # None only for a version deployed before digests were recorded: it runs unverified
                # until the registry next resolves it (then its pods roll to verified ones).
                recorded.get(plan.version),
            )
            await self.kube.apply_isvc(desired, current)
        active_name, preview_name = b.service_names(owner.name)
        routes = ((active_name, d.serving, "active"), (preview_name, d.preview_route, "preview"))
        for svc_name, route, role in routes:
            current_svc = await self.kube.get_service(owner.namespace, svc_name)
            if current_svc is not None and not owner.controls(current_svc):
                conflicts.append(owner.conflict("Service", svc_name))
                continue
            await self.kube.apply_service(b.service(owner, svc_name, route, role), current_svc)
        return again, tuple(conflicts)

    async def _converge_pdb(self, owner: b.Owner, color: Color, *, wanted: bool) -> tuple[str, ...]:
        """The colour's PodDisruptionBudget, there exactly while the colour is: applied with it,
        deleted with it (if ours). One under our name that is not ours is left alone, and is a
        conflict only while we want that name."""
        name = b.pdb_name(owner.name, color)
        live = await self.kube.get_pdb(owner.namespace, name)
        if live is not None and not owner.controls(live):
            return (owner.conflict("PodDisruptionBudget", name),) if wanted else ()
        if not wanted:
            if live is not None:
                await self.kube.delete_pdb(owner.namespace, name)
            return ()
        await self.kube.apply_pdb(b.pod_disruption_budget(owner, color), live)
        return ()

    async def _converge_network_policy(self, owner: b.Owner) -> tuple[str, ...]:
        """The predictor network policy as configured (FERRY_PREDICTOR_NETWORK_POLICY): applied
        before the InferenceServices, so predictor pods never start open to every pod; removed
        (only if ours) when the configuration says off. Returns the conflict, if one under our
        name is not ours: it is left alone, whatever it admits."""
        name = netpolicy.policy_name(owner.name)
        ingress = self.config.predictor_ingress
        live = await self.kube.get_network_policy(owner.namespace, name)
        if live is not None and not owner.controls(live):
            # Never patched nor deleted; a conflict only while we want that name ourselves.
            return () if ingress is None else (owner.conflict("NetworkPolicy", name),)
        if ingress is None:
            if live is not None:
                await self.kube.delete_network_policy(owner.namespace, name)
            return ()
        await self.kube.apply_network_policy(netpolicy.predictor_network_policy(owner, ingress), live)
        return ()

    def _next_look(self, key: Key, d: Decision, again: bool, now: float) -> float:
        candidates = [self.config.poll_seconds]
        memo = self.memos.get(key)
        if memo is not None:
            candidates.append(max(memo.next_poll - self.monotonic(), 0.5))
        if again:
            candidates.append(1.0)
        s = d.state
        if s.preview is not None:
            # Deadlines and verification move with time, not only with events: look often.
            candidates.append(PREVIEW_RECHECK_SECONDS)
        if s.retiring is not None:
            candidates.append(max(s.retiring.until - now, 0) + 0.5)
        return max(min(candidates), 0.5)

    async def _invalid(
        self,
        md: dict[str, Any],
        old: dict[str, Any],
        generation: int | None,
        now: float,
        exc: ValidationError,
    ) -> None:
        """A spec the API server accepted but we cannot use (e.g. applied before the CRD had a rule)."""
        first = exc.errors()[0]
        where = "spec." + ".".join(str(p) for p in first["loc"]) if first["loc"] else "spec"
        await self._fail(md, old, generation, now, "InvalidSpec", f"{where}: {first['msg']}")

    async def _fail(
        self,
        md: dict[str, Any],
        old: dict[str, Any],
        generation: int | None,
        now: float,
        reason: str,
        message: str,
        types: tuple[str, ...] = ("Ready",),
    ) -> None:
        """``types`` (Ready) False with ``reason``, phase Failed, one Warning event when that is news."""
        conds = list(old.get("conditions") or [])
        for type_ in types:
            conds = set_condition(conds, type_, False, reason, message, format_time(now), generation)
        status = {**old, "phase": Phase.Failed.value, "observedGeneration": generation, "conditions": conds}
        if _clean(status) != _clean(old):
            await self.kube.patch_md_status(md["metadata"]["namespace"], md["metadata"]["name"], status)
            await self.kube.post_event(md, "Warning", reason, message)


def _ready_reason(status: dict[str, Any]) -> str | None:
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return None if ready is None else ready.get("reason")


def _registry_events(old_status: dict[str, Any], outcome: RegistryOutcome) -> list[tuple[str, str]]:
    old = next((c for c in old_status.get("conditions") or [] if c.get("type") == "RegistryResolved"), None)
    if old is not None and old.get("reason") == outcome.reason:
        return []
    if outcome.resolved is None or (old is not None and old.get("reason") != "Resolved"):
        return [(outcome.reason, outcome.message)]
    return []
