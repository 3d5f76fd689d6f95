"""JWT verification against a key set, with a reason code for every refusal (pure apart from time).

The algorithm is pinned by the key, never by the token: a token's ``alg`` must be one this
gateway allows AND the algorithm of the key its ``kid`` names. That closes ``alg: none`` and the
RS/HS key-confusion attack. HMAC is refused unless a shared secret was configured on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class AuthFailure(Exception):
    """Authentication refused. ``reason`` is stable: it is in the error details and in metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class JwtSettings:
    issuer: str | None
    audience: str | None
    algorithms: frozenset[str] = ASYMMETRIC_ALGORITHMS
    leeway: float = 30.0
    hmac_secret: bytes | None = None
    consumer_claim: str = "sub"
    tier_claim: str = "tier"
    scopes_claim: str = "scope"
    required_claims: tuple[str, ...] = field(default=("exp",))

    def allowed(self) -> frozenset[str]:
        if self.hmac_secret is None:
            return self.algorithms - HMAC_ALGORITHMS
        return self.algorithms | {"HS256"}


def parse_jwks(doc: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """kid -> key for every usable signing key in a JWKS document; keys we cannot use are skipped."""
    keys: dict[str, jwt.PyJWK] = {}
    for raw in doc.get("keys", []) if isinstance(doc, Mapping) else []:
        if not isinstance(raw, Mapping) or raw.get("use", "sig") != "sig" or "kid" not in raw:
            continue
        try:
            key = jwt.PyJWK(dict(raw))
        except jwt.PyJWTError:
            continue
        keys[str(raw["kid"])] = key
    return keys


def key_fingerprint(jwk: jwt.PyJWK) -> str:
    """Algorithm + SHA-256 of the public key material: what a verified token is bound to, so a key
    replaced under the same ``kid`` counts as another key."""
    key: Any = jwk.key
    if isinstance(key, bytes):
        material = b"oct:" + key
    else:
        if not hasattr(key, "public_bytes"):
            key = key.public_key()  # a private key published by mistake: bind to its public half
        material = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return f"{jwk.algorithm_name}:{hashlib.sha256(material).hexdigest()}"


_EXC_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed"),
    (jwt.DecodeError, "malformed_token"),
)


def verify_token(
    token: str,
    keys: Mapping[str, jwt.PyJWK],
    settings: JwtSettings,
) -> dict[str, Any]:
    """The token's claims, or AuthFailure with the reason. ``unknown_kid`` lets the caller refresh."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthFailure("malformed_token", "the bearer token is not a well-formed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.allowed():
        raise AuthFailure("alg_not_allowed", f"token algorithm {alg!r} is not accepted")
    key: Any
    if alg in HMAC_ALGORITHMS:
        key = settings.hmac_secret
    else:
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in keys:
            raise AuthFailure("unknown_kid", "the token's key id is not in the key set")
        jwk = keys[kid]
        if jwk.algorithm_name != alg:
            raise AuthFailure("alg_not_allowed", f"key {kid} is for {jwk.algorithm_name}, token says {alg}")
        key = jwk.key
    required = [*settings.required_claims, settings.consumer_claim]
    if settings.issuer is not None:
        required.append("iss")
    if settings.audience is not None:
        required.append("aud")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway,
            options={"require": required, "verify_aud": settings.audience is not None},
        )
    except jwt.PyJWTError as exc:
        for exc_type, reason in _EXC_REASONS:
            if isinstance(exc, exc_type):
                raise AuthFailure(reason, f"token refused: {exc}") from None
        raise AuthFailure("invalid_token", f"token refused: {exc}") from None
    if not isinstance(claims.get(settings.consumer_claim), str) or not claims[settings.consumer_claim]:
        raise AuthFailure("missing_claim", f"claim {settings.consumer_claim!r} must be a non-empty string")
    return claims


def scopes_from(claims: Mapping[str, Any], claim: str) -> frozenset[str] | None:
    """OAuth2 style: a space-separated string, or a list. None when the claim is absent."""
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    raise AuthFailure("invalid_claim", f"claim {claim!r} must be a string or a list")
