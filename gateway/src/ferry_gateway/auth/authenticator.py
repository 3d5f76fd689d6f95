"""Who is calling: an API key or a bearer JWT turned into a Principal (consumer, tier, scopes).

For a JWT, consumer, tier and scopes come from the configured claims; a Consumer declared under
the same name contributes its model allow-list and fills in a missing tier or scopes. A declared
but disabled consumer is refused whatever the token says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from ferry_gateway.auth.jwt_verify import AuthFailure, JwtSettings, scopes_from, verify_token
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


class KeySource(Protocol):
    async def current(self) -> Mapping[str, jwt.PyJWK]: ...
    async def refresh_for_unknown_kid(self) -> bool: ...


class Authenticator:
    # Verified tokens are remembered until they expire: the signature check is the most expensive
    # step of a request and the same token is typically sent many times.
    CACHE_SIZE = 10_000

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
        self._cache: dict[str, tuple[float, float, dict[str, Any]]] = {}

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
        hit = self._cache.get(token)
        if hit is not None:
            not_before, expires, claims = hit
            if not_before <= now < expires:
                return claims
            del self._cache[token]
        keys = await self.keys.current()
        try:
            claims = verify_token(token, keys, self.jwt_settings)
        except AuthFailure as exc:
            if exc.reason != "unknown_kid" or not await self.keys.refresh_for_unknown_kid():
                raise
            claims = verify_token(token, await self.keys.current(), self.jwt_settings)
        leeway = self.jwt_settings.leeway
        exp = claims.get("exp")
        nbf = claims.get("nbf")
        if isinstance(exp, int | float):
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            start = float(nbf) - leeway if isinstance(nbf, int | float) else float("-inf")
            self._cache[token] = (start, float(exp) + leeway, claims)
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        assert self.jwt_settings is not None
        s = self.jwt_settings
        name = str(claims[s.consumer_claim])
        if len(name) > 256 or not name.isprintable():
            # the name travels on in a header to the predictor and into logs: no control characters
            raise AuthFailure(
                "invalid_claim", f"claim {s.consumer_claim!r} must be printable, at most 256 chars"
            )
        declared: Consumer | None = self.consumers.consumer(name)
        if declared is not None and declared.disabled:
            raise AuthFailure("consumer_disabled", f"consumer {name} is disabled")
        tier = claims.get(s.tier_claim)
        if tier is not None and not isinstance(tier, str):
            raise AuthFailure("invalid_claim", f"claim {s.tier_claim!r} must be a string")
        scopes = scopes_from(claims, s.scopes_claim)
        return Principal(
            consumer=name,
            tier=tier or (declared.tier if declared else "free"),
            scopes=scopes
            if scopes is not None
            else (declared.scopes if declared else frozenset({"predict"})),
            models=declared.models if declared else None,
            method="jwt",
        )

    def forget_cached_tokens(self) -> None:
        self._cache.clear()
