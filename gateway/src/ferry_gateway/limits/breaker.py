"""A small circuit breaker: after N consecutive failures, fail fast for a cool-down period.

Used in front of Redis and of each upstream, so a dead dependency costs no per-request
latency. After the cool-down one trial call is let through (half-open); its outcome closes the
breaker or re-opens it for another cool-down. The clock is injectable for tests.

The breaker must never wedge in HALF_OPEN, whatever its trial does, because a wedged breaker
fails every later call (or, for a fail-open limiter, stops limiting) until the process restarts:

- ``guard()`` wraps the call ``allow()`` let through: ANY ``Exception`` counts as a failure
  (re-opening the breaker), not only the errors the caller expected;
- a cancelled call (``asyncio.CancelledError``, or any other ``BaseException`` such as
  ``KeyboardInterrupt``) says nothing about the dependency: it is no verdict. The trial slot is
  freed and the breaker stays half-open, so the very next call is the new trial. Counting it as
  a failure would let one client that hangs up re-open the breaker for everyone;
- a trial whose caller never reports (a bug, or a task that vanished) is taken as failed once it
  has been out for ``reset_timeout``, so even a caller that forgets ``success``/``failure``
  cannot hold the breaker half-open for longer than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None  # the half-open trial in flight, when it went out
        self.last_failure = ""  # the exception type (or reason) of the latest failure, for /readyz

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def trial_in_flight(self) -> bool:
        return self._trial_started is not None

    def retry_in(self) -> float:
        """Seconds until the next trial may go out (0 when one may go now or the breaker is closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial call at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock()
        if self._trial_started is not None:
            if now - self._trial_started < self.reset_timeout:
                return False
            self.failure("trial lost")  # its caller never reported: failed, try again later
            return False
        self._trial_started = now
        return True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started = None

    def failure(self, reason: str = "") -> None:
        self._trial_started = None
        self._failures += 1
        self.last_failure = reason or self.last_failure
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    def abandon(self, trial: float | None) -> None:
        """A call ended with no verdict (cancelled). If it was the trial, free the slot so the
        next call tries; otherwise change nothing (another call may be the trial now)."""
        if trial is not None and self._trial_started == trial:
            self._trial_started = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around the call ``allow()`` just let through (enter it with no ``await`` in between):
        an ``Exception`` counts as a failure and a cancellation frees the trial, both re-raised.
        On a normal exit the caller gives the verdict (``success()``, or ``failure()`` for an
        answer that means the dependency is unwell, like an upstream's 503)."""
        trial = self._trial_started  # set only while this call is the half-open trial
        try:
            yield
        except Exception as exc:
            self.failure(type(exc).__name__)
            raise
        except BaseException:
            self.abandon(trial)
            raise
