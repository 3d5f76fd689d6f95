"""API keys: generated once, shown once, stored and compared only as keyed hashes.

The hash is HMAC-SHA256 under a server-side secret (the "pepper"), so a leaked consumers file
or Secret dump does not let anyone check guesses offline without also holding the pepper.
Stored form: ``hmac-sha256:<pepper fingerprint>:<hex digest>``; the fingerprint lets the gateway
warn when a file was written with a different pepper instead of silently refusing every key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_PREFIX = "fry_"
HASH_SCHEME = "hmac-sha256"
PEPPER_ENV = "FERRY_API_KEY_PEPPER"
PEPPER_FILE_ENV = "FERRY_API_KEY_PEPPER_FILE"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def pepper_fingerprint(pepper: bytes) -> str:
    return hashlib.sha256(b"ferry-pepper-id:" + pepper).hexdigest()[:8]


def hash_key(pepper: bytes, key: str) -> str:
    digest = hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}:{pepper_fingerprint(pepper)}:{digest}"


def key_id(stored_hash: str) -> str:
    """A short public handle for a key, derived from its hash (safe to print and log)."""
    return stored_hash.rsplit(":", 1)[-1][:12]


def is_hash(value: str) -> bool:
    return value.startswith(HASH_SCHEME + ":")


def dev_dir() -> Path:
    return Path(os.environ.get("FERRY_DEV_DIR", ".local/gateway"))


def load_pepper(dev: bool = False) -> bytes:
    """The pepper from $FERRY_API_KEY_PEPPER or the file in $FERRY_API_KEY_PEPPER_FILE.

    In development (``dev``), a random pepper is created on first use under the dev directory.
    """
    if value := os.environ.get(PEPPER_ENV):
        return value.encode()
    if pepper_file := os.environ.get(PEPPER_FILE_ENV):
        return Path(pepper_file).read_bytes().strip()
    if not dev:
        raise RuntimeError(f"no API-key pepper: set {PEPPER_ENV} or {PEPPER_FILE_ENV} (or use --dev)")
    path = dev_dir() / "api-key-pepper"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()
