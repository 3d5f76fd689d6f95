"""Response headers describing a rate-limit decision (pure).

Both the IETF httpapi draft fields (``RateLimit-Policy`` / ``RateLimit``, structured-field
syntax of draft-ietf-httpapi-ratelimit-headers-08+) and the familiar ``X-RateLimit-*`` trio,
plus ``X-Quota-*`` for the daily quota. The numbers add up:

- the per-minute limit is a GCRA, i.e. a bucket of ``burst`` requests refilled at ``perMinute``.
  ``X-RateLimit-Limit`` is the bucket's size (the most requests admitted at once), so
  ``X-RateLimit-Remaining`` (what may be sent right now) never exceeds it; the policy says
  ``"burst";q=<burst>;w=<seconds to refill an empty bucket>``, whose q/w is the sustained rate;
- every Reset (``X-RateLimit-Reset``, the ``t`` of ``RateLimit``) is delta-seconds from now,
  like ``Retry-After``: when the bucket is full again (Remaining == Limit), and for the quota,
  the next 00:00 UTC;
- an unlimited tier sends ``RateLimit-Policy: "unlimited"``, an item without ``q``: readable by a
  human, and a client following the draft finds no quota to throttle itself by.
"""

from __future__ import annotations

import math

from ferry_gateway.limits.ratelimit import MINUTE_US, Decision, Outcome

UNLIMITED_POLICY = '"unlimited"'


def refill_seconds(per_minute: int, burst: int) -> int:
    """Seconds for an empty bucket to be full again (the GCRA's burst x emission interval)."""
    return max(1, math.ceil(burst * (MINUTE_US // per_minute) / 1_000_000))


def rate_limit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    policies: list[str] = []
    states: list[str] = []
    rate, quota = decision.rate, decision.quota
    if rate is not None:
        limit = max(0, rate.burst)
        remaining = min(limit, max(0, rate.remaining))
        reset = max(0, math.ceil(rate.reset_seconds))
        policies.append(f'"burst";q={limit};w={refill_seconds(max(1, rate.limit_per_minute), limit)}')
        states.append(f'"burst";r={remaining};t={reset}')
        out += [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]
    if quota is not None:
        q_limit = max(0, quota.limit)
        q_remaining = min(q_limit, max(0, quota.remaining))
        q_reset = max(0, quota.reset_seconds)
        policies.append(f'"day";q={q_limit};w=86400')
        states.append(f'"day";r={q_remaining};t={q_reset}')
        out += [
            (b"x-quota-limit", str(q_limit).encode()),
            (b"x-quota-remaining", str(q_remaining).encode()),
            (b"x-quota-reset", str(q_reset).encode()),
        ]
    if policies:
        out += [
            (b"ratelimit-policy", ", ".join(policies).encode()),
            (b"ratelimit", ", ".join(states).encode()),
        ]
    elif decision.outcome is Outcome.UNLIMITED:
        out.append((b"ratelimit-policy", UNLIMITED_POLICY.encode()))
    if not decision.admitted:
        out.append((b"retry-after", str(max(1, math.ceil(decision.retry_after))).encode()))
    return out
