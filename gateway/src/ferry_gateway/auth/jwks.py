"""Where verification keys come from: a static JWKS file, or a JWKS URL cached and refreshed.

The URL source refreshes on expiry and when a token names an unknown ``kid`` (key rotation),
but at most once per ``min_refresh`` seconds, so a flood of made-up kids cannot turn the gateway
into a load generator against the identity provider. A response is read up to ``max_bytes``
(a key set is a few KiB; a misdirected URL must not fill the gateway's memory); a larger one is
refused and the known keys are kept, like any failed fetch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from ferry_gateway.auth.jwt_verify import parse_jwks

log = logging.getLogger("ferry_gateway.auth.jwks")

DEFAULT_MAX_BYTES = 256 * 1024


class JwksTooLarge(ValueError):
    pass


class StaticKeys:
    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.keys = parse_jwks(doc)
        self.version = 0

    @classmethod
    def from_file(cls, path: Path) -> StaticKeys:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read JWKS: {exc}") from None
        keys = cls(doc)
        if not keys.keys:
            raise ValueError(f"{path}: JWKS holds no usable signing key (each needs kid, kty and use=sig)")
        return keys

    async def current(self) -> Mapping[str, jwt.PyJWK]:
        return self.keys

    async def refresh_for_unknown_kid(self) -> bool:
        return False


class UrlKeys:
    def __init__(
        self,
        url: str,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.max_bytes = max_bytes
        self.clock = clock
        self.keys: dict[str, jwt.PyJWK] = {}
        self.version = 0
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._fetched_at = self.clock()
        try:
            async with self._session.get(self.url) as resp:
                resp.raise_for_status()
                doc = json.loads(await self._read_capped(resp))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d known keys", self.url, exc, len(self.keys)
            )
            return
        keys = parse_jwks(doc)
        if keys:
            self.keys = keys
            self.version += 1
            log.info("JWKS refreshed from %s: %d keys", self.url, len(keys))

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        too_large = JwksTooLarge(f"response larger than {self.max_bytes} bytes, refused")
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(self.max_bytes + 1 - size):  # never past the cap
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
        return b"".join(chunks)

    async def current(self) -> Mapping[str, jwt.PyJWK]:
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl:
            async with self._lock:
                if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl:
                    await self._fetch()
        return self.keys

    async def refresh_for_unknown_kid(self) -> bool:
        """Refetch unless we did so very recently; True if the key set may have changed."""
        async with self._lock:
            if self._fetched_at is not None and self.clock() - self._fetched_at < self.min_refresh:
                return False
            before = self.version
            await self._fetch()
            return self.version != before

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
