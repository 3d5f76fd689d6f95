"""The blue-green state machine: every path by example, then invariants over random histories."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ferry_operator.bluegreen import (
    Command,
    Decision,
    Observation,
    Policy,
    SmokeResult,
    State,
    Verb,
    decide,
    from_status,
    history_to_status,
    parse_command,
    to_status,
)
from ferry_operator.resource import Color, Phase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T0 = 1_700_000_000.0
BLUE, GREEN = Color.blue, Color.green


@dataclass
class World:
    """A fake cluster that obeys the decisions: colours appear not-Ready and become Ready on demand.

    Each ``step`` checks the invariants between the previous and the next decision.
    """

    policy: Policy = field(default_factory=Policy)
    state: State = field(default_factory=State)
    now: float = T0
    target: str | None = "1"
    active_replicas: int | None = 2  # what the HPA has the active colour at now
    deployed: dict[Color, str] = field(default_factory=dict)
    ready: dict[Color, str] = field(default_factory=dict)
    smoke_due: tuple[Color, str] | None = None
    last: Decision | None = None
    commands: int = 0
    started: int = 0
    ended: int = 0
    verified: set[tuple[Color, str]] = field(default_factory=set)

    def step(self, smoke: bool | None = None, verb: Verb | None = None, message: str = "boom") -> Decision:
        result = None
        if smoke is not None and self.smoke_due is not None:
            color, version = self.smoke_due
            result = SmokeResult(color, version, smoke, "" if smoke else message)
        command = None
        if verb is not None:
            self.commands += 1
            command = Command(f"{verb.value}@{self.commands}", verb)
        obs = Observation(self.now, self.target, dict(self.ready), self.active_replicas, result, command)
        before = self.state
        d = decide(before, self.policy, obs)
        check_invariants(self, before, obs, d)
        self.state, self.last = d.state, d
        for e in d.events:
            self.started += e.reason == "RolloutStarted"
            self.ended += e.reason in ("Promoted", "Aborted", "Superseded")
        # Converge like the shell: a colour whose version changes is replaced, so starts not Ready.
        for color in list(self.deployed):
            if color not in d.colours or d.colours[color].version != self.deployed[color]:
                del self.deployed[color]
                self.ready.pop(color, None)
        for color, plan in d.colours.items():
            self.deployed.setdefault(color, plan.version)
        self.smoke_due = (d.run_smoke, d.colours[d.run_smoke].version) if d.run_smoke else None
        return d

    def make_ready(self, *colors: Color) -> None:
        for c in colors or tuple(self.deployed):
            if c in self.deployed:
                self.ready[c] = self.deployed[c]

    def unready(self, color: Color) -> None:
        self.ready.pop(color, None)

    def restart(self) -> None:
        """The operator dies and comes back: only what status holds survives."""
        history = history_to_status(self.state.history)
        self.state = from_status(to_status(self.state), history)


def check_invariants(w: World, before: State, obs: Observation, d: Decision) -> None:
    s = d.state
    # The active Service never points at a colour that is not Ready (with the version it should serve).
    if d.serving is not None:
        assert obs.ready.get(d.serving) in {x.version for x in (s.active, s.retiring) if x is not None}
    # ...and always points at a Ready, verified colour when one exists.
    if s.active is not None and obs.ready.get(s.active.color) == s.active.version:
        assert d.serving == s.active.color
    elif s.retiring is not None and obs.ready.get(s.retiring.color) == s.retiring.version:
        assert d.serving == s.retiring.color
    else:
        assert d.serving is None
    # At most two colours; the active and the preview never share one.
    assert len(d.colours) <= 2
    if s.active and s.preview:
        assert s.active.color != s.preview.color
    if s.preview and s.retiring:
        raise AssertionError("preview and retiring colour at once")
    # A colour becomes active only by promotion of a Ready, verified preview or an instant
    # rollback to a Ready retiring colour.
    if s.active is not None and (before.active is None or before.active != s.active):
        new = (s.active.color, s.active.version)
        promoted = before.preview is not None and (before.preview.color, before.preview.version) == new
        rolled_back = before.retiring is not None and (before.retiring.color, before.retiring.version) == new
        assert promoted or rolled_back, (before, s)
        assert obs.ready.get(new[0]) == new[1]
        if promoted and w.policy.smoke_enabled:
            assert new in w.verified or (
                obs.smoke is not None and obs.smoke.passed and (obs.smoke.color, obs.smoke.version) == new
            )
    if obs.smoke is not None and obs.smoke.passed:
        w.verified.add((obs.smoke.color, obs.smoke.version))
    # Replica floors: a rollout starts the preview at the active colour's replicas (within
    # [min, max]: the HPA minimum raised for the rollout); every other colour, including the
    # preview once promoted, runs at spec's minimum (the floor restored).
    p = w.policy
    for e in d.events:
        if e.reason == "RolloutStarted":
            floor = p.min_replicas
            if before.active is not None and obs.active_replicas is not None:
                floor = max(floor, obs.active_replicas)
            assert e.message.endswith(f"(min replicas {min(floor, p.max_replicas)})"), (e, obs)
    for color, plan in d.colours.items():
        if plan.role == "preview":
            assert s.preview is not None and plan.min_replicas == s.preview.min_replicas
            assert p.min_replicas <= plan.min_replicas <= max(p.min_replicas, p.max_replicas)
        else:
            assert plan.min_replicas == p.min_replicas, (color, plan)
    # The preview route, too, only reaches a Ready colour.
    if d.preview_route is not None:
        assert d.preview_route in obs.ready
    # Restarting at this point loses nothing.
    assert from_status(to_status(s), history_to_status(s.history)) == s


def settle(w: World, steps: int = 60) -> Decision:
    """Everything becomes healthy and time passes: every rollout must end, routing must converge."""
    d = w.step()
    for _ in range(steps):
        w.make_ready()
        d = w.step(smoke=True if w.smoke_due else None)
        w.now += w.policy.progress_deadline / 10
        if d.phase is Phase.AwaitingPromotion:
            break
        if d.state.preview is None and d.state.retiring is None and d.serving is not None:
            break
    return d


# ---- paths, by example ----


def test_first_deployment_goes_live_on_blue_once_ready_and_verified() -> None:
    w = World()
    d = w.step()
    assert d.phase is Phase.Deploying and d.serving is None and d.colours[BLUE].version == "1"
    w.make_ready(BLUE)
    d = w.step()
    assert d.phase is Phase.Verifying and d.run_smoke is BLUE and d.serving is None
    d = w.step(smoke=True)
    assert d.phase is Phase.Stable and d.serving is BLUE and d.state.active is not None
    assert [h.action for h in d.state.history] == ["Promoted"]


def live(policy: Policy | None = None) -> World:
    w = World(policy=policy or Policy())
    w.step()
    w.make_ready()
    w.step()
    w.step(smoke=True)
    assert w.last is not None and w.last.serving is BLUE
    return w


def test_auto_promote_switches_only_after_ready_and_verified() -> None:
    w = live()
    w.target = "2"
    d = w.step()
    assert d.colours[GREEN].version == "2" and d.colours[GREEN].min_replicas == 2  # active's replicas
    assert d.serving is BLUE and d.phase is Phase.Deploying and d.preview_route is None
    w.make_ready(GREEN)
    d = w.step()
    assert d.serving is BLUE and d.phase is Phase.Verifying and d.preview_route is GREEN
    d = w.step(smoke=True)
    assert d.serving is GREEN and d.phase is Phase.Stable
    assert d.colours[BLUE].role == "retiring" and d.colours[GREEN].min_replicas == 1  # floor restored
    w.now += 301
    d = w.step()
    assert set(d.colours) == {GREEN} and any(e.reason == "ScaledDown" for e in d.events)


def test_preview_starts_at_the_active_colours_replicas_and_the_floor_is_restored() -> None:
    w = live(Policy(min_replicas=1, max_replicas=4))
    w.active_replicas = 3  # the HPA scaled blue up
    w.target = "2"
    d = w.step()
    assert d.colours[GREEN].min_replicas == 3 and d.colours[BLUE].min_replicas == 1
    w.make_ready(GREEN)
    w.active_replicas = 1  # blue scales down meanwhile: the rollout's floor stays
    w.restart()  # ...and survives a restart (it lives in status)
    d = w.step()
    assert d.phase is Phase.Verifying and d.colours[GREEN].min_replicas == 3
    d = w.step(smoke=True)
    assert d.serving is GREEN and d.colours[GREEN].min_replicas == 1  # restored once promoted
    w.active_replicas, w.target = 9, "3"  # beyond max: the floor is capped at max
    assert w.step().colours[BLUE].min_replicas == 4


def test_manual_promotion_waits_for_the_command() -> None:
    w = live(Policy(auto_promote=False))
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    d = w.step(smoke=True)
    assert d.phase is Phase.AwaitingPromotion and d.serving is BLUE
    w.now += 100
    assert w.step().phase is Phase.AwaitingPromotion
    d = w.step(verb=Verb.promote)
    assert d.serving is GREEN and d.state.history[-1].action == "Promoted"


def test_promote_before_verification_is_held_until_verified() -> None:
    w = live(Policy(auto_promote=False))
    w.target = "2"
    w.step()
    d = w.step(verb=Verb.promote)
    assert d.serving is BLUE
    w.make_ready(GREEN)
    d = w.step()
    assert d.phase is Phase.Promoting and d.serving is BLUE
    d = w.step(smoke=True)
    assert d.serving is GREEN


def test_failed_smoke_test_aborts_and_is_not_retried() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    d = w.step(smoke=False, message="HTTP 500 from :predict")
    assert d.serving is BLUE and GREEN not in d.colours
    assert d.phase is Phase.Degraded and "HTTP 500" in d.message
    assert d.state.history[-1].action == "Aborted"
    d = w.step()
    assert GREEN not in d.colours  # the refused version is not redeployed in a loop
    w.target = "3"
    d = w.step()
    assert d.colours[GREEN].version == "3"  # a new version is a new intent


def test_alias_moved_back_to_what_serves_after_an_abort_is_stable_again() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    d = w.step(smoke=False, message="HTTP 500 from :predict")
    assert d.phase is Phase.Degraded
    w.target = "1"  # the registry agrees again with the version that serves
    d = w.step()
    assert d.phase is Phase.Stable and d.serving is BLUE and d.state.abort_reason is None
    assert GREEN not in d.colours


def test_progress_deadline_aborts() -> None:
    w = live(Policy(progress_deadline=60))
    w.target = "2"
    w.step()
    w.now += 61
    d = w.step()
    assert d.serving is BLUE and "deadline" in d.message and d.state.history[-1].action == "Aborted"


def test_human_abort_tears_the_preview_down() -> None:
    w = live()
    w.target = "2"
    w.step()
    d = w.step(verb=Verb.abort)
    assert set(d.colours) == {BLUE} and "human" in d.message
    d = w.step(verb=Verb.retry)
    assert d.colours[GREEN].version == "2"


def test_rollback_inside_the_window_is_instant() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    w.step(smoke=True)
    d = w.step(verb=Verb.rollback)
    assert d.serving is BLUE and d.state.active is not None and d.state.active.version == "1"
    assert d.state.history[-1].action == "RolledBack"
    assert w.step().serving is BLUE  # the registry still says 2: not rolled forward again


def test_rollback_outside_the_window_redeploys_the_previous_version() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    w.step(smoke=True)
    w.now += 301
    w.step()
    d = w.step(verb=Verb.rollback)
    assert d.serving is GREEN and d.colours[BLUE].version == "1" and d.colours[BLUE].role == "preview"
    w.make_ready(BLUE)
    w.step()
    d = w.step(smoke=True)
    assert d.serving is BLUE and d.state.active is not None and d.state.active.version == "1"


def test_new_version_mid_rollout_supersedes_the_preview() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    w.target = "3"
    d = w.step()
    assert d.colours[GREEN].version == "3" and d.serving is BLUE
    assert [h.action for h in d.state.history][-1] == "Superseded"


def test_registry_outage_changes_nothing() -> None:
    w = live()
    w.target = None
    d = w.step()
    assert d.serving is BLUE and d.phase is Phase.Stable and set(d.colours) == {BLUE}


def test_active_losing_readiness_falls_back_to_the_retiring_colour() -> None:
    w = live()
    w.target = "2"
    w.step()
    w.make_ready(GREEN)
    w.step()
    w.step(smoke=True)
    w.unready(GREEN)
    d = w.step()
    assert d.serving is BLUE and d.phase is Phase.Degraded


def test_commands_are_parsed_and_applied_once() -> None:
    assert parse_command("promote@2026-11-23T19:00:00Z") == Command(
        "promote@2026-11-23T19:00:00Z", Verb.promote
    )
    assert parse_command("dance@1") is None and parse_command(None) is None
    w = live()
    cmd = Command("abort@1", Verb.abort)
    w.target = "2"
    w.step()
    d = decide(w.state, w.policy, Observation(w.now, "2", dict(w.ready), 1, None, cmd))
    assert d.state.preview is None and d.state.last_command == "abort@1"
    started = decide(d.state, w.policy, Observation(w.now, "3", dict(w.ready), 1))
    again = decide(started.state, w.policy, Observation(w.now, "3", dict(w.ready), 1, None, cmd))
    assert again.state.preview is not None  # the same annotation value is not a second abort


# ---- invariants over random histories ----

ACTIONS = st.one_of(
    st.tuples(st.just("target"), st.sampled_from([None, "1", "2", "3", "4"])),
    st.tuples(st.just("ready"), st.sampled_from([BLUE, GREEN])),
    st.tuples(st.just("unready"), st.sampled_from([BLUE, GREEN])),
    st.tuples(st.just("smoke"), st.booleans()),
    st.tuples(st.just("command"), st.sampled_from(list(Verb))),
    st.tuples(st.just("tick"), st.integers(1, 400)),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("replicas"), st.none() | st.integers(0, 6)),
)
POLICIES = st.builds(
    Policy,
    auto_promote=st.booleans(),
    smoke_enabled=st.booleans(),
    scale_down_delay=st.sampled_from([0.0, 60.0, 300.0]),
    progress_deadline=st.sampled_from([30.0, 120.0, 600.0]),
    history_limit=st.integers(1, 5),
    min_replicas=st.integers(1, 3),
    max_replicas=st.just(4),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=POLICIES, actions=st.lists(ACTIONS, max_size=40), final=st.sampled_from(["1", "2", "5"]))
def test_invariants_hold_over_random_event_sequences(
    policy: Policy, actions: list[tuple[str, object]], final: str
) -> None:
    w = World(policy=policy)
    for kind, arg in actions:
        if kind == "target":
            w.target = arg  # type: ignore[assignment]
        elif kind == "ready":
            w.make_ready(arg)  # type: ignore[arg-type]
        elif kind == "unready":
            w.unready(arg)  # type: ignore[arg-type]
        elif kind == "tick":
            w.now += arg  # type: ignore[operator]
        elif kind == "restart":
            w.restart()
        elif kind == "replicas":
            w.active_replicas = arg  # type: ignore[assignment]
        w.step(
            smoke=arg if kind == "smoke" else None,  # type: ignore[arg-type]
            verb=arg if kind == "command" else None,  # type: ignore[arg-type]
        )
    # Whatever happened, once the world is healthy every rollout ends and traffic converges.
    w.target = final
    for _ in range(3):  # a rollout already near its deadline may still abort: a human retries
        w.step(verb=Verb.retry)  # clears earlier refusals of `final`
        d = settle(w)
        if d.phase is Phase.AwaitingPromotion:
            w.step(verb=Verb.promote)
            d = settle(w)
        if d.phase is Phase.Stable:
            break
    s = d.state
    assert s.preview is None, d
    assert w.started == w.ended, (w.started, w.ended)
    assert s.active is not None and d.serving == s.active.color
    assert d.phase is Phase.Stable, d
    assert s.active.version == final


@given(policy=POLICIES, actions=st.lists(ACTIONS, max_size=25))
@settings(max_examples=100, deadline=None)
def test_a_restart_before_any_step_converges_to_the_same_decision(
    policy: Policy, actions: list[tuple[str, object]]
) -> None:
    w = World(policy=policy)
    for kind, arg in actions:
        if kind == "ready":
            w.make_ready(arg)  # type: ignore[arg-type]
        elif kind == "tick":
            w.now += arg  # type: ignore[operator]
        elif kind == "target":
            w.target = arg  # type: ignore[assignment]
        w.step()
    obs = Observation(w.now, w.target, dict(w.ready), 2)
    restored = from_status(to_status(w.state), history_to_status(w.state.history))
    assert decide(restored, policy, obs) == decide(w.state, policy, obs)
    # ...and the second pass with nothing new is a no-op.
    again = decide(w.state, policy, obs)
    assert decide(again.state, policy, obs).state == again.state or again.run_smoke is not None


def test_history_is_bounded() -> None:
    w = live(Policy(history_limit=2))
    for v in ("2", "3", "4"):
        w.target = v
        settle(w)
    assert len(w.state.history) == 2 and w.state.history[-1].to_version == "4"
    assert replace(w.state, history=()).history == ()
