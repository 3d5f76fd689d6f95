"""The shadow tally: what the gateway counts for a rollout's analysis and the operator reads.

One Redis hash per rollout (``tally_key``), incremented by every gateway replica with one
``HINCRBY`` per field of a mirrored pair (``increments``) and read whole by the operator
(``read``). Counters in Redis, rather than each gateway's memory or Prometheus, because they add
up across gateway replicas by themselves, survive a gateway's restart, are exact (no scrape
interval, no rate() over a window), and are already where the gateway writes per request. The
key names the rollout (model, preview version, colour), so a new rollout starts from zero and an
aborted one's figures stay readable until they expire.

Latencies go into fixed buckets per colour, so the p99 of the same requests on both colours comes
from counts alone (``p99``); a bucket's upper bound is the figure reported, as Prometheus'
histogram_quantile would without interpolation. No request or response body is ever stored.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "ferry:shadow"
EXPIRE_SECONDS = 7 * 24 * 3600  # an aborted rollout's figures stay for a week of post-mortems

# Upper bounds in milliseconds; the last bucket is everything slower.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
)  # fmt: skip
OVERFLOW = "inf"

SAMPLES, AGREED, PREVIEW_ERRORS = "samples", "agreed", "preview_errors"


def tally_key(namespace: str, name: str, version: str, color: str) -> str:
    """The hash of one rollout: ModelDeployment ``namespace/name``, preview ``version`` as ``color``."""
    return f"{PREFIX}:{namespace}/{name}:{version}:{color}"


def bucket(ms: float) -> str:
    i = bisect.bisect_left(LATENCY_BUCKETS_MS, ms)
    return f"{LATENCY_BUCKETS_MS[i]:g}" if i < len(LATENCY_BUCKETS_MS) else OVERFLOW


def increments(active_ms: float, preview_ms: float, agreed: bool, preview_error: bool) -> dict[str, int]:
    """The fields one mirrored pair adds 1 to: its latencies, and whether the preview failed or agreed."""
    out = {SAMPLES: 1, f"active_ms:{bucket(active_ms)}": 1, f"preview_ms:{bucket(preview_ms)}": 1}
    if preview_error:
        out[PREVIEW_ERRORS] = 1
    elif agreed:
        out[AGREED] = 1
    return out


@dataclass(frozen=True)
class Tally:
    """One rollout's figures: mirrored requests, each answered by the active colour."""

    samples: int = 0  # mirrored requests the preview answered or failed
    agreed: int = 0  # of those, where the preview's predictions agree with the active colour's
    preview_errors: int = 0  # of those, where the preview failed (non-2xx, malformed, timed out)
    active_p99_ms: float | None = None  # on the same requests
    preview_p99_ms: float | None = None


def p99(counts: Mapping[str, int]) -> float | None:
    """The 99th percentile's bucket bound from ``{bound: count}`` (inf for the overflow bucket)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = -(-99 * total // 100)  # ceil(0.99 n), in integers: the rank of the 99th percentile
    seen = 0
    for bound in (*(f"{b:g}" for b in LATENCY_BUCKETS_MS), OVERFLOW):
        seen += counts.get(bound, 0)
        if seen >= rank:
            return float(bound)
    return float("inf")


def read(fields: Mapping[Any, Any]) -> Tally:
    """The operator's view of a hash as ``HGETALL`` returns it; unknown fields are ignored."""
    ints: dict[str, int] = {}
    for k, v in fields.items():
        key = k.decode() if isinstance(k, bytes) else k
        try:
            ints[key] = int(v)
        except ValueError:
            continue  # not ours: nothing the gateway writes is not an integer
    by_colour: dict[str, dict[str, int]] = {"active_ms": {}, "preview_ms": {}}
    for key, n in ints.items():
        colour, _, bound = key.partition(":")
        if colour in by_colour and bound:
            by_colour[colour][bound] = n
    return Tally(
        samples=ints.get(SAMPLES, 0),
        agreed=ints.get(AGREED, 0),
        preview_errors=ints.get(PREVIEW_ERRORS, 0),
        active_p99_ms=p99(by_colour["active_ms"]),
        preview_p99_ms=p99(by_colour["preview_ms"]),
    )
