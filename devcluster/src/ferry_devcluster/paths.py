"""Where the local cluster keeps things: binaries in a per-user cache, state in the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def cache_dir() -> Path:
    """Built tools live outside the checkout so a fresh clone reuses them."""
    return Path(os.environ.get("FERRY_CACHE", Path.home() / ".cache" / "ferry"))


def local_dir() -> Path:
    """Per-checkout runtime state (gitignored): kubeconfig, certificates, logs, etcd data."""
    return Path(os.environ.get("FERRY_LOCAL", REPO / ".local"))
