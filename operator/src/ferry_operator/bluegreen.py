"""The blue-green rollout state machine: a pure function of (state, policy, observation).

``decide()`` is called on every reconcile with what the shell observed (the registry's target
version, each colour's readiness, a smoke-test result, a human command) and returns the next
state plus everything the shell must converge to: which colours exist with which version and
replica floor, where the two Services point, whether to run a smoke test, and the events to post.

Design rules that make the invariants hold:
- Routing is *derived*, never stored: ``<name>`` points at the active colour if it is Ready, else
  at the retiring (previous) colour if that is Ready, else nowhere. So a restart cannot leave a
  stale selector, and the Service can never point at a colour that is not Ready.
- A colour becomes active only by promotion (preview Ready and verified) or by an instant
  rollback to the retiring colour while it is Ready.
- At most two colours: the active one plus either the preview or the retiring one; starting a
  rollout reuses the idle colour and so ends the rollback window.
- Every rollout (``RolloutStarted``) ends in exactly one of Promoted, Aborted or Superseded.
- The whole state is JSON (``to_status``/``from_status``), persisted in ``status.rollout``, so the
  operator continues from status after a restart at any point.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from ferry_common.timefmt import format_time, parse_time

from ferry_operator.resource import Color, Phase

Smoke = Literal["pending", "passed", "failed"]


class Verb(StrEnum):
    promote = "promote"
    abort = "abort"
    rollback = "rollback"
    retry = "retry"


@dataclass(frozen=True)
class Active:
    color: Color
    version: str
    since: float


@dataclass(frozen=True)
class Preview:
    color: Color
    version: str
    since: float  # rollout start: the progress deadline counts from here
    min_replicas: int  # the HPA floor for the rollout: the active colour's replicas at its start
    smoke: Smoke = "pending"
    smoke_message: str = ""


@dataclass(frozen=True)
class Retiring:
    color: Color
    version: str
    until: float  # end of the instant-rollback window


@dataclass(frozen=True)
class HistoryItem:
    action: Literal["Promoted", "Aborted", "RolledBack", "Superseded"]
    from_version: str | None
    to_version: str | None
    color: Color | None
    reason: str
    at: float


@dataclass(frozen=True)
class State:
    active: Active | None = None
    preview: Preview | None = None
    retiring: Retiring | None = None
    # A registry target a human or a failed check refused: not retried until the target changes.
    rejected: str | None = None
    # The version a rollback asked for; serves instead of the target while the target is rejected.
    pin: str | None = None
    promote_requested: bool = False
    last_command: str | None = None
    abort_reason: str | None = None
    history: tuple[HistoryItem, ...] = ()


@dataclass(frozen=True)
class Policy:
    auto_promote: bool = True
    smoke_enabled: bool = True
    scale_down_delay: float = 300.0
    progress_deadline: float = 600.0
    history_limit: int = 10
    min_replicas: int = 1
    max_replicas: int = 3


@dataclass(frozen=True)
class SmokeResult:
    color: Color
    version: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class Command:
    id: str  # the annotation's full value: a new value is a new command, a repeated one is not
    verb: Verb


@dataclass(frozen=True)
class Observation:
    now: float
    target: str | None  # the registry's resolved version; None while it cannot be resolved
    # colour -> the model version it is Ready with (absent: not Ready). Version-aware, so a colour
    # being replaced is never mistaken for its successor.
    ready: dict[Color, str] = field(default_factory=dict)
    active_replicas: int | None = None
    smoke: SmokeResult | None = None
    command: Command | None = None


@dataclass(frozen=True)
class ColourPlan:
    version: str
    min_replicas: int
    role: Literal["active", "preview", "retiring"]


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    state: State
    phase: Phase
    message: str
    serving: Color | None
    preview_route: Color | None
    colours: dict[Color, ColourPlan]
    run_smoke: Color | None
    events: tuple[Event, ...]


def parse_command(value: str | None) -> Command | None:
    """``ferry.dev/command: <verb>[@<anything unique>]``; unknown verbs are ignored."""
    if not value:
        return None
    verb = value.split("@", 1)[0].strip().lower()
    try:
        return Command(id=value, verb=Verb(verb))
    except ValueError:
        return None


class _Run:
    """Accumulates the state and events of one ``decide`` call."""

    def __init__(self, state: State, policy: Policy, obs: Observation) -> None:
        self.s = state
        self.p = policy
        self.o = obs
        self.events: list[Event] = []

    def ready(self, color: Color, version: str) -> bool:
        return _ready(self.o, color, version)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def record(self, item: HistoryItem) -> None:
        history = (*self.s.history, item)[-self.p.history_limit :]
        self.s = replace(self.s, history=history)

    def end_preview(self, action: Literal["Aborted", "Superseded"], reason: str, reject: bool) -> None:
        p = self.s.preview
        assert p is not None
        active_version = self.s.active.version if self.s.active else None
        self.record(HistoryItem(action, active_version, p.version, p.color, reason, self.o.now))
        self.s = replace(
            self.s,
            preview=None,
            promote_requested=False,
            rejected=p.version if reject else self.s.rejected,
            abort_reason=reason if action == "Aborted" else self.s.abort_reason,
        )
        self.event(
            action, f"preview {p.color} (version {p.version}) {action.lower()}: {reason}", warning=reject
        )

    def start_preview(self, version: str) -> None:
        active = self.s.active
        color = active.color.other if active else Color.blue
        floor = self.p.min_replicas
        if active is not None and self.o.active_replicas is not None:
            floor = max(floor, self.o.active_replicas)
        floor = min(floor, self.p.max_replicas)
        self.s = replace(
            self.s,
            preview=Preview(color, version, self.o.now, floor),
            retiring=None,  # the idle colour is needed: the rollback window ends here
            abort_reason=None,
        )
        self.event("RolloutStarted", f"deploying version {version} as {color} (min replicas {floor})")

    def promote(self) -> None:
        p = self.s.preview
        assert p is not None
        old = self.s.active
        self.record(HistoryItem("Promoted", old.version if old else None, p.version, p.color, "", self.o.now))
        retiring = None
        if old is not None and self.p.scale_down_delay > 0:
            retiring = Retiring(old.color, old.version, self.o.now + self.p.scale_down_delay)
        self.s = replace(
            self.s,
            active=Active(p.color, p.version, self.o.now),
            preview=None,
            retiring=retiring,
            promote_requested=False,
            abort_reason=None,
        )
        self.event("Promoted", f"version {p.version} ({p.color}) now serves")

    def command(self, cmd: Command) -> None:
        self.s = replace(self.s, last_command=cmd.id)
        if cmd.verb is Verb.promote:
            preview = self.s.preview
            if preview is None:
                self.event("CommandIgnored", "promote: no rollout in progress", warning=True)
            else:
                self.s = replace(self.s, promote_requested=True)
                self.event("PromoteRequested", f"promotion of version {preview.version} requested")
        elif cmd.verb is Verb.abort:
            if self.s.preview is None:
                self.event("CommandIgnored", "abort: no rollout in progress", warning=True)
            else:
                self.end_preview("Aborted", "aborted by a human", reject=True)
        elif cmd.verb is Verb.retry:
            self.s = replace(self.s, rejected=None, pin=None, abort_reason=None)
            self.event("RetryRequested", "refused versions cleared; the registry target will be rolled out")
        elif cmd.verb is Verb.rollback:
            self.rollback()

    def rollback(self) -> None:
        active = self.s.active
        retiring = self.s.retiring
        previous = retiring.version if retiring else _previous_version(self.s)
        if active is None or previous is None or previous == active.version:
            self.event("CommandIgnored", "rollback: no previous version to return to", warning=True)
            return
        if self.s.preview is not None:
            self.end_preview("Superseded", "superseded by a rollback", reject=False)
        self.record(
            HistoryItem("RolledBack", active.version, previous, None, "requested by a human", self.o.now)
        )
        self.s = replace(self.s, rejected=active.version, pin=previous, abort_reason=None)
        if retiring is not None and self.ready(retiring.color, retiring.version):
            # Instant: the previous colour is still up and Ready; only the selector moves.
            self.s = replace(
                self.s,
                active=Active(retiring.color, retiring.version, self.o.now),
                retiring=Retiring(active.color, active.version, self.o.now + self.p.scale_down_delay)
                if self.p.scale_down_delay > 0
                else None,
            )
            self.event("RolledBack", f"instant rollback to version {previous} ({retiring.color})")
        else:
            self.event(
                "RolledBack", f"previous version {previous} is no longer running: rolling it out again"
            )

    def want(self) -> str | None:
        target = self.o.target
        if target is None:
            return None
        if self.s.rejected is not None and target != self.s.rejected:
            # The registry moved on: a new intent, earlier refusals (and the abort they came
            # from) no longer apply; moved back to what serves, the deployment is Stable again.
            self.s = replace(self.s, rejected=None, pin=None, abort_reason=None)
        if target == self.s.rejected:
            return self.s.pin
        return target

    def steer(self, want: str | None) -> None:
        if want is None:
            return
        s = self.s
        if s.preview is not None and s.preview.version != want:
            self.end_preview("Superseded", f"version {want} superseded {s.preview.version}", reject=False)
            if self.s.active is not None and self.s.active.version == want:
                return
            self.start_preview(want)
        elif s.preview is None and (s.active is None or s.active.version != want):
            self.start_preview(want)

    def progress(self) -> Color | None:
        """Advance the preview; returns the colour to smoke-test now, if any."""
        p = self.s.preview
        if p is None:
            return None
        if p.smoke == "failed":
            self.end_preview("Aborted", f"smoke test failed: {p.smoke_message}", reject=True)
            return None
        ready = self.ready(p.color, p.version)
        verified = ready and (p.smoke == "passed" or not self.p.smoke_enabled)
        # The deadline bounds the machine's work (deploy + verify), not a human's wait to promote.
        if not verified and self.o.now - p.since > self.p.progress_deadline:
            deadline = int(self.p.progress_deadline)
            self.end_preview("Aborted", f"progress deadline of {deadline}s exceeded", reject=True)
            return None
        if not ready:
            if p.smoke == "passed":  # readiness flapped after verification: verify again
                self.s = replace(self.s, preview=replace(p, smoke="pending", smoke_message=""))
            return None
        if not verified:
            return p.color
        if self.s.active is None or self.p.auto_promote or self.s.promote_requested:
            self.promote()
        return None

    def apply_smoke(self, result: SmokeResult) -> None:
        p = self.s.preview
        if p is None or (p.color, p.version) != (result.color, result.version) or p.smoke != "pending":
            return  # a result for a preview that has since changed: stale, ignore
        smoke: Smoke = "passed" if result.passed else "failed"
        self.s = replace(self.s, preview=replace(p, smoke=smoke, smoke_message=result.message))
        if result.passed:
            self.event("SmokeTestPassed", f"version {p.version} ({p.color}) answered every smoke request")
        else:
            self.event("SmokeTestFailed", f"version {p.version} ({p.color}): {result.message}", warning=True)

    def expire_retiring(self) -> None:
        r = self.s.retiring
        if r is not None and self.o.now >= r.until:
            self.s = replace(self.s, retiring=None)
            self.event("ScaledDown", f"rollback window over: removing {r.color} (version {r.version})")


def _previous_version(state: State) -> str | None:
    """The version that served before the active one, from the promotion history."""
    if state.active is None:
        return None
    for item in reversed(state.history):
        if item.action == "Promoted" and item.to_version == state.active.version:
            return item.from_version
    return None


def decide(state: State, policy: Policy, obs: Observation) -> Decision:
    run = _Run(state, policy, obs)
    if obs.smoke is not None:
        run.apply_smoke(obs.smoke)
    if obs.command is not None and obs.command.id != state.last_command:
        run.command(obs.command)
    run.expire_retiring()
    want = run.want()
    run.steer(want)
    smoke_now = run.progress()
    s = run.s
    serving = _serving(s, obs)
    preview_route = _preview_route(s, obs, serving)
    phase, message = _phase(s, policy, obs, want, smoke_now)
    return Decision(
        state=s,
        phase=phase,
        message=message,
        serving=serving,
        preview_route=preview_route,
        colours=_colours(s, policy),
        run_smoke=smoke_now,
        events=tuple(run.events),
    )


def _ready(obs: Observation, color: Color, version: str) -> bool:
    return obs.ready.get(color) == version


def _serving(s: State, obs: Observation) -> Color | None:
    if s.active is not None and _ready(obs, s.active.color, s.active.version):
        return s.active.color
    if s.retiring is not None and _ready(obs, s.retiring.color, s.retiring.version):
        return s.retiring.color  # the previous, verified version keeps serving while the new one is not Ready
    return None


def _preview_route(s: State, obs: Observation, serving: Color | None) -> Color | None:
    if s.preview is not None:
        return s.preview.color if _ready(obs, s.preview.color, s.preview.version) else None
    return serving  # no rollout: preview callers reach what serves


def _colours(s: State, policy: Policy) -> dict[Color, ColourPlan]:
    out: dict[Color, ColourPlan] = {}
    if s.active is not None:
        out[s.active.color] = ColourPlan(s.active.version, policy.min_replicas, "active")
    if s.preview is not None:
        out[s.preview.color] = ColourPlan(s.preview.version, s.preview.min_replicas, "preview")
    if s.retiring is not None:
        out[s.retiring.color] = ColourPlan(s.retiring.version, policy.min_replicas, "retiring")
    return out


def _phase(
    s: State, policy: Policy, obs: Observation, want: str | None, smoke_now: Color | None
) -> tuple[Phase, str]:
    p = s.preview
    if p is not None:
        if not _ready(obs, p.color, p.version):
            return Phase.Deploying, f"waiting for version {p.version} ({p.color}) to become Ready"
        if smoke_now is not None or (p.smoke == "pending" and policy.smoke_enabled):
            if s.promote_requested:
                return Phase.Promoting, f"promotion requested; verifying version {p.version} first"
            return Phase.Verifying, f"smoke-testing version {p.version} ({p.color})"
        return Phase.AwaitingPromotion, f"version {p.version} verified; `kubectl ferry promote` to switch"
    a = s.active
    if a is None:
        if s.abort_reason is not None:
            return Phase.Failed, f"first rollout failed: {s.abort_reason}"
        return Phase.Pending, "waiting for the registry to resolve a version" if want is None else "starting"
    if not _ready(obs, a.color, a.version):
        return Phase.Degraded, f"active version {a.version} ({a.color}) is not Ready"
    if s.abort_reason is not None:
        return Phase.Degraded, f"rollout aborted ({s.abort_reason}); version {a.version} still serves"
    return Phase.Stable, f"version {a.version} ({a.color}) serves"


# ---- persistence in status.rollout ----


def _iso(t: float) -> str:
    return format_time(t, "milliseconds")


def _epoch(s: str) -> float:
    return parse_time(s)


def history_to_status(items: tuple[HistoryItem, ...]) -> list[dict[str, Any]]:
    out = []
    for h in items:
        entry: dict[str, Any] = {"action": h.action, "reason": h.reason, "time": _iso(h.at)}
        if h.from_version is not None:
            entry["fromVersion"] = h.from_version
        if h.to_version is not None:
            entry["toVersion"] = h.to_version
        if h.color is not None:
            entry["color"] = h.color.value
        out.append(entry)
    return out


def to_status(s: State) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.active:
        out["active"] = {
            "color": s.active.color.value,
            "version": s.active.version,
            "since": _iso(s.active.since),
        }
    if s.preview:
        p = s.preview
        out["preview"] = {
            "color": p.color.value,
            "version": p.version,
            "since": _iso(p.since),
            "minReplicas": p.min_replicas,
            "smoke": p.smoke,
            "smokeMessage": p.smoke_message,
        }
    if s.retiring:
        out["retiring"] = {
            "color": s.retiring.color.value,
            "version": s.retiring.version,
            "until": _iso(s.retiring.until),
        }
    for key, value in (
        ("rejected", s.rejected),
        ("pin", s.pin),
        ("lastCommand", s.last_command),
        ("abortReason", s.abort_reason),
    ):
        if value is not None:
            out[key] = value
    if s.promote_requested:
        out["promoteRequested"] = True
    return out


def from_status(rollout: dict[str, Any] | None, history: list[dict[str, Any]] | None = None) -> State:
    r = rollout or {}
    a, p, t = r.get("active"), r.get("preview"), r.get("retiring")
    items = tuple(
        HistoryItem(
            action=h["action"],
            from_version=h.get("fromVersion"),
            to_version=h.get("toVersion"),
            color=Color(h["color"]) if h.get("color") else None,
            reason=h.get("reason", ""),
            at=_epoch(h["time"]),
        )
        for h in history or []
    )
    return State(
        active=Active(Color(a["color"]), a["version"], _epoch(a["since"])) if a else None,
        preview=Preview(
            Color(p["color"]),
            p["version"],
            _epoch(p["since"]),
            int(p["minReplicas"]),
            p.get("smoke", "pending"),
            p.get("smokeMessage", ""),
        )
        if p
        else None,
        retiring=Retiring(Color(t["color"]), t["version"], _epoch(t["until"])) if t else None,
        rejected=r.get("rejected"),
        pin=r.get("pin"),
        promote_requested=bool(r.get("promoteRequested", False)),
        last_command=r.get("lastCommand"),
        abort_reason=r.get("abortReason"),
        history=items,
    )
