"""Response headers describing a rate-limit decision (pure).

Both the IETF httpapi draft fields (``RateLimit-Policy`` / ``RateLimit``, structured-field
syntax of draft-ietf-httpapi-ratelimit-headers-08+) and the familiar ``X-RateLimit-*`` trio,
plus ``X-Quota-*`` for the daily quota.
"""

from __future__ import annotations

import math

from ferry_gateway.limits.ratelimit import Decision


def rate_limit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    policies: list[str] = []
    states: list[str] = []
    rate, quota = decision.rate, decision.quota
    if rate is not None:
        reset = math.ceil(rate.reset_seconds)
        policies.append(f'"burst";q={rate.burst};w=60')
        states.append(f'"burst";r={rate.remaining};t={reset}')
        out += [
            (b"x-ratelimit-limit", str(rate.limit_per_minute).encode()),
            (b"x-ratelimit-remaining", str(rate.remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]
    if quota is not None:
        policies.append(f'"day";q={quota.limit};w=86400')
        states.append(f'"day";r={quota.remaining};t={quota.reset_seconds}')
        out += [
            (b"x-quota-limit", str(quota.limit).encode()),
            (b"x-quota-remaining", str(quota.remaining).encode()),
            (b"x-quota-reset", str(quota.reset_seconds).encode()),
        ]
    if policies:
        out += [
            (b"ratelimit-policy", ", ".join(policies).encode()),
            (b"ratelimit", ", ".join(states).encode()),
        ]
    if not decision.admitted:
        out.append((b"retry-after", str(max(1, math.ceil(decision.retry_after))).encode()))
    return out
