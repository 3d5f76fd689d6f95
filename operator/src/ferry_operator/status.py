"""Pure status computation: what KServe reports, folded with the rollout decision into our status.

Conditions follow metav1.Condition: ``lastTransitionTime`` moves only when ``status`` changes,
so a steady resource writes an identical status and the second reconcile pass is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry_common.contract import LABEL_VERSION

from ferry_operator.bluegreen import Decision, history_to_status, to_status
from ferry_operator.builders import isvc_name
from ferry_operator.registry import ResolvedVersion
from ferry_operator.resource import Color


@dataclass(frozen=True)
class PredictorState:
    """One colour's InferenceService as observed."""

    version: str | None
    ready: bool
    reason: str
    message: str
    replicas: int | None = None

    @property
    def failing(self) -> bool:
        return self.reason in ("BlockedByFailedLoad", "ModelLoadFailed", "FailedLoad", "InvalidSpec")


# The Ready condition's reason and the Warning event's when an object under a ModelDeployment's
# names (``NAME-blue|green``, ``NAME``, ``NAME-preview``) is controlled by someone else.
NAME_CONFLICT = "NameConflict"


def predictor_state(isvc: dict[str, Any] | None, deployment_replicas: int | None = None) -> PredictorState:
    """Ready only when KServe says so *for the current spec* (observedGeneration caught up)."""
    if not isvc:
        return PredictorState(None, False, "Absent", "no InferenceService")
    meta = isvc.get("metadata", {})
    version = (meta.get("labels") or {}).get(LABEL_VERSION)
    st = isvc.get("status") or {}
    generation = meta.get("generation")
    observed = st.get("observedGeneration")
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    ready = conds.get("Ready", {})
    model_status = st.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if failure or model_status.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
        reason = failure.get("reason") or model_status.get("transitionStatus") or "FailedLoad"
        message = failure.get("message") or ready.get("message") or "KServe reports the predictor failing"
        return PredictorState(version, False, str(reason), str(message), deployment_replicas)
    if generation is not None and observed is not None and observed < generation:
        return PredictorState(version, False, "Reconciling", "KServe has not yet seen the latest spec")
    if ready.get("status") == "True":
        return PredictorState(version, True, "Ready", "", deployment_replicas)
    reason = ready.get("reason") or "NotReady"
    return PredictorState(
        version, False, str(reason), str(ready.get("message") or "not Ready yet"), deployment_replicas
    )


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    value = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in conditions if c.get("type") == type_), None)
    changed = old is None or old.get("status") != value
    new = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [new]


@dataclass(frozen=True)
class RegistryOutcome:
    resolved: ResolvedVersion | None
    reason: str  # "Resolved" or a RegistryError reason
    message: str
    resolved_at: str | None = None
    # ferry_common.digest of the resolved version's artifacts (None while unresolved).
    artifact_digest: str | None = None


@dataclass(frozen=True)
class ConditionValue:
    """One condition as a step computes it; ``set_condition`` adds the time and generation."""

    type: str
    status: bool | None
    reason: str
    message: str


