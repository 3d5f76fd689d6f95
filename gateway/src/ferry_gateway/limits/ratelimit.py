"""Rate limits (GCRA) and daily quotas in Redis, all checked in ONE atomic round trip.

The Lua script below is loaded once and run with EVALSHA. It checks every applicable limit
(the consumer's tier, plus any per-model override) and admits the request only if all of them
admit it; nothing is written on denial, so a denied request costs no quota. Because the script
runs atomically inside Redis, concurrent gateways can never over-admit.

All keys of one request carry the consumer in a hash tag (``{consumer}``), so they live in one
slot and the script also runs on Redis Cluster. The name goes into the tag escaped (``hash_tag``):
a consumer is whatever a JWT's ``sub`` says, and a ``}`` in it would end the tag early, putting
the rate and quota keys in different slots (CROSSSLOT) and letting two names share keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ferry_gateway import metrics
from ferry_gateway.limits.breaker import BreakerState, CircuitBreaker
from ferry_gateway.limits.tiers import LimitsConfig, TierLimits

log = logging.getLogger("ferry_gateway.limits.ratelimit")

MINUTE_US = 60_000_000
DAY_S = 86_400

# GCRA per limit i: T = emission interval, B = burst. A fresh key admits exactly B requests at
# one instant, then one per T. Time in integer microseconds (exact in a double up to 2^53).
#
# The time is Redis's own (TIME), so gateways whose clocks disagree still agree on every
# decision; ARGV[1] >= 0 gives the time instead (tests and the benchmark drive a fake clock).
# A quota key ends in the UTC day the gateway expected (ARGV[4], and its neighbours' names in
# ARGV[5], ARGV[6]). When Redis's clock is on the day before or after (the gateway's clock is
# skewed across midnight), the script counts in that day's key instead: same hash tag, so the
# same slot, and all gateways count one day in one key. The reply ends with the time used.
LUA = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local ng = tonumber(ARGV[2])
local nq = tonumber(ARGV[3])
local shift = math.floor(now / 86400000000) - tonumber(ARGV[4])
local day = nil
if shift == -1 then day = ARGV[5] elseif shift == 1 then day = ARGV[6] end
local qkeys = {}
for j = 1, nq do
  qkeys[j] = KEYS[ng + j]
  if day then qkeys[j] = string.sub(qkeys[j], 1, -9) .. day end
end
local qttl = 86400 - math.floor(now / 1000000) % 86400 + 60
local out = {0, 0}
local new_tats = {}
local status = 0
local retry = 0
local a = 7
for i = 1, ng do
  local T = tonumber(ARGV[a]); local B = tonumber(ARGV[a + 1]); a = a + 2
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + T
  local allow_at = new_tat - B * T
  if now < allow_at then
    status = 1
    if allow_at - now > retry then retry = allow_at - now end
    out[#out + 1] = 0
    out[#out + 1] = tat - now
  else
    new_tats[i] = new_tat
    out[#out + 1] = math.floor((now - allow_at) / T)
    out[#out + 1] = new_tat - now
  end
end
for j = 1, nq do
  local limit = tonumber(ARGV[a]); a = a + 1
  local used = tonumber(redis.call('GET', qkeys[j]) or 0)
  if used >= limit then status = 2 end
  out[#out + 1] = used
end
if status == 0 then
  for i = 1, ng do
    local ttl = math.ceil((new_tats[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], new_tats[i], 'PX', ttl)
  end
  for j = 1, nq do
    if redis.call('INCR', qkeys[j]) == 1 then redis.call('EXPIRE', qkeys[j], qttl) end
  end
end
out[1] = status
out[2] = retry
out[#out + 1] = now
return out
"""
# What /readyz runs as the breaker's trial: no limits, so it reads and writes nothing.
PROBE_ARGS = [-1, 0, 0, 0, "", ""]


class Outcome(Enum):
    ALLOWED = "allowed"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"
    UNLIMITED = "unlimited"


@dataclass(frozen=True)
class RateState:
    """The state of the tightest per-minute limit after this request."""

    limit_per_minute: int
    burst: int
    remaining: int
    reset_seconds: float  # until the burst allowance is whole again


@dataclass(frozen=True)
class QuotaState:
    limit: int
    remaining: int
    reset_seconds: int  # until the next UTC midnight


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    retry_after: float = 0.0
    rate: RateState | None = None
    quota: QuotaState | None = None

    @property
    def admitted(self) -> bool:
        return self.outcome in (Outcome.ALLOWED, Outcome.FAIL_OPEN, Outcome.UNLIMITED)


@dataclass(frozen=True)
class _Gcra:
    key: str
    limits: TierLimits


@dataclass(frozen=True)
class _Quota:
    key: str
    limit: int


# Inside a hash tag, "{" and "}" would change which bytes Redis hashes, and "%" is the escape
# itself. A lone surrogate (JSON allows "\ud800" in a string) cannot be encoded as UTF-8 at all.
_TAG_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D"}


