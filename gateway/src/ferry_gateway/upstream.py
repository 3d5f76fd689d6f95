"""Calls to predictors: pooled keep-alive connections, timeouts, a breaker per upstream.

Failures become the shared error envelope: cannot connect -> 502 UPSTREAM_UNAVAILABLE,
too slow -> 504 UPSTREAM_TIMEOUT, breaker open -> 503 MODEL_NOT_READY (fail fast while the
predictor is known to be down). A predictor's own answers, errors included, pass through.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import aiohttp
from ferry_common.errors import ErrorCode, FerryError

from ferry_gateway import metrics
from ferry_gateway.breaker import BreakerState, CircuitBreaker

log = logging.getLogger("ferry_gateway.upstream")

# Request headers worth passing to a predictor; everything else (credentials above all) stays here.
FORWARD_REQUEST_HEADERS = (b"content-type", b"accept", b"traceparent", b"tracestate", b"content-encoding")
# Response headers that describe the hop rather than the payload.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "server",
        "date",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    }
)


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seconds: float


class UpstreamPool:
    def __init__(
        self,
        timeout: float = 30.0,
        connect_timeout: float = 2.0,
        max_connections: int = 512,
        breaker_failures: int = 5,
        breaker_reset: float = 5.0,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self.max_connections = max_connections
        self.breaker_failures = breaker_failures
        self.breaker_reset = breaker_reset
        self._breakers: dict[str, CircuitBreaker] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30, ttl_dns_cache=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def breaker(self, base: str) -> CircuitBreaker:
        b = self._breakers.get(base)
        if b is None:
            b = self._breakers[base] = CircuitBreaker(self.breaker_failures, self.breaker_reset)
        return b

    async def post(
        self, model: str, base: str, path: str, body: bytes, headers: dict[str, str]
    ) -> UpstreamResponse:
        assert self._session is not None, "UpstreamPool.start() not called"
        breaker = self.breaker(base)
        if not breaker.allow():
            metrics.UPSTREAM_ERRORS.labels(model, "circuit_open").inc()
            raise FerryError(
                ErrorCode.MODEL_NOT_READY,
                f"model {model} is unavailable (recent failures); retry shortly",
                headers={"retry-after": str(int(self.breaker_reset))},
            )
        started = time.perf_counter()
        try:
            async with self._session.post(base + path, data=body, headers=headers) as resp:
                data = await resp.read()
                status = resp.status
                out = [
                    (k.lower().encode(), v.encode())
                    for k, v in resp.headers.items()
                    if k.lower() not in HOP_BY_HOP
                ]
        except TimeoutError:
            self._failed(model, base, breaker, "timeout")
            raise FerryError(ErrorCode.UPSTREAM_TIMEOUT, f"model {model} did not answer in time") from None
        except aiohttp.ClientConnectorError:
            self._failed(model, base, breaker, "connect")
            raise FerryError(ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot connect to model {model}") from None
        except aiohttp.ClientError as exc:
            self._failed(model, base, breaker, "protocol")
            log.warning("upstream %s for %s failed: %s", base, model, type(exc).__name__)
            raise FerryError(ErrorCode.UPSTREAM_UNAVAILABLE, f"model {model} broke the connection") from None
        seconds = time.perf_counter() - started
        if status in (502, 503, 504):
            breaker.failure()
            self._gauge(base, breaker)
        elif breaker.failures:
            breaker.success()
            self._gauge(base, breaker)
        return UpstreamResponse(status, out, data, seconds)

    async def probe(self, url: str) -> bool | None:
        """Is the predictor ready (KServe ``GET /v1/models/NAME``)? None when it cannot be asked."""
        assert self._session is not None
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                if resp.status != 200:
                    return False
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return bool(doc.get("ready", True)) if isinstance(doc, dict) else True

    def _failed(self, model: str, base: str, breaker: CircuitBreaker, kind: str) -> None:
        breaker.failure()
        metrics.UPSTREAM_ERRORS.labels(model, kind).inc()
        self._gauge(base, breaker)

    @staticmethod
    def _gauge(base: str, breaker: CircuitBreaker) -> None:
        metrics.CIRCUIT_OPEN.labels(base).set(1 if breaker.state is BreakerState.OPEN else 0)
