"""What ``kubectl ferry`` shows, as pure functions of the resource: tables for people, and the same
data as JSON or YAML for scripts (``-o json|yaml``).

The machine-readable views have stable keys: every key is always present (``null`` when the
status does not say), times are RFC 3339 as the API server wrote them, never ages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from ferry_common.timefmt import parse_time

MACHINE_FORMATS = ("json", "yaml")
# `table` is the default; `wide` is accepted because kubectl users type it (the tables are wide).
OUTPUT_FORMATS = ("table", "wide", *MACHINE_FORMATS)

RECENT_EVENTS = 8


def age(stamp: str | None, now: datetime) -> str:
    """kubectl's AGE: ``45s``, ``12m``, ``5h``, ``3d``; ``-`` when there is no time."""
    if not stamp:
        return "-"
    try:
        # Back to a datetime (exact to the microsecond) so whole seconds subtract exactly.
        then = datetime.fromtimestamp(parse_time(stamp), UTC)
    except ValueError:
        return stamp
    s = int((now - then).total_seconds())
    if s < 120:
        return f"{max(s, 0)}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def dump(data: Any, fmt: str) -> str:
    """``data`` as ``json`` (indented, as kubectl prints it) or ``yaml``."""
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
    raise ValueError(f"output format {fmt!r}: expected one of {', '.join(MACHINE_FORMATS)}")


# ---- the data ---------------------------------------------------------------------------------


def model_ref(md: dict[str, Any]) -> str:
    """The spec's model as users write it: ``name@alias`` (followed) or ``name/version`` (pinned)."""
    model = (md.get("spec") or {}).get("model") or {}
    if model.get("alias"):
        return f"{model.get('name')}@{model['alias']}"
    return f"{model.get('name')}/{model.get('version')}"