def hash_tag(consumer: str) -> str:
    """The consumer as the body of a Redis Cluster hash tag: never empty (``{}`` hashes the whole
    key), without braces, and one-to-one, so two names never share a key. Ordinary names are kept
    as they are, so their keys (and today's counters) stay the same across an upgrade."""
    if not consumer:
        return "%"  # no escape sequence is a lone "%", so no other name maps here
    if not any(c in _TAG_ESCAPES or "\ud800" <= c <= "\udfff" for c in consumer):
        return consumer
    return "".join(
        _TAG_ESCAPES.get(c) or (f"%u{ord(c):04X}" if "\ud800" <= c <= "\udfff" else c) for c in consumer
    )


def plan(
    limits: LimitsConfig, consumer: str, tier: str, model: str | None, now: float, prefix: str = "ferry"
) -> tuple[list[_Gcra], list[_Quota]]:
    """Which limits apply to this request, and the Redis keys that hold them (pure)."""
    day = _day(now)
    gcra: list[_Gcra] = []
    quotas: list[_Quota] = []
    applicable: list[tuple[str, TierLimits]] = [("", limits.tier(tier))]
    if model is not None:
        override = limits.override(model, tier)
        if override is not None:
            applicable.append((f":m:{model}", override))
    tag = hash_tag(consumer)
    for scope, lim in applicable:
        if lim.per_minute is not None and lim.burst is not None:
            gcra.append(_Gcra(f"{prefix}:rl:{{{tag}}}{scope}", lim))
        if lim.per_day is not None:
            quotas.append(_Quota(f"{prefix}:q:{{{tag}}}{scope}:{day}", lim.per_day))
    return gcra, quotas


def seconds_to_midnight(now: float) -> int:
    return DAY_S - int(now) % DAY_S


