"""The limiter's breaker never wedges (issue 13, finding 3): whatever the half-open trial raises,
the limiter tries Redis again after the cool-down and enforces limits once Redis answers, in
both fail-open and fail-closed mode; and /readyz says so while the breaker is open.

Cancellation is the one deliberate exception: a cancelled trial (the client hung up, the server
is stopping) is no verdict on Redis, so it re-opens nothing and the very next call is the trial.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from ferry_common.asgi import Message
from ferry_gateway.app import Gateway
from ferry_gateway.consumers.registry import ConsumerRegistry
from ferry_gateway.limits.breaker import BreakerState, CircuitBreaker
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.tiers import LimitsConfig
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, FakeClock, Keys, build_app, consumer_index
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import (
    ClusterCrossSlotError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RESET = 5.0
FREE_ALLOWED = [0, 0, 99, 1_000_000, 0]  # the script's reply: admitted, 99 left, nothing used today


def _unicode_error() -> Exception:
    try:
        "\ud800".encode()
    except UnicodeEncodeError as exc:  # what a lone surrogate in a JWT sub raised building the key
        return exc
    raise AssertionError("unreachable")


# Everything a call into redis-py or our own code could raise. Only the first three were caught.
FAILURES: list[Callable[[], BaseException]] = [
    lambda: RedisConnectionError("connection refused"),
    lambda: RedisTimeoutError("timeout"),
    lambda: OSError("network unreachable"),
    lambda: ResponseError("ERR unknown command"),
    lambda: NoScriptError("NOSCRIPT"),
    lambda: RedisClusterException("EVALSHA - all keys must map to the same key slot"),
    lambda: SlotNotCoveredError("slot 42 not covered"),
    lambda: ClusterCrossSlotError(),
    lambda: ValueError("invalid literal for int()"),
    lambda: TypeError("'NoneType' object is not subscriptable"),
    lambda: KeyError("missing"),
    lambda: IndexError("list index out of range"),
    lambda: ZeroDivisionError("division by zero"),
    lambda: AssertionError("impossible reply"),
    lambda: RuntimeError("event loop is closed"),
    lambda: AttributeError("no attribute"),
    lambda: RecursionError(),
    lambda: MemoryError(),
    _unicode_error,
]
CANCELLATIONS: list[Callable[[], BaseException]] = [lambda: asyncio.CancelledError()]


@st.composite
def exceptions(draw: st.DrawFn) -> BaseException:
    """A known failure, or an exception type nobody has seen before (a fresh subclass)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(FAILURES))()
    base = draw(st.sampled_from([Exception, RedisError, RedisClusterException, ValueError, LookupError]))
    name = draw(st.from_regex(r"[A-Z][a-zA-Z]{0,12}Error", fullmatch=True))
    return type(name, (base,), {})("surprise")  # type: ignore[no-any-return]


class Script:
    """Stands in for the registered Lua script: answers or raises, in order, then answers."""

    def __init__(self) -> None:
        self.plan: deque[BaseException | list[int]] = deque()
        self.calls = 0

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        self.calls += 1
        step = self.plan.popleft() if self.plan else (FREE_ALLOWED if keys else [0, 0])
        if isinstance(step, BaseException):
            raise step
        return step


class Redis:
    def __init__(self) -> None:
        self.script = Script()

    def register_script(self, source: str) -> Script:
        return self.script

    async def ping(self) -> bool:
        return True  # Redis itself is fine: the limiter's calls are what fail

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None for _ in keys]


def _limiter(fail_open: bool) -> tuple[RateLimiter, Script, FakeClock]:
    clock = FakeClock(0.0)
    redis = Redis()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=RESET, clock=clock)
    return RateLimiter(redis, LimitsConfig(), fail_open=fail_open, breaker=breaker), redis.script, clock


def _state(limiter: RateLimiter) -> BreakerState:
    return limiter.breaker.state  # a call, so that mypy does not narrow the property between reads


async def _check(limiter: RateLimiter) -> Outcome:
    return (await limiter.check("alice", "free", None)).outcome


@given(first=exceptions(), trial=exceptions(), fail_open=st.booleans())
def test_after_any_exception_in_the_trial_the_limiter_tries_again_and_recovers(
    first: BaseException, trial: BaseException, fail_open: bool
) -> None:
    async def run() -> None:
        limiter, script, clock = _limiter(fail_open)
        degraded = Outcome.FAIL_OPEN if fail_open else Outcome.FAIL_CLOSED
        script.plan.extend([first, trial])
        assert await _check(limiter) is degraded  # whatever it was, the request gets the policy
        assert _state(limiter) is BreakerState.OPEN
        clock.now += RESET
        assert await _check(limiter) is degraded  # the half-open trial, failing
        assert _state(limiter) is BreakerState.OPEN  # never left HALF_OPEN by a trial
        tried = script.calls
        assert await _check(limiter) is degraded
        assert script.calls == tried  # open: no attempt during the cool-down
        clock.now += RESET
        assert await _check(limiter) is Outcome.ALLOWED  # the next trial reaches Redis again
        assert _state(limiter) is BreakerState.CLOSED

    asyncio.run(run())


