"""JWT verification alone (pure): HS256 only when configured, and never keyed with the public key."""

from __future__ import annotations

import jwt
import pytest
from ferry_gateway.auth.jwt_verify import AuthFailure, JwtSettings, parse_jwks, verify_token
from ferry_testing.gateway import AUDIENCE, ISSUER
from ferry_testing.gateway_jwt import (
    JWKS,
    claims,
    hs256_with_public_key,
)


def test_hmac_only_when_configured_and_then_not_with_the_public_key() -> None:
    keys = parse_jwks(JWKS)
    hs = jwt.encode(claims(), "shared-secret-of-32-bytes-length!", algorithm="HS256")
    with pytest.raises(AuthFailure) as refused:
        verify_token(hs, keys, JwtSettings(ISSUER, AUDIENCE))
    assert refused.value.reason == "alg_not_allowed"
    hmac_on = JwtSettings(ISSUER, AUDIENCE, hmac_secret=b"shared-secret-of-32-bytes-length!")
    assert verify_token(hs, keys, hmac_on)["sub"] == "mallory"
    with pytest.raises(AuthFailure) as confused:
        verify_token(hs256_with_public_key(), keys, hmac_on)
    assert confused.value.reason == "bad_signature"