def compute_status(
    *,
    md_name: str,
    generation: int | None,
    old_status: dict[str, Any],
    registry: RegistryOutcome,
    decision: Decision,
    predictors: dict[Color, PredictorState],
    now: str,
    conflicts: tuple[str, ...] = (),
    recorded: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole status: four conditions, the colour blocks, history, rollout state and model.
    ``conflicts``: objects under our names that we do not control (Ready says so first).
    ``recorded``: artifact digests by version (kept for the versions still in play)."""
    s = decision.state
    digests = artifact_digests(recorded or {}, decision, registry)
    predictor = predictor_condition(md_name, decision, predictors)
    steps = (
        registry_condition(registry),
        predictor,
        ready_condition(decision, predictor_ready=bool(predictor.status), conflicts=conflicts),
        rollout_condition(decision),
    )
    conditions: list[dict[str, Any]] = list(old_status.get("conditions") or [])
    for c in steps:
        conditions = set_condition(conditions, c.type, c.status, c.reason, c.message, now, generation)
    return {
        "phase": decision.phase.value,
        "observedGeneration": generation,
        "conditions": conditions,
        "history": history_to_status(s.history),
        "rollout": to_status(s),
        "active": (
            colour_block(md_name, predictors, s.active.color, s.active.version, digests) if s.active else None
        ),
        "preview": (
            colour_block(md_name, predictors, s.preview.color, s.preview.version, digests)
            if s.preview
            else None
        ),
        "model": model_block(old_status.get("model") or {}, registry, now),
        "artifactDigests": digests or None,
    }


def artifact_digests(
    recorded: Mapping[str, str], decision: Decision, registry: RegistryOutcome
) -> dict[str, str]:
    """``status.artifactDigests``: the recorded digest of each version still in play (the target,
    active, preview, retiring and pinned ones); a version that left is forgotten, and is digested
    afresh if it ever comes back."""
    s = decision.state
    wanted = {
        registry.resolved.version if registry.resolved else None,
        s.active.version if s.active else None,
        s.preview.version if s.preview else None,
        s.retiring.version if s.retiring else None,
        s.pin,
    }
    return {v: d for v, d in sorted(recorded.items()) if v in wanted}


def registry_condition(registry: RegistryOutcome) -> ConditionValue:
    return ConditionValue(
        "RegistryResolved", registry.resolved is not None, registry.reason, registry.message
    )


def predictor_condition(
    md_name: str, decision: Decision, predictors: dict[Color, PredictorState]
) -> ConditionValue:
    """Ready when the active colour serves its version; a failing preview is named as well."""
    s = decision.state
    active_state = predictors.get(s.active.color) if s.active else None
    if s.active is None:
        ready, reason, message = False, "NoActiveColour", "no colour serves yet"
    elif active_state is None or not active_state.ready or active_state.version != s.active.version:
        st = active_state or PredictorState(None, False, "Absent", "no InferenceService")
        ready, reason, message = False, st.reason, f"{isvc_name(md_name, s.active.color)}: {st.message}"
    else:
        ready, reason, message = True, "Ready", f"{isvc_name(md_name, s.active.color)} is Ready"
    if s.preview is not None:
        pst = predictors.get(s.preview.color)
        if pst is not None and pst.failing:
            message += f"; preview {isvc_name(md_name, s.preview.color)} failing: {pst.reason}: {pst.message}"
    return ConditionValue("PredictorReady", ready, reason, message)


def ready_condition(
    decision: Decision, *, predictor_ready: bool, conflicts: tuple[str, ...] = ()
) -> ConditionValue:
    """Ready: a colour is routed to and its predictor is Ready; else the reason is the phase.
    An object under our names that someone else controls comes first: nothing converges until it
    is renamed or deleted, so that is what a reader must see."""
    if conflicts:
        return ConditionValue("Ready", False, NAME_CONFLICT, "; ".join(conflicts))
    serving = decision.serving is not None and predictor_ready
    reason = "Serving" if serving else decision.phase.value
    return ConditionValue("Ready", serving, reason, decision.message)


def rollout_condition(decision: Decision) -> ConditionValue:
    """RolloutInProgress while a preview exists; afterwards Idle, or Aborted with the reason."""
    s = decision.state
    active = s.preview is not None
    reason = decision.phase.value if active else ("Aborted" if s.abort_reason else "Idle")
    message = decision.message if active or s.abort_reason else ""
    return ConditionValue("RolloutInProgress", active, reason, message)


def colour_block(
    md_name: str,
    predictors: dict[Color, PredictorState],
    color: Color,
    version: str,
    digests: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``status.active`` / ``status.preview``: ready only when that colour runs that version."""
    st = predictors.get(color)
    block: dict[str, Any] = {
        "color": color.value,
        "modelVersion": version,
        "inferenceService": isvc_name(md_name, color),
        "ready": bool(st and st.ready and st.version == version),
    }
    if st and st.replicas is not None:
        block["replicas"] = st.replicas
    if digests and version in digests:
        block["artifactDigest"] = digests[version]
    return block


def model_block(old_model: dict[str, Any], registry: RegistryOutcome, now: str) -> dict[str, Any] | None:
    """``status.model``: the resolution, whose ``resolvedAt`` moves only when the answer changes."""
    if registry.resolved is None:
        return old_model or None  # the last good resolution stays visible during an outage
    r = registry.resolved
    same = old_model.get("version") == r.version and old_model.get("uri") == r.uri
    model = {
        "uri": r.uri,
        "version": r.version,
        "runId": r.run_id,
        "source": r.source,
        "resolvedAt": old_model.get("resolvedAt") if same else (registry.resolved_at or now),
    }
    return {k: v for k, v in model.items() if v is not None}