@given(trial=exceptions())
def test_usage_peek_recovers_after_any_exception_in_its_trial(trial: BaseException) -> None:
    async def run() -> None:
        limiter, _, clock = _limiter(fail_open=False)
        limiter.breaker.failure("RedisConnectionError")
        clock.now += RESET

        async def broken(keys: Sequence[str]) -> list[bytes | None]:
            raise trial

        limiter.redis.mget = broken
        assert (await limiter.peek("alice", "free")).outcome is Outcome.FAIL_CLOSED
        assert limiter.breaker.state is BreakerState.OPEN
        del limiter.redis.mget
        clock.now += RESET
        assert (await limiter.peek("alice", "free")).outcome is Outcome.ALLOWED

    asyncio.run(run())


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_a_cancelled_trial_is_no_verdict_and_the_next_call_is_the_trial(fail_open: bool) -> None:
    async def run() -> None:
        limiter, script, clock = _limiter(fail_open)
        script.plan.extend([RedisConnectionError("down"), asyncio.CancelledError()])
        await _check(limiter)
        clock.now += RESET
        with pytest.raises(asyncio.CancelledError):  # never swallowed: the task must end
            await _check(limiter)
        assert limiter.breaker.state is BreakerState.HALF_OPEN and not limiter.breaker.trial_in_flight
        assert await _check(limiter) is Outcome.ALLOWED  # at once, no second cool-down

    asyncio.run(run())


@given(
    outcomes=st.lists(
        st.one_of(
            st.just("ok"),
            st.just("lost"),
            exceptions(),
            st.sampled_from(CANCELLATIONS).map(lambda make: make()),
        ),
        min_size=1,
        max_size=12,
    ),
    threshold=st.integers(1, 4),
)
def test_the_breaker_itself_never_wedges_whatever_its_callers_do(
    outcomes: list[str | BaseException], threshold: int
) -> None:
    """Calls in any order: succeeding, raising anything, cancelled, or never reported at all
    ("lost", a caller that forgets its verdict). Within two cool-downs a call always gets through."""
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout=RESET, clock=clock)
    for outcome in outcomes:
        if not breaker.allow():
            clock.now += RESET
            if not breaker.allow():  # a lost trial is taken as failed here ...
                clock.now += RESET
                assert breaker.allow(), "wedged"  # ... and the next cool-down ends in a trial
        was_trial = breaker.trial_in_flight
        if outcome == "lost":
            continue
        try:
            with breaker.guard():
                if isinstance(outcome, BaseException):
                    raise outcome
        except asyncio.CancelledError:
            assert not breaker.trial_in_flight
        except Exception:
            assert breaker.state is not BreakerState.HALF_OPEN or not was_trial
            assert not breaker.trial_in_flight
        else:
            breaker.success()
            assert breaker.state is BreakerState.CLOSED


def _readyz(app: Gateway) -> tuple[int, str]:
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/readyz",
        "raw_path": b"/readyz",
        "query_string": b"verbose",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "scheme": "http",
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()


def test_readyz_fails_while_a_fail_closed_limiter_is_open_though_redis_pings() -> None:
    registry = ConsumerRegistry(PEPPER, consumer_index([], Keys()))
    app = build_app(None, registry=registry, upstreams=Upstreams({"titanic": "http://127.0.0.1:9"}))
    app.limiter, script, clock = _limiter(fail_open=False)
    assert _readyz(app)[0] == 200
    script.plan.append(ValueError("a reply the limiter does not understand"))
    assert asyncio.run(_check(app.limiter)) is Outcome.FAIL_CLOSED  # everyone gets 503 now ...
    status, text = _readyz(app)
    assert status == 503, text  # ... so the pod says it is not ready, and why
    assert "[-]redis failed: rate limiter circuit open after ValueError" in text
    assert "fails closed" in text
    # a gateway out of its Service gets no traffic, so /readyz itself runs the trial
    clock.now += RESET
    assert _readyz(app)[0] == 200
    assert app.limiter.breaker.state is BreakerState.CLOSED
    assert asyncio.run(_check(app.limiter)) is Outcome.ALLOWED


def test_readyz_of_a_fail_open_gateway_stays_ready_and_says_limits_are_off() -> None:
    registry = ConsumerRegistry(PEPPER, consumer_index([], Keys()))
    app = build_app(None, registry=registry, upstreams=Upstreams({"titanic": "http://127.0.0.1:9"}))
    app.limiter, script, _ = _limiter(fail_open=True)
    script.plan.append(TypeError("unexpected"))
    assert asyncio.run(_check(app.limiter)) is Outcome.FAIL_OPEN
    status, text = _readyz(app)
    assert status == 200
    assert "[+]redis ok: rate limiter circuit open after TypeError" in text
    assert "admitting without rate limits (fail-open)" in text
