"""Which live predictions are mirrored: ``shadowPercent`` of them, chosen by request id.

The choice hashes the request id with the rollout (the preview's version), so it is the same on
every gateway replica and after a restart, spreads evenly whatever the ids look like, and picks a
fresh share for each rollout. Nothing the caller sends decides it beyond that id, which the
gateway makes itself when the caller sends none or a malformed one.
"""

from __future__ import annotations

import hashlib

_SCALE = 10_000  # basis points: shadowPercent has at most two decimals' worth of meaning


def mirrored(request_id: str, rollout: str, percent: float) -> bool:
    """True for about ``percent`` of request ids, the same ids for the same rollout."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    digest = hashlib.blake2b(f"{rollout}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SCALE < round(percent * _SCALE / 100)
