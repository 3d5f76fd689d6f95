"""The Authenticator's own rules (pure, in-process; keys come from a key set the test changes):
a cached token is bound to the key that verified it, a JWT is a consumer of its own, and a
refused token is not verified again and again."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from ferry_gateway.auth import authenticator as authenticator_module
from ferry_gateway.auth import jwt_verify
from ferry_gateway.auth.authenticator import Authenticator
from ferry_gateway.auth.jwt_verify import AuthFailure, JwtSettings, parse_jwks
from ferry_gateway.consumers.registry import Consumer, ConsumerIndex, ConsumerRegistry
from ferry_testing.gateway import AUDIENCE, ISSUER, PEPPER
from ferry_testing.gateway_jwt import JWKS, OTHER_RSA, claims, sign
from hypothesis import given
from hypothesis import strategies as st

OTHER_RSA_JWK: dict[str, Any] = {
    **jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_RSA.public_key(), as_dict=True),
    "kid": "rsa1",
    "use": "sig",
    "alg": "RS256",
}


class Rotating:
    """A key source whose set the test replaces, as a JWKS refresh would."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.keys = parse_jwks(doc)

    def publish(self, doc: Mapping[str, Any]) -> None:
        self.keys = parse_jwks(doc)

    async def current(self) -> Mapping[str, jwt.PyJWK]:
        return self.keys

    async def refresh_for_unknown_kid(self) -> bool:
        return False


def authenticator(keys: Rotating, *consumers: Consumer, clock: Any = time.time) -> Authenticator:
    registry = ConsumerRegistry(PEPPER, ConsumerIndex(consumers))
    return Authenticator(registry, keys, JwtSettings(ISSUER, AUDIENCE), clock=clock)


async def refusal(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthFailure) as refused:
        await auth.authenticate(f"Bearer {token}", None)
    return refused.value.reason


# ---- finding 6: cached tokens outlived key rotation ------------------------------------------


async def test_a_cached_token_stops_when_its_key_leaves_the_key_set() -> None:
    keys = Rotating(JWKS)
    auth = authenticator(keys)
    token = sign(claims(sub="svc"))
    assert (await auth.authenticate(f"Bearer {token}", None)).consumer == "jwt:svc"
    keys.publish({"keys": [k for k in JWKS["keys"] if k["kid"] != "rsa1"]})  # rsa1 rotated away
    assert await refusal(auth, token) == "unknown_kid"


async def test_a_cached_token_stops_when_its_kid_names_other_key_material() -> None:
    keys = Rotating(JWKS)
    auth = authenticator(keys)
    token = sign(claims())
    await auth.authenticate(f"Bearer {token}", None)
    keys.publish({"keys": [OTHER_RSA_JWK]})  # same kid, another key: not the one that signed it
    assert await refusal(auth, token) == "bad_signature"


async def test_a_cached_token_survives_a_refresh_that_keeps_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = Rotating(JWKS)
    auth = authenticator(keys)
    token = sign(claims())
    await auth.authenticate(f"Bearer {token}", None)
    verified = count_verifications(monkeypatch)
    keys.publish(JWKS)  # refetched: new key objects, same material
    for _ in range(3):
        await auth.authenticate(f"Bearer {token}", None)
    assert verified == []  # still served from the cache


# ---- finding 9: JWT identities blended into API-key consumers ---------------------------------


async def test_a_token_is_its_own_consumer_and_gets_only_what_it_grants() -> None:
    acme = Consumer("acme", "enterprise", frozenset({"predict", "preview", "admin"}), frozenset({"titanic"}))
    auth = authenticator(Rotating(JWKS), acme)
    bare = await auth.authenticate(f"Bearer {sign(claims(sub='acme', scope=None))}", None)
    # not acme's bucket, tier or scopes: the token named none
    assert (bare.consumer, bare.tier, bare.scopes) == ("jwt:acme", "free", frozenset({"predict"}))
    assert bare.models == frozenset({"titanic"})  # the declared Consumer still narrows
    claimed = await auth.authenticate(f"Bearer {sign(claims(sub='acme', tier='basic'))}", None)
    assert (claimed.consumer, claimed.tier) == ("jwt:acme", "basic")
    disabled = authenticator(Rotating(JWKS), Consumer("acme", "free", frozenset({"predict"}), disabled=True))
    assert await refusal(disabled, sign(claims(sub="acme"))) == "consumer_disabled"


@given(st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40))
def test_no_subject_names_a_declared_consumer(subject: str) -> None:
    # a declared name is a DNS label (crd.NAME_PATTERN): no colon, so never jwt:<anything>
    import re

    from ferry_gateway.consumers.crd import NAME_PATTERN

    consumer = authenticator_module.JWT_CONSUMER_PREFIX + subject
    assert re.fullmatch(NAME_PATTERN, consumer) is None


# ---- finding 12: every forged token cost a full signature check --------------------------------


def count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt_verify.verify_token

    def counting(token: str, *args: Any) -> dict[str, Any]:
        calls.append(token)
        return real(token, *args)

    monkeypatch.setattr(authenticator_module, "verify_token", counting)
    return calls


async def test_a_forged_token_is_verified_once_then_refused_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_000.0]
    keys = Rotating(JWKS)
    auth = authenticator(keys, clock=lambda: now[0])
    forged = sign(claims(), OTHER_RSA, kid="rsa1")
    verified = count_verifications(monkeypatch)
    for _ in range(5):
        assert await refusal(auth, forged) == "bad_signature"
    assert len(verified) == 1
    now[0] += Authenticator.REFUSED_TTL  # short-lived: checked again after the TTL
    assert await refusal(auth, forged) == "bad_signature"
    assert len(verified) == 2
    keys.publish({"keys": [OTHER_RSA_JWK]})  # the key set changed: the same token now verifies
    assert (await auth.authenticate(f"Bearer {forged}", None)).consumer == "jwt:mallory"


async def test_unknown_kids_are_not_remembered_and_the_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Authenticator, "REFUSED_SIZE", 3)
    auth = authenticator(Rotating(JWKS))
    verified = count_verifications(monkeypatch)
    early = sign(claims(), OTHER_RSA, kid="not-yet-published")
    for _ in range(2):
        assert await refusal(auth, early) == "unknown_kid"
    assert len(verified) == 2  # it may verify as soon as the key is rotated in
    forged = [sign(claims(sub=f"f{i}"), OTHER_RSA, kid="rsa1") for i in range(5)]
    for token in forged:
        await refusal(auth, token)
    assert len(auth._refused) == 3  # the oldest went first
    before = len(verified)
    await refusal(auth, forged[-1])
    assert len(verified) == before