def _colour(block: dict[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    return {
        "color": block.get("color"),
        "version": block.get("modelVersion"),
        "inferenceService": block.get("inferenceService"),
        "ready": bool(block.get("ready")),
        "replicas": block.get("replicas"),
    }


def _condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next((c for c in st.get("conditions") or [] if c.get("type") == type_), {})
    return found


def smoke_verdict(md: dict[str, Any]) -> dict[str, Any] | None:
    """The preview's verification: ``pending``, ``passed``, ``failed`` or ``disabled`` (by the
    spec); ``None`` while no rollout is in progress. The last abort's reason is in ``message``
    of the Ready condition, not here."""
    st = md.get("status") or {}
    preview = (st.get("rollout") or {}).get("preview")
    if not preview:
        return None
    smoke_spec = ((md.get("spec") or {}).get("rollout") or {}).get("smokeTest") or {}
    if smoke_spec.get("enabled") is False:
        return {"verdict": "disabled", "message": ""}
    return {"verdict": preview.get("smoke") or "pending", "message": preview.get("smokeMessage") or ""}


def summary(md: dict[str, Any]) -> dict[str, Any]:
    """One ModelDeployment as ``list`` shows it (a row), and the head of ``status``."""
    meta = md.get("metadata") or {}
    model = (md.get("spec") or {}).get("model") or {}
    st = md.get("status") or {}
    resolved = st.get("model") or {}
    ready = _condition(st, "Ready")
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "model": {
            "name": model.get("name"),
            "alias": model.get("alias"),
            "version": model.get("version"),
            "resolvedVersion": resolved.get("version"),
            "runId": resolved.get("runId"),
        },
        "phase": st.get("phase"),
        "ready": ready.get("status"),
        "message": ready.get("message") or "",
        "active": _colour(st.get("active")),
        "preview": _colour(st.get("preview")),
        "smoke": smoke_verdict(md),
        "created": meta.get("creationTimestamp"),
    }


def status_view(
    md: dict[str, Any], routes: dict[str, str | None], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Everything ``status`` shows: the summary, where the Services point, conditions, events."""
    st = md.get("status") or {}
    out = summary(md)
    out["services"] = dict(routes)
    out["conditions"] = [
        {
            "type": c.get("type"),
            "status": c.get("status"),
            "reason": c.get("reason") or "",
            "message": c.get("message") or "",
            "lastTransitionTime": c.get("lastTransitionTime"),
        }
        for c in st.get("conditions") or []
    ]
    out["events"] = [
        {
            "time": _event_time(e),
            "type": e.get("type"),
            "reason": e.get("reason"),
            "message": e.get("message") or "",
        }
        for e in recent_events(events)
    ]
    return out


def _event_time(e: dict[str, Any]) -> str | None:
    stamp: str | None = e.get("lastTimestamp") or e.get("eventTime")
    return stamp


def recent_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: _event_time(e) or "")[-RECENT_EVENTS:]


def history_view(md: dict[str, Any]) -> dict[str, Any]:
    """``history``'s data: promotions, aborts and rollbacks, newest first (as the table)."""
    meta = md.get("metadata") or {}
    entries = (md.get("status") or {}).get("history") or []
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "history": [
            {
                "time": h.get("time"),
                "action": h.get("action"),
                "fromVersion": h.get("fromVersion"),
                "toVersion": h.get("toVersion"),
                "color": h.get("color"),
                "reason": h.get("reason") or "",
            }
            for h in reversed(entries)
        ],
    }


def list_view(mds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``list``'s data: one summary per ModelDeployment, by namespace then name."""
    rows = [summary(md) for md in mds]
    return {"items": sorted(rows, key=lambda r: (r["namespace"] or "", r["name"] or ""))}


# ---- the tables -------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "   ".join(str(cell).ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


LIST_COLUMNS = ("NAME", "MODEL", "VERSION", "COLOR", "PHASE", "READY", "PREVIEW", "SMOKE", "AGE")


def render_list(view: dict[str, Any], *, all_namespaces: bool, now: datetime | None = None) -> str:
    """``kubectl get md -o wide``'s columns plus the rollout: preview version and smoke verdict;
    a NAMESPACE column first with ``-A``."""
    now = now or datetime.now(UTC)
    rows = []
    for r in view["items"]:
        active, preview, smoke = r["active"] or {}, r["preview"] or {}, r["smoke"] or {}
        model = r["model"]
        ref = f"{model['name']}@{model['alias']}" if model["alias"] else f"{model['name']}/{model['version']}"
        row = [
            r["name"],
            ref,
            active.get("version") or "-",
            active.get("color") or "-",
            r["phase"] or "Unknown",
            r["ready"] or "Unknown",
            f"{preview['version']} ({preview['color']})" if preview else "-",
            smoke.get("verdict") or "-",
            age(r["created"], now),
        ]
        rows.append([r["namespace"], *row] if all_namespaces else row)
    header = ["NAMESPACE", *LIST_COLUMNS] if all_namespaces else list(LIST_COLUMNS)
    return table(header, rows)


def _colour_line(label: str, block: dict[str, Any] | None) -> str:
    if not block:
        return f"{label:<9} -"
    ready = "ready" if block.get("ready") else "not ready"
    replicas = block.get("replicas")
    reps = f"  replicas {replicas}" if replicas is not None else ""
    return (
        f"{label:<9} {block['color']:<6} version {block['modelVersion']:<5} "
        f"{block['inferenceService']:<24} {ready}{reps}"
    )


def render_status(
    md: dict[str, Any],
    routes: dict[str, str | None],
    events: list[dict[str, Any]],
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    meta, st = md["metadata"], md.get("status") or {}
    resolved = st.get("model") or {}
    lines = [f"ModelDeployment {meta['namespace']}/{meta['name']}"]
    target = f" -> version {resolved['version']}" if resolved.get("version") else " (not resolved)"
    run = f" (run {resolved['runId'][:12]})" if resolved.get("runId") else ""
    lines.append(f"Model:    {model_ref(md)}{target}{run}")
    ready = _condition(st, "Ready")
    lines.append(f"Phase:    {st.get('phase', 'Unknown')}  {ready.get('message', '')}".rstrip())
    lines.append(_colour_line("Active:", st.get("active")))
    lines.append(_colour_line("Preview:", st.get("preview")))
    smoke = smoke_verdict(md)
    if smoke is not None:
        lines.append(f"Smoke:    {smoke['verdict']}  {smoke['message']}".rstrip())
    route_text = ", ".join(f"{svc} -> {color or 'nowhere'}" for svc, color in routes.items())
    lines.append(f"Services: {route_text}")
    lines.append("Conditions:")
    for c in st.get("conditions", []):
        lines.append(
            f"  {c['type']:<18} {c['status']:<7} {c.get('reason', ''):<22} "
            f"{age(c.get('lastTransitionTime'), now):>4}  {c.get('message', '')}".rstrip()
        )
    if events:
        lines.append("Recent events:")
        for e in recent_events(events):
            when = age(_event_time(e), now)
            lines.append(
                f"  {when:>4}  {e.get('type', ''):<7} {e.get('reason', ''):<18} {e.get('message', '')}"
            )
    return "\n".join(lines)


def render_history(md: dict[str, Any], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    history = (md.get("status") or {}).get("history", [])
    if not history:
        return "no promotions or aborts yet"
    lines = [f"{'AGE':>5}  {'ACTION':<11} {'FROM':<6} {'TO':<6} {'COLOR':<6} REASON"]
    for h in reversed(history):
        lines.append(
            f"{age(h.get('time'), now):>5}  {h['action']:<11} {h.get('fromVersion') or '-':<6} "
            f"{h.get('toVersion') or '-':<6} {h.get('color') or '-':<6} {h.get('reason', '')}".rstrip()
        )
    return "\n".join(lines)


def command_refused(verb: str, before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Why the operator ignored ``verb`` (it posts a CommandIgnored event and changes nothing), or
    ``None`` when it took effect: judged from the status it wrote before that event, so with no
    race. ``before`` is the resource read just before the command was written."""
    old, new = before.get("status") or {}, after.get("status") or {}

    def newest(st: dict[str, Any]) -> dict[str, Any] | None:
        entries = st.get("history") or []
        return entries[-1] if entries else None

    added = newest(new) if newest(new) != newest(old) else None
    if verb == "promote":
        if (new.get("rollout") or {}).get("promoteRequested") or (
            added and added.get("action") == "Promoted"
        ):
            return None
        return "promote: no rollout in progress"
    if verb == "abort":
        return None if added and added.get("action") == "Aborted" else "abort: no rollout in progress"
    if verb == "rollback":
        if added and added.get("action") == "RolledBack":
            return None
        return "rollback: no previous version to return to"
    return None  # retry always applies: it clears the refused versions
