"""Settings the predictor reads from its command line and environment (as the operator sets them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_BATCH_ROWS = 1000


@dataclass(frozen=True)
class Config:
    model_name: str
    model_uri: str
    tracking_uri: str | None = None
    color: str = ""
    version_override: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    workdir: Path = Path("/tmp/ferry-model")
    # Backoff between failed load attempts grows to this: a registry outage should heal by itself.
    retry_max_seconds: float = 60.0
