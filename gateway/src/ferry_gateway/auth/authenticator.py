"""Who is calling: an API key or a bearer JWT turned into a Principal (consumer, tier, scopes).

API keys and JWTs live in separate namespaces. An API key is its declared Consumer: that name,
its tier, scopes and allow-list. A JWT is the consumer ``jwt:<subject>`` (the claim named by
FERRY_JWT_CONSUMER_CLAIM): limited, billed and counted on its own, with the tier and scopes its
token grants (``free`` and ``predict`` when the claims are absent). A Consumer declared under the
subject's name never lends a token its quota, tier or scopes; it can only narrow: a disabled
Consumer refuses the token, and its model allow-list applies.

Verified tokens are cached, each bound to the key that verified it (``kid`` and the key's
fingerprint), so a key removed from (or replaced in) the JWKS stops its cached tokens at the next
key refresh. Tokens refused after a signature check are remembered briefly, so replaying a forged
token does not cost a signature check each time.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from ferry_gateway.auth.jwt_verify import (
    HMAC_ALGORITHMS,
    AuthFailure,
    JwtSettings,
    key_fingerprint,
    scopes_from,
    verify_token,
)
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry, KeyProblem


@dataclass(frozen=True)
class Principal:
    consumer: str
    tier: str
    scopes: frozenset[str]
    models: frozenset[str] | None
    method: str  # "api_key" | "jwt"

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


JWT_CONSUMER_PREFIX = "jwt:"  # a declared Consumer's name is a DNS label: it never holds a colon
JWT_DEFAULT_TIER = "free"
JWT_DEFAULT_SCOPES = frozenset({"predict"})

# Refusals that came out of a signature check and stay true for the same token and key set; not
# unknown_kid (the key may be rotated in a moment) nor token_not_yet_valid (it will be valid).
_REMEMBERED_FAILURES = frozenset(
    {"bad_signature", "token_expired", "wrong_issuer", "wrong_audience", "missing_claim", "invalid_token"}
)


@dataclass
class _Verified:
    not_before: float
    expires: float
    claims: dict[str, Any]
    kid: str | None  # None: HMAC, verified with the configured secret
    key: jwt.PyJWK | None  # the key object that verified it (identity check on the hot path)
    fingerprint: str | None


class KeySource(Protocol):
    async def current(self) -> Mapping[str, jwt.PyJWK]: ...
    async def refresh_for_unknown_kid(self) -> bool: ...


class Authenticator:
    # Verified tokens are remembered until they expire (or their key leaves the key set): the
    # signature check is the most expensive step of a request and the same token is typically
    # sent many times.
    CACHE_SIZE = 10_000
    # Refused tokens, by digest: bounded and short-lived, only to make replays cheap.
    REFUSED_SIZE = 10_000
    REFUSED_TTL = 60.0

    def __init__(
        self,
        consumers: ConsumerRegistry,
        keys: KeySource | None,
        jwt_settings: JwtSettings | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumers = consumers
        self.keys = keys
        self.jwt_settings = jwt_settings
        self.clock = clock
        self._cache: dict[str, _Verified] = {}
        self._refused: OrderedDict[bytes, tuple[float, AuthFailure]] = OrderedDict()
        self._refused_keys: Mapping[str, jwt.PyJWK] | None = None  # the key set they were refused by

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key is not None and authorization is not None:
            # two credentials could name two consumers; guessing which one counts invites confusion
            raise AuthFailure("ambiguous_credentials", "send either Authorization or X-API-Key, not both")
        if api_key is not None:
            try:
                consumer = self.consumers.authenticate_key(api_key)
            except KeyProblem as exc:
                raise AuthFailure(exc.reason, exc.message) from None
            return Principal(consumer.name, consumer.tier, consumer.scopes, consumer.models, "api_key")
        if authorization is None:
            raise AuthFailure("missing_credentials", "send Authorization: Bearer <JWT> or X-API-Key")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure("malformed_authorization", "Authorization must be 'Bearer <JWT>'")
        if self.keys is None or self.jwt_settings is None:
            raise AuthFailure("jwt_not_configured", "this gateway accepts API keys only")
        claims = await self._claims(token)
        return self._principal(claims)

    async def _claims(self, token: str) -> dict[str, Any]:
        assert self.keys is not None and self.jwt_settings is not None
        now = self.clock()
        # asked on every request, cached or not: this is what lets the key set refresh on time,
        # and what a cached token is checked against
        keys = await self.keys.current()
        hit = self._cache.get(token)
        if hit is not None:
            if hit.not_before <= now < hit.expires and self._still_holds(keys, hit):
                return hit.claims
            del self._cache[token]  # expired, or its key was removed or replaced: verify afresh
        digest = hashlib.sha256(token.encode()).digest()
        self._raise_if_refused(digest, keys, now)
        try:
            try:
                claims = verify_token(token, keys, self.jwt_settings)
            except AuthFailure as exc:
                if exc.reason != "unknown_kid" or not await self.keys.refresh_for_unknown_kid():
                    raise
                keys = await self.keys.current()
                claims = verify_token(token, keys, self.jwt_settings)
        except AuthFailure as exc:
            if exc.reason in _REMEMBERED_FAILURES:
                self._remember_refusal(digest, exc, keys, now)
            raise
        self._remember(token, claims, keys)
        return claims

    @staticmethod
    def _still_holds(keys: Mapping[str, jwt.PyJWK], hit: _Verified) -> bool:
        """The key that verified a cached token is still in the key set, with the same material."""
        if hit.kid is None:
            return True  # HMAC: the secret is fixed for the process's life
        current = keys.get(hit.kid)
        if current is None:
            return False
        if current is hit.key:
            return True  # no refresh since: the common case, no hashing
        if key_fingerprint(current) != hit.fingerprint:
            return False
        hit.key = current  # refreshed but unchanged: the identity check suffices from now on
        return True

    def _remember(self, token: str, claims: dict[str, Any], keys: Mapping[str, jwt.PyJWK]) -> None:
        assert self.jwt_settings is not None
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return
        header = jwt.get_unverified_header(token)  # verify_token has parsed it: well-formed
        kid = header.get("kid")
        jwk = None if header.get("alg") in HMAC_ALGORITHMS or not isinstance(kid, str) else keys.get(kid)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        leeway = self.jwt_settings.leeway
        nbf = claims.get("nbf")
        start = float(nbf) - leeway if isinstance(nbf, int | float) else float("-inf")
        self._cache[token] = _Verified(
            start,
            float(exp) + leeway,
            claims,
            kid if jwk is not None else None,
            jwk,
            key_fingerprint(jwk) if jwk is not None else None,
        )

    def _raise_if_refused(self, digest: bytes, keys: Mapping[str, jwt.PyJWK], now: float) -> None:
        if keys is not self._refused_keys:
            # another key set: a signature refused by the old one may verify now
            self._refused.clear()
            self._refused_keys = keys
            return
        hit = self._refused.get(digest)
        if hit is None:
            return
        until, failure = hit
        if now < until:
            raise AuthFailure(failure.reason, failure.message)
        del self._refused[digest]

    def _remember_refusal(
        self, digest: bytes, failure: AuthFailure, keys: Mapping[str, jwt.PyJWK], now: float
    ) -> None:
        if keys is not self._refused_keys:
            self._refused.clear()
            self._refused_keys = keys
        self._refused[digest] = (now + self.REFUSED_TTL, failure)
        self._refused.move_to_end(digest)
        while len(self._refused) > self.REFUSED_SIZE:
            self._refused.popitem(last=False)  # the oldest goes first

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        assert self.jwt_settings is not None
        s = self.jwt_settings
        name = str(claims[s.consumer_claim])
        if len(name) > 256 or not name.isprintable():
            # the name travels on in a header to the predictor and into logs: no control characters
            raise AuthFailure(
                "invalid_claim", f"claim {s.consumer_claim!r} must be printable, at most 256 chars"
            )
        # a Consumer declared under this name only narrows what the token may do (see the module
        # docstring): it never lends its quota, tier or scopes
        declared: Consumer | None = self.consumers.consumer(name)
        if declared is not None and declared.disabled:
            raise AuthFailure("consumer_disabled", f"consumer {name} is disabled")
        tier = claims.get(s.tier_claim)
        if tier is not None and not isinstance(tier, str):
            raise AuthFailure("invalid_claim", f"claim {s.tier_claim!r} must be a string")
        scopes = scopes_from(claims, s.scopes_claim)
        return Principal(
            consumer=JWT_CONSUMER_PREFIX + name,
            tier=tier or JWT_DEFAULT_TIER,
            scopes=scopes if scopes is not None else JWT_DEFAULT_SCOPES,
            models=declared.models if declared else None,
            method="jwt",
        )

    def declared(self, name: str) -> Principal | None:
        """A declared consumer as its API keys authenticate it (for an admin's look-up)."""
        c = self.consumers.consumer(name)
        return None if c is None else Principal(c.name, c.tier, c.scopes, c.models, "api_key")

    def forget_cached_tokens(self) -> None:
        self._cache.clear()
        self._refused.clear()
