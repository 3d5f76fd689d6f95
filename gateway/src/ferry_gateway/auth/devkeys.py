"""The development key pair: created on first use under the dev directory ($FERRY_DEV_DIR, read by
config.py and passed in), never committed.

The dev JWKS is derived from it, and ``ferry token`` signs with it, like a login script would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_ISSUER = "https://dev.ferry.local"
DEV_AUDIENCE = "ferry-gateway"


def _key_path(dev_dir: Path) -> Path:
    return dev_dir / "dev-jwt-key.pem"


def dev_private_key(dev_dir: Path) -> rsa.RSAPrivateKey:
    path = _key_path(dev_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)  # atomic, so two first users never read half a key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: expected an RSA private key")
    return loaded


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def dev_jwk(dev_dir: Path) -> dict[str, Any]:
    pub = dev_private_key(dev_dir).public_key().public_numbers()
    e, n = _b64(pub.e), _b64(pub.n)
    # RFC 7638 thumbprint as the kid: stable for the key, changes when the key does.
    thumb = hashlib.sha256(
        json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode()
    ).digest()
    kid = base64.urlsafe_b64encode(thumb).rstrip(b"=").decode()[:16]
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}


def dev_jwks(dev_dir: Path) -> dict[str, Any]:
    return {"keys": [dev_jwk(dev_dir)]}


def mint_token(
    dev_dir: Path,
    consumer: str,
    scopes: list[str] | None = None,
    tier: str | None = None,
    expires_in: int = 3600,
    audience: str = DEV_AUDIENCE,
    issuer: str = DEV_ISSUER,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": consumer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + expires_in,
    }
    if scopes is not None:
        claims["scope"] = " ".join(scopes)
    if tier is not None:
        claims["tier"] = tier
    return jwt.encode(
        claims, dev_private_key(dev_dir), algorithm="RS256", headers={"kid": dev_jwk(dev_dir)["kid"]}
    )
