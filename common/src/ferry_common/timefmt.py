"""RFC 3339 timestamps as Kubernetes and the error envelope write them (UTC, a trailing ``Z``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds"]


def format_time(t: float | None = None, timespec: Precision = "seconds") -> str:
    """``t`` (Unix seconds; now when omitted) as ``2026-12-03T07:48:09Z`` or ``...09.123Z``."""
    moment = datetime.fromtimestamp(time.time() if t is None else t, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """The Unix time of an RFC 3339 timestamp; one without an offset is taken as UTC.

    Raises ValueError naming the text when it is not a timestamp.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
