"""The gateway as a plain ASGI application (no framework on the hot path: every microsecond here
is added to every prediction).

Order of checks on a model call: authenticate (401) -> scopes and allow-list (403) -> route
(404) -> declared body size (413) -> rate limit and quota in one Redis round trip (429/503) ->
read and check the body (413/400) -> forward (502/503/504 on predictor failure).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from ferry_common.errors import ErrorCode, FerryError, FieldError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ferry_gateway import metrics
from ferry_gateway.auth.authenticator import Authenticator, Principal
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.auth.jwt_verify import AuthFailure
from ferry_gateway.edge.logs import access_log, audit
from ferry_gateway.openapi import docs_page, spec
from ferry_gateway.limits.ratelimit import Decision, Outcome, RateLimiter
from ferry_gateway.limits.headers import rate_limit_headers
from ferry_gateway.upstream.routing import Refusal, Route, Upstreams, match_predict, valid_model_name
from ferry_gateway.upstream.pool import FORWARD_REQUEST_HEADERS, UpstreamPool

log = logging.getLogger("ferry_gateway.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random per-process prefix and a counter, unique without a urandom call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


JSON = b"application/json"

_DENIAL = {
    Outcome.RATE_LIMITED: (ErrorCode.RATE_LIMITED, "rate limit exceeded; retry after the Retry-After delay"),
    Outcome.QUOTA_EXCEEDED: (ErrorCode.QUOTA_EXCEEDED, "daily quota exhausted; it resets at 00:00 UTC"),
    Outcome.FAIL_CLOSED: (ErrorCode.SERVICE_UNAVAILABLE, "rate limiter unavailable; refusing (fail-closed)"),
}


@dataclass
class _Ctx:
    request_id: str
    path: str
    client: str
    model: str = "-"
    consumer: str = "-"
    started_response: bool = False


class ClientDisconnected(Exception):
    pass


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


class Gateway:
    MAX_CONSUMER_LABELS = 1000

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        upstreams: Upstreams,
        pool: UpstreamPool,
        *,
        max_body_bytes: int = 10 * 1024 * 1024,
        access_log: bool = False,
        on_startup: list[Callable[[], Awaitable[None]]] | None = None,
        on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
        consumers_ready: Callable[[], bool] | None = None,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self.auth = authenticator
        self.limiter = limiter
        self.upstreams = upstreams
        self.pool = pool
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self.consumers_ready = consumers_ready
        self.catalog = catalog
        self._routes: dict[tuple[str, bool], str] = {}
        if catalog is not None:
            catalog.listeners.append(self._catalog_changed)
        self._consumer_labels: set[str] = set()
        self._openapi = _json(spec())
        self._docs = docs_page(spec()).encode()

    # ---- ASGI entry -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers: dict[bytes, bytes] = dict(scope["headers"])
        rid_raw = headers.get(b"x-request-id")
        rid = rid_raw.decode("latin-1") if rid_raw else ""
        client = scope.get("client")
        ctx = _Ctx(
            rid if REQUEST_ID.match(rid) else _new_request_id(), scope["path"], client[0] if client else "-"
        )
        try:
            status = await self._dispatch(scope, receive, send, headers, ctx)
        except FerryError as exc:
            status = await self._send_error(send, exc, ctx)
        except ClientDisconnected:
            status = 499
        except Exception:
            log.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
            status = await self._send_error(send, FerryError(ErrorCode.INTERNAL, "internal error"), ctx)
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(ctx.model, self._consumer_label(ctx.consumer), str(status)).inc()
        if ctx.model != "-":
            metrics.REQUEST_DURATION.labels(ctx.model).observe(elapsed)
        if self.access_log:
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "request_id": ctx.request_id,
                        "consumer": ctx.consumer,
                        "model": ctx.model,
                        "method": scope["method"],
                        "path": ctx.path,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                    }
                },
            )

    def _consumer_label(self, consumer: str) -> str:
        """JWT subjects are not declared anywhere, so their number is unbounded; a metrics label
        must not be. The first MAX_CONSUMER_LABELS names keep their own series."""
        if consumer in self._consumer_labels:
            return consumer
        if len(self._consumer_labels) < self.MAX_CONSUMER_LABELS:
            self._consumer_labels.add(consumer)
            return consumer
        return "other"

    def _catalog_changed(self) -> None:
        """ModelDeployment status moved: say where each model now goes, and close the idle
        connections to colours no longer routed to before their pods are removed."""
        assert self.catalog is not None
        models = self.catalog.models
        routes: dict[tuple[str, bool], str] = {}
        for name in models:
            for preview in (False, True):
                r = self.upstreams.route(name, preview, models)
                if isinstance(r, Route):
                    routes[(name, preview)] = r.url
                    if self._routes.get((name, preview)) != r.url:
                        entry = models[name]
                        log.info(
                            "model %s: %s traffic (version %s) now goes to %s",
                            name,
                            "preview" if preview else "active",
                            entry.preview_version if preview else entry.version,
                            r.url,
                        )
        self._routes = routes
        closed = self.pool.route_only(self.upstreams.routed(models))
        if closed:
            log.info("closed %d idle connections to predictors no longer routed to", closed)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.pool.start()
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- routing ----------------------------------------------------------------------------
    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes], ctx: _Ctx
    ) -> int:
        method: str = scope["method"]
        path: str = scope["path"]
        route = match_predict(path)
        if route is not None:
            self._require_method(method, "POST")
            return await self._predict(route.model, route.path, receive, send, headers, ctx)
        if path == "/v1/models":
            self._require_method(method, "GET")
            return await self._list_models(send, headers, ctx)
        if path == "/v1/usage":
            self._require_method(method, "GET")
            return await self._usage(send, headers, ctx)
        if path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/"):
            self._require_method(method, "GET")
        if path == "/healthz":
            return await self._send(send, 200, b'{"status":"ok"}', ctx)
        if path == "/readyz":
            return await self._ready(send, ctx)
        if path == "/metrics":
            return await self._send(
                send, 200, generate_latest(metrics.REGISTRY), ctx, CONTENT_TYPE_LATEST.encode()
            )
        if path == "/openapi.json":
            return await self._send(send, 200, self._openapi, ctx)
        if path in ("/docs", "/docs/"):
            return await self._send(send, 200, self._docs, ctx, b"text/html; charset=utf-8")
        raise FerryError(ErrorCode.NOT_FOUND, f"no route for {path}", [FieldError("path", "unknown path")])

    @staticmethod
    def _require_method(method: str, allowed: str) -> None:
        if method != allowed:
            raise FerryError(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"use {allowed}",
                [FieldError("method", f"{method} not allowed here")],
                headers={"allow": allowed},
            )

    # ---- auth -------------------------------------------------------------------------------
    async def _principal(self, headers: dict[bytes, bytes], ctx: _Ctx) -> Principal:
        authz = headers.get(b"authorization")
        key = headers.get(b"x-api-key")
        try:
            principal = await self.auth.authenticate(
                authz.decode("latin-1") if authz is not None else None,
                key.decode("latin-1") if key is not None else None,
            )
        except AuthFailure as exc:
            metrics.AUTH_FAILURES.labels(exc.reason).inc()
            field = "x-api-key" if key is not None else "authorization"
            raise FerryError(
                ErrorCode.UNAUTHENTICATED,
                exc.message,
                [FieldError(field, exc.reason)],
                headers={
                    "www-authenticate": f'Bearer error="invalid_token", error_description="{exc.reason}"'
                },
            ) from None
        ctx.consumer = principal.consumer
        return principal

    @staticmethod
    def _forbid(reason: str, message: str, field: str) -> FerryError:
        metrics.AUTH_FAILURES.labels(reason).inc()
        return FerryError(ErrorCode.FORBIDDEN, message, [FieldError(field, reason)])

    # ---- model calls ------------------------------------------------------------------------
    async def _predict(
        self, model: str, path: str, receive: Receive, send: Send, headers: dict[bytes, bytes], ctx: _Ctx
    ) -> int:
        principal = await self._principal(headers, ctx)
        if "predict" not in principal.scopes:
            raise self._forbid("missing_scope", "this credential lacks the 'predict' scope", "scope")
        if not valid_model_name(model):
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND,
                "no such model",
                [FieldError("name", "not a valid model name (DNS label)")],
            )
        preview = headers.get(b"x-ferry-preview", b"").lower() in (b"true", b"1")
        if preview and "preview" not in principal.scopes:
            raise self._forbid(
                "missing_scope", "the preview colour needs the 'preview' scope", "X-Ferry-Preview"
            )
        if not principal.may_use(model):
            raise self._forbid(
                "model_not_allowed", f"consumer {principal.consumer} may not use model {model}", "name"
            )
        models = self.catalog.models if self.catalog is not None and self.catalog.synced else None
        route = self.upstreams.route(model, preview, models)
        if isinstance(route, Refusal):
            if route.not_ready:
                raise FerryError(ErrorCode.MODEL_NOT_READY, route.message, headers={"retry-after": "5"})
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND, route.message, [FieldError("name", f"unknown model {model!r}")]
            )
        base = route.url
        ctx.model = model
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise FerryError(
                    ErrorCode.INVALID_INPUT,
                    "bad Content-Length",
                    [FieldError("content-length", "not an integer")],
                ) from None
            if size > self.max_body_bytes:
                raise self._too_large()
        decision = await self._limit(principal, model)
        limit_headers = rate_limit_headers(decision)
        try:
            body = await self._read_body(receive)
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise FerryError(
                    ErrorCode.INVALID_JSON, "request body is not valid JSON", [FieldError("body", str(exc))]
                ) from None
            forward = [(k, headers[k]) for k in FORWARD_REQUEST_HEADERS if k in headers]
            forward += [
                (b"x-request-id", ctx.request_id.encode()),
                (b"x-ferry-consumer", principal.consumer.encode()),
            ]
            resp = await self.pool.post(model, base, path, body, forward, ctx.request_id)
        except FerryError as exc:
            exc.headers.update({k.decode(): v.decode() for k, v in limit_headers})
            raise
        metrics.UPSTREAM_DURATION.labels(model).observe(resp.seconds)
        content_type = JSON
        extra: RawHeaders = []
        for k, v in resp.headers:
            if k == b"content-type":
                content_type = v
            elif k != b"x-request-id":
                extra.append((k, v))
        return await self._send(send, resp.status, resp.body, ctx, content_type, extra + limit_headers)

    async def _limit(self, principal: Principal, model: str | None) -> Decision:
        decision = await self.limiter.check(principal.consumer, principal.tier, model)
        metrics.RATELIMIT_DECISIONS.labels(principal.tier, decision.outcome.value).inc()
        if decision.admitted:
            return decision
        code, message = _DENIAL[decision.outcome]
        hdrs = {k.decode(): v.decode() for k, v in rate_limit_headers(decision)}
        raise FerryError(code, message, [FieldError("consumer", decision.outcome.value)], headers=hdrs)

    def _too_large(self) -> FerryError:
        return FerryError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request body over {self.max_body_bytes} bytes",
            [FieldError("body", f"at most {self.max_body_bytes} bytes")],
        )

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # ---- other endpoints --------------------------------------------------------------------
    async def _list_models(self, send: Send, headers: dict[bytes, bytes], ctx: _Ctx) -> int:
        principal = await self._principal(headers, ctx)
        if self.catalog is not None:
            with_preview = "preview" in principal.scopes
            listed = [
                e.describe(with_preview)
                for n, e in sorted(self.catalog.models.items())
                if principal.may_use(n)
            ]
            return await self._send(send, 200, _json({"models": listed}), ctx)
        names = [m for m in self.upstreams.known_models() if principal.may_use(m)]

        async def describe(name: str) -> dict[str, Any]:
            base = self.upstreams.resolve(name, False)
            ready = await self.pool.probe(f"{base}/v1/models/{name}") if base else None
            entry: dict[str, Any] = {
                "name": name,
                "status": "Unknown" if ready is None else ("Ready" if ready else "Unavailable"),
                "version": None,  # only ModelDeployment status knows (in a cluster, see catalog.py)
                "color": None,
                "ready": ready,
            }
            if "preview" in principal.scopes:
                entry["preview"] = (
                    {"version": None, "ready": None} if name in self.upstreams.preview else None
                )
            return entry

        models = await asyncio.gather(*(describe(n) for n in names))
        return await self._send(send, 200, _json({"models": models}), ctx)

    async def _usage(self, send: Send, headers: dict[bytes, bytes], ctx: _Ctx) -> int:
        principal = await self._principal(headers, ctx)
        tier = self.limiter.limits.tier(principal.tier)
        decision = await self.limiter.peek(principal.consumer, principal.tier)
        doc: dict[str, Any] = {
            "consumer": principal.consumer,
            "tier": principal.tier,
            "scopes": sorted(principal.scopes),
            "models": sorted(principal.models) if principal.models is not None else None,
            "limits": {"perMinute": tier.per_minute, "burst": tier.burst, "perDay": tier.per_day},
            "rate": None,
            "quota": None,
            "limiter": "ok" if decision.outcome in (Outcome.ALLOWED, Outcome.UNLIMITED) else "unavailable",
        }
        if decision.rate is not None:
            doc["rate"] = {
                "remaining": decision.rate.remaining,
                "resetSeconds": round(decision.rate.reset_seconds, 3),
            }
        if decision.quota is not None:
            doc["quota"] = {
                "remaining": decision.quota.remaining,
                "resetSeconds": decision.quota.reset_seconds,
            }
        return await self._send(send, 200, _json(doc), ctx)

    async def _ready(self, send: Send, ctx: _Ctx) -> int:
        if self.consumers_ready is not None and not self.consumers_ready():
            raise FerryError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "consumers not loaded from the cluster yet",
                [FieldError("consumers", "first list of Consumer resources pending")],
            )
        redis_ok = await self.limiter.ping()
        doc = {
            "redis": "ok" if redis_ok else "down",
            "rateLimitFailureMode": "open" if self.limiter.fail_open else "closed",
        }
        if not redis_ok and not self.limiter.fail_open:
            raise FerryError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "Redis is down and the limiter fails closed",
                [FieldError("redis", "unreachable")],
            )
        return await self._send(send, 200, _json(doc), ctx)

    # ---- responses --------------------------------------------------------------------------
    async def _send(
        self,
        send: Send,
        status: int,
        body: bytes,
        ctx: _Ctx,
        content_type: bytes = JSON,
        extra: RawHeaders | None = None,
    ) -> int:
        headers: RawHeaders = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ctx.request_id.encode()),
        ]
        if extra:
            headers += extra
        ctx.started_response = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _send_error(self, send: Send, exc: FerryError, ctx: _Ctx) -> int:
        status = exc.status
        if status < 500 or exc.code in (ErrorCode.SERVICE_UNAVAILABLE,):
            reason = exc.details[0].reason if exc.details else exc.code.value
            audit(
                "request_denied",
                request_id=ctx.request_id,
                consumer=ctx.consumer,
                model=ctx.model,
                path=ctx.path[:256],
                status=status,
                code=exc.code.value,
                reason=reason,
                client=ctx.client,
            )
        if ctx.started_response:
            return status
        extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        return await self._send(send, status, _json(exc.envelope(ctx.request_id)), ctx, JSON, extra)
