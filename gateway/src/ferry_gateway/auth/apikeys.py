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


def load_pepper(value: str | None, file: str | None, dev_dir: Path, dev: bool = False) -> bytes:
    """The pepper: ``value`` ($FERRY_API_KEY_PEPPER) or the content of ``file``
    ($FERRY_API_KEY_PEPPER_FILE), as config.py read them.

    In development (``dev``), a random pepper is created on first use under ``dev_dir``.
    """
    if value:
        return value.encode()
    if file:
        return Path(file).read_bytes().strip()
    if not dev:
        raise RuntimeError(f"no API-key pepper: set {PEPPER_ENV} or {PEPPER_FILE_ENV} (or use --dev)")
    path = dev_dir / "api-key-pepper"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()
