"""Pure status computation: what KServe reports, folded with the rollout decision into our status.

Conditions follow metav1.Condition: ``lastTransitionTime`` moves only when ``status`` changes,
so a steady resource writes an identical status and the second reconcile pass is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry_operator.bluegreen import Decision, history_to_status, to_status
from ferry_operator.builders import LABEL_VERSION, isvc_name
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


def compute_status(
    *,
    md_name: str,
    generation: int | None,
    old_status: dict[str, Any],
    registry: RegistryOutcome,
    decision: Decision,
    predictors: dict[Color, PredictorState],
    now: str,
) -> dict[str, Any]:
    s = decision.state
    conditions: list[dict[str, Any]] = list(old_status.get("conditions") or [])
    conditions = set_condition(
        conditions,
        "RegistryResolved",
        registry.resolved is not None,
        registry.reason,
        registry.message,
        now,
        generation,
    )
    active_state = predictors.get(s.active.color) if s.active else None
    if s.active is None:
        p_ready, p_reason, p_msg = False, "NoActiveColour", "no colour serves yet"
    elif active_state is None or not active_state.ready or active_state.version != s.active.version:
        st = active_state or PredictorState(None, False, "Absent", "no InferenceService")
        p_ready, p_reason, p_msg = False, st.reason, f"{isvc_name(md_name, s.active.color)}: {st.message}"
    else:
        p_ready, p_reason, p_msg = True, "Ready", f"{isvc_name(md_name, s.active.color)} is Ready"
    if s.preview is not None:
        pst = predictors.get(s.preview.color)
        if pst is not None and pst.failing:
            p_msg += f"; preview {isvc_name(md_name, s.preview.color)} failing: {pst.reason}: {pst.message}"
    conditions = set_condition(conditions, "PredictorReady", p_ready, p_reason, p_msg, now, generation)
    serving_ok = decision.serving is not None
    conditions = set_condition(
        conditions,
        "Ready",
        serving_ok and p_ready,
        decision.phase.value if not (serving_ok and p_ready) else "Serving",
        decision.message,
        now,
        generation,
    )
    rollout_active = s.preview is not None
    conditions = set_condition(
        conditions,
        "RolloutInProgress",
        rollout_active,
        decision.phase.value if rollout_active else ("Aborted" if s.abort_reason else "Idle"),
        decision.message if rollout_active or s.abort_reason else "",
        now,
        generation,
    )

    def colour_block(color: Color, version: str) -> dict[str, Any]:
        st = predictors.get(color)
        block: dict[str, Any] = {
            "color": color.value,
            "modelVersion": version,
            "inferenceService": isvc_name(md_name, color),
            "ready": bool(st and st.ready and st.version == version),
        }
        if st and st.replicas is not None:
            block["replicas"] = st.replicas
        return block

    status: dict[str, Any] = {
        "phase": decision.phase.value,
        "observedGeneration": generation,
        "conditions": conditions,
        "history": history_to_status(s.history),
        "rollout": to_status(s),
        "active": colour_block(s.active.color, s.active.version) if s.active else None,
        "preview": colour_block(s.preview.color, s.preview.version) if s.preview else None,
    }
    old_model = old_status.get("model") or {}
    if registry.resolved is not None:
        r = registry.resolved
        same = old_model.get("version") == r.version and old_model.get("uri") == r.uri
        status["model"] = {
            "uri": r.uri,
            "version": r.version,
            "runId": r.run_id,
            "source": r.source,
            "resolvedAt": old_model.get("resolvedAt") if same else (registry.resolved_at or now),
        }
        status["model"] = {k: v for k, v in status["model"].items() if v is not None}
    else:
        status["model"] = old_model or None  # the last good resolution stays visible during an outage
    return status
