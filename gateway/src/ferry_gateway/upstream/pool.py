"""Calls to predictors: pooled keep-alive connections, timeouts, a breaker per upstream.

Failures become the shared error envelope: cannot connect -> 502 UPSTREAM_UNAVAILABLE,
too slow -> 504 UPSTREAM_TIMEOUT, breaker open -> 503 MODEL_NOT_READY (fail fast while the
predictor is known to be down). A predictor's own answers, errors included, pass through.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ferry_common.errors import ErrorCode, FerryError

from ferry_gateway import metrics
from ferry_gateway.limits.breaker import BreakerState, CircuitBreaker
from ferry_gateway.upstream.httpclient import HttpClient, Origin, UpstreamConnectError

log = logging.getLogger("ferry_gateway.upstream")

INFERENCE_HEADER = b"inference-header-content-length"
# Request headers worth passing to a predictor; everything else (credentials above all) stays here.
FORWARD_REQUEST_HEADERS = (
    b"content-type",
    b"accept",
    b"traceparent",
    b"tracestate",
    b"content-encoding",
    b"accept-encoding",
    # the binary tensor extension (v2 REST): how many leading body bytes are the JSON header
    INFERENCE_HEADER,
)
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


def _count_retry(model: str, reason: str) -> None:
    metrics.UPSTREAM_RETRIES.labels(model, reason).inc()


class UpstreamPool:
    def __init__(
        self,
        timeout: float = 30.0,
        connect_timeout: float = 2.0,
        max_idle_per_upstream: int = 512,
        breaker_failures: int = 5,
        breaker_reset: float = 5.0,
    ) -> None:
        self.response_timeout = timeout
        self.connect_timeout = connect_timeout
        self.breaker_failures = breaker_failures
        self.breaker_reset = breaker_reset
        self._breakers: dict[str, CircuitBreaker] = {}
        self._origins: dict[str, Origin] = {}
        self._client = HttpClient(max_idle_per_upstream, on_retry=_count_retry)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._client.close()

    def route_only(self, bases: set[str]) -> int:
        """Only these upstreams are routed to now (in a cluster, after every catalog change).

        Idle keep-alive connections to any other are closed at once and busy ones when their
        request ends, so no connection outlives the colour it reached (its pods are removed after
        the operator's delay) and none is reused if that host is routed to again later.
        Returns how many idle connections were closed."""
        keep = {b: self._origin(b)[0] for b in bases}
        for gone in [b for b in self._origins if b not in keep]:
            del self._origins[gone]
            if self._breakers.pop(gone, None) is not None:
                metrics.CIRCUIT_OPEN.remove(gone)  # a colour's series ends with the colour
        return self._client.keep_only(frozenset(keep.values()))

    def idle_connections(self, base: str) -> int:
        return self._client.idle(Origin.parse(base))

    def breaker(self, base: str) -> CircuitBreaker:
        b = self._breakers.get(base)
        if b is None:
            b = self._breakers[base] = CircuitBreaker(self.breaker_failures, self.breaker_reset)
        return b

    def _origin(self, base: str) -> tuple[Origin, str]:
        origin = self._origins.get(base)
        if origin is None:
            origin = self._origins[base] = Origin.parse(base)
        return origin, urlsplit(base).path.rstrip("/")

    async def post(
        self,
        model: str,
        base: str,
        path: str,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        request_id: str = "-",
    ) -> UpstreamResponse:
        return await self.call("POST", model, base, path, body, headers, request_id)

    async def get(
        self, model: str, base: str, path: str, headers: list[tuple[bytes, bytes]], request_id: str = "-"
    ) -> UpstreamResponse:
        """Metadata and readiness: the same connections, timeouts and breaker as predictions."""
        return await self.call("GET", model, base, path, b"", headers, request_id)

    async def call(
        self,
        method: str,
        model: str,
        base: str,
        path: str,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        request_id: str = "-",
    ) -> UpstreamResponse:
        breaker = self.breaker(base)
        if not breaker.allow():
            metrics.UPSTREAM_ERRORS.labels(model, "circuit_open").inc()
            raise FerryError(
                ErrorCode.MODEL_NOT_READY,
                f"model {model} is unavailable (recent failures); retry shortly",
                headers={"retry-after": str(int(self.breaker_reset))},
            )
        origin, prefix = self._origin(base)
        started = time.perf_counter()
        try:
            with breaker.guard():  # any exception fails the call; a cancelled trial frees its slot
                resp = await self._client.request(
                    method,
                    origin,
                    prefix + path,
                    headers,
                    body,
                    self.response_timeout,
                    self.connect_timeout,
                    model,
                )
        except TimeoutError:
            self._failed(model, base, breaker, "timeout")
            raise FerryError(ErrorCode.UPSTREAM_TIMEOUT, f"model {model} did not answer in time") from None
        except UpstreamConnectError:
            self._failed(model, base, breaker, "connect")
            raise FerryError(ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot connect to model {model}") from None
        except ConnectionError as exc:
            self._failed(model, base, breaker, "protocol")
            log.warning(
                "upstream %s for %s failed: %s",
                base,
                model,
                exc,
                extra={"fields": {"request_id": request_id, "model": model}},
            )
            raise FerryError(ErrorCode.UPSTREAM_UNAVAILABLE, f"model {model} broke the connection") from None
        seconds = time.perf_counter() - started
        if resp.status in (502, 503, 504):
            breaker.failure()
            self._gauge(base, breaker)
        elif breaker.failures:
            breaker.success()
            self._gauge(base, breaker)
        out = [(k, v) for k, v in resp.headers if k.decode("latin-1") not in HOP_BY_HOP]
        return UpstreamResponse(resp.status, out, resp.body, seconds)

    async def probe(self, url: str) -> bool | None:
        """Is the predictor ready (KServe ``GET /v1/models/NAME``)? False when it cannot be reached,
        None when its answer does not say."""
        parts = urlsplit(url)
        try:
            origin = Origin.parse(f"{parts.scheme}://{parts.netloc}")
            resp = await self._client.request("GET", origin, parts.path, [], b"", 1.0, 1.0)
        except (ConnectionError, TimeoutError, ValueError):
            return False
        try:
            doc = json.loads(resp.body) if resp.status == 200 else None
        except ValueError:
            return None
        if resp.status != 200:
            return False
        return bool(doc.get("ready", True)) if isinstance(doc, dict) else True

    def _failed(self, model: str, base: str, breaker: CircuitBreaker, kind: str) -> None:
        # the breaker's guard has counted the failure already
        metrics.UPSTREAM_ERRORS.labels(model, kind).inc()
        self._gauge(base, breaker)

    @staticmethod
    def _gauge(base: str, breaker: CircuitBreaker) -> None:
        metrics.CIRCUIT_OPEN.labels(base).set(1 if breaker.state is BreakerState.OPEN else 0)