def _day(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def script_args(
    gcra: list[_Gcra], quotas: list[_Quota], now: float, *, redis_time: bool = False
) -> tuple[list[str], list[int | str]]:
    """KEYS and ARGV of the script. ``now``: the gateway's idea of the time, which names the
    quota keys' day; with ``redis_time`` Redis's clock decides everything else."""
    keys = [g.key for g in gcra] + [q.key for q in quotas]
    args: list[int | str] = [-1 if redis_time else int(now * 1_000_000), len(gcra), len(quotas)]
    args += [int(now // DAY_S), _day(now - DAY_S), _day(now + DAY_S)]
    for g in gcra:
        assert g.limits.per_minute is not None and g.limits.burst is not None
        args += [MINUTE_US // g.limits.per_minute, g.limits.burst]
    args += [q.limit for q in quotas]  # a day's counter lives a minute past its day (qttl)
    return keys, args


def interpret(
    gcra: list[_Gcra], quotas: list[_Quota], reply: list[int], now: float, spent: bool = True
) -> Decision:
    """Turn the script's reply into a Decision (pure). ``spent``: an admission counted this request."""
    status, retry_us = int(reply[0]), int(reply[1])
    rate: RateState | None = None
    for i, g in enumerate(gcra):
        remaining, reset_us = int(reply[2 + 2 * i]), int(reply[3 + 2 * i])
        assert g.limits.per_minute is not None and g.limits.burst is not None
        state = RateState(g.limits.per_minute, g.limits.burst, remaining, reset_us / 1_000_000)
        if rate is None or state.remaining < rate.remaining:
            rate = state
    quota: QuotaState | None = None
    base = 2 + 2 * len(gcra)
    midnight = seconds_to_midnight(now)
    for j, q in enumerate(quotas):
        used = int(reply[base + j]) + (1 if status == 0 and spent else 0)  # the reply counts before this one
        state_q = QuotaState(q.limit, max(0, q.limit - used), midnight)
        if quota is None or state_q.remaining < quota.remaining:
            quota = state_q
    if status == 2:
        return Decision(Outcome.QUOTA_EXCEEDED, float(midnight), rate, quota)
    if status == 1:
        return Decision(Outcome.RATE_LIMITED, retry_us / 1_000_000, rate, quota)
    return Decision(Outcome.ALLOWED, 0.0, rate, quota)


def _peeked(gcra: list[_Gcra], quotas: list[_Quota], values: list[Any], now: float) -> Decision:
    """The state MGET read, as the script would have reported it without spending (pure)."""
    now_us = int(now * 1_000_000)
    reply: list[int] = [0, 0]
    for g, raw in zip(gcra, values, strict=False):
        assert g.limits.per_minute is not None and g.limits.burst is not None
        t = MINUTE_US // g.limits.per_minute
        tat = max(int(float(raw)) if raw is not None else now_us, now_us)
        reply += [max(0, (now_us - (tat - g.limits.burst * t)) // t), tat - now_us]
    reply += [int(v) if v is not None else 0 for v in values[len(gcra) :]]
    return interpret(gcra, quotas, reply, now, spent=False)


class RateLimiter:
    """Checks limits in Redis; on Redis failure answers per ``fail_open`` behind a breaker.

    ``redis_time``: Redis's clock decides (what the gateway runs with, so several gateways with
    skewed clocks agree); otherwise ``clock`` does, which lets tests and the benchmark drive time.
    With Redis time, ``clock`` plus the offset to Redis seen in the latest reply still names the
    day of the quota keys (the script corrects a wrong day) and times ``peek``."""

    def __init__(
        self,
        redis: Any,
        limits: LimitsConfig,
        *,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
        breaker: CircuitBreaker | None = None,
        prefix: str = "ferry",
        redis_time: bool = False,
    ) -> None:
        if "{" in prefix or "}" in prefix:  # a brace before the consumer's tag would move the tag
            raise ValueError(f"rate-limit key prefix {prefix!r}: no '{{' or '}}' allowed")
        self.redis = redis
        self.limits = limits
        self.fail_open = fail_open
        self.clock = clock
        self.breaker = breaker or CircuitBreaker(failure_threshold=1, reset_timeout=1.0)
        self.prefix = prefix
        self.script = redis.register_script(LUA) if redis is not None else None
        self.redis_calls = 0  # attempts that reached for the network, for tests and the bench
        self.redis_time = redis_time
        self._offset = 0.0  # Redis's clock minus ours, as of the latest reply (0 unless redis_time)
        self._outage = False  # the latest failure was Redis not answering (not a bug or a bad reply)

    async def check(self, consumer: str, tier: str, model: str | None) -> Decision:
        ours = self.clock()
        now = ours + self._offset
        gcra, quotas = plan(self.limits, consumer, tier, model, now, self.prefix)
        if not gcra and not quotas:
            return Decision(Outcome.UNLIMITED)
        if self.script is None or not self.breaker.allow():
            return self._degraded()
        keys, args = script_args(gcra, quotas, now, redis_time=self.redis_time)
        self.redis_calls += 1
        try:
            with self.breaker.guard():  # any exception is a failed call, so never a wedged trial
                reply = await self.script(keys=keys, args=args)
                if self.redis_time:
                    now = int(reply[-1]) / 1_000_000  # the time the script decided at
                    self._offset = now - ours
                decision = interpret(gcra, quotas, reply, now)
        except Exception as exc:  # whatever broke, answer per fail-open/closed
            return self._failed(exc)
        self._succeeded()
        return decision

    async def peek(self, consumer: str, tier: str) -> Decision:
        """The caller's current state without spending anything (for GET /v1/usage)."""
        now = self.clock() + self._offset
        gcra, quotas = plan(self.limits, consumer, tier, None, now, self.prefix)
        if not gcra and not quotas:
            return Decision(Outcome.UNLIMITED)
        if self.redis is None or not self.breaker.allow():
            return self._degraded()
        try:
            with self.breaker.guard():
                values = await self.redis.mget([g.key for g in gcra] + [q.key for q in quotas])
                decision = _peeked(gcra, quotas, values, now)
        except Exception as exc:
            return self._failed(exc)
        self._succeeded()
        return decision

    async def ping(self) -> bool:
        """Can the limiter enforce limits right now (for /readyz)? Redis answering PING is not
        enough: while the breaker is open every request is answered degraded, so that is "no"
        too; a half-open breaker lets this probe be its trial (running the limiter's own script),
        so a gateway taken out of its Service by a failing /readyz still recovers without traffic."""
        if self.redis is None:
            return False
        state = self.breaker.state
        if state is BreakerState.OPEN:
            return False
        if state is BreakerState.HALF_OPEN:
            if self.script is None or not self.breaker.allow():
                return False  # another request is the trial
            try:
                with self.breaker.guard():
                    await self.script(keys=[], args=PROBE_ARGS)
            except Exception as exc:
                self._failed(exc)
                return False
            self._succeeded()
            return True
        try:
            return bool(await self.redis.ping())
        except Exception:  # not ready, whatever the reason
            return False

    def why_degraded(self) -> str:
        """Why ``ping`` says no, in words for /readyz."""
        if self.redis is None:
            return "not configured (no REDIS_URL)"
        if self.breaker.state is BreakerState.CLOSED or self._outage:
            return "unreachable"
        cause = f" after {self.breaker.last_failure}" if self.breaker.last_failure else ""
        return f"rate limiter circuit open{cause}, next trial in {self.breaker.retry_in():.1f}s"

    def _failed(self, exc: Exception) -> Decision:
        # the breaker's guard has counted the failure already
        name = type(exc).__name__
        metrics.REDIS_ERRORS.labels(name).inc()
        metrics.CIRCUIT_OPEN.labels("redis").set(1 if self.breaker.state is not BreakerState.CLOSED else 0)
        self._outage = isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
        if isinstance(exc, RedisError | OSError):
            log.warning("redis unavailable for rate limiting: %s", name)
        else:  # not an outage: a bug or a reply we do not understand; say where
            log.error("rate limiting failed unexpectedly: %s", name, exc_info=exc)
        return self._degraded()

    def _succeeded(self) -> None:
        if self.breaker.failures:
            metrics.CIRCUIT_OPEN.labels("redis").set(0)
            log.info("redis is back; rate limiting resumes")
        self.breaker.success()

    def _degraded(self) -> Decision:
        return Decision(Outcome.FAIL_OPEN if self.fail_open else Outcome.FAIL_CLOSED, retry_after=1.0)
