"""Signing keys and hostile tokens for the gateway's JWT tests: three key types in one JWKS, claims
aimed at ``ferry_testing.gateway``'s issuer and audience, and the classic forgeries."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ferry_testing.gateway import AUDIENCE, ISSUER

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


EC = ec.generate_private_key(ec.SECP256R1())


ED = ed25519.Ed25519PrivateKey.generate()


OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


RSA_PUBLIC_PEM = RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _jwk(alg_cls: Any, key: Any, kid: str, alg: str) -> dict[str, Any]:
    doc: dict[str, Any] = alg_cls.to_jwk(key.public_key(), as_dict=True)
    return {**doc, "kid": kid, "use": "sig", "alg": alg}


JWKS = {
    "keys": [
        _jwk(jwt.algorithms.RSAAlgorithm, RSA, "rsa1", "RS256"),
        _jwk(jwt.algorithms.ECAlgorithm, EC, "ec1", "ES256"),
        _jwk(jwt.algorithms.OKPAlgorithm, ED, "ed1", "EdDSA"),
    ]
}


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
        "scope": "predict",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = RSA, alg: str = "RS256", kid: str = "rsa1") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def alg_none() -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa1"}).encode())
    return f"{header}.{b64(json.dumps(claims()).encode())}."


def hs256_with_public_key() -> str:
    # the classic key confusion: HMAC "signed" with the RSA public key, hoping the server uses
    # the same key bytes as an HMAC secret
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
    body = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    sig = hmac.new(RSA_PUBLIC_PEM, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


def tampered() -> str:
    token = sign(claims(scope="predict"))
    header, _, sig = token.split(".")
    return f"{header}.{b64(json.dumps(claims(scope='predict preview admin', sub='admin')).encode())}.{sig}"
