"""The gateway as a plain ASGI application (no framework on the hot path: every microsecond here
is added to every prediction).

Order of checks on a model call: authenticate (401) -> scopes and allow-list (403) -> route
(404) -> declared body size (413) -> rate limit and quota in one Redis round trip (429/503) ->
read and check the body (413/400) -> forward (502/503/504 on predictor failure); ``_predict``
reads as those steps.

Around the routes sits the edge (``ferry_gateway.edge``), one ASGI class per concern: request
ids, then the counters and access log, then the error envelope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from ferry_common.asgi import RawHeaders, Receive, Scope, Send, lifespan, read_body, too_large
from ferry_common.errors import ErrorCode, FerryError, FieldError
from ferry_common.logs import bind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ferry_gateway import metrics
from ferry_gateway.apidocs import ApiDocs, Fetch, Refresher
from ferry_gateway.auth.authenticator import Authenticator, Principal
from ferry_gateway.auth.jwt_verify import AuthFailure
from ferry_gateway.edge.access_log import AccessLog
from ferry_gateway.edge.cors import Cors, CorsPolicy
from ferry_gateway.edge.errors import ErrorEnvelope
from ferry_gateway.edge.request import JSON, Headers, RequestContext, context, respond
from ferry_gateway.edge.request_id import RequestIds
from ferry_gateway.limits.headers import rate_limit_headers
from ferry_gateway.limits.ratelimit import Decision, Outcome, RateLimiter
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.pool import FORWARD_REQUEST_HEADERS, UpstreamPool
from ferry_gateway.upstream.routing import Refusal, Route, Upstreams, match_predict, valid_model_name

log = logging.getLogger("ferry_gateway.app")


_DENIAL = {
    Outcome.RATE_LIMITED: (ErrorCode.RATE_LIMITED, "rate limit exceeded; retry after the Retry-After delay"),
    Outcome.QUOTA_EXCEEDED: (ErrorCode.QUOTA_EXCEEDED, "daily quota exhausted; it resets at 00:00 UTC"),
    Outcome.FAIL_CLOSED: (ErrorCode.SERVICE_UNAVAILABLE, "rate limiter unavailable; refusing (fail-closed)"),
}


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
        cors: CorsPolicy | None = None,
        docs_fetch: Fetch | None = None,
        docs_interval: float = 10.0,
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
        # docs_fetch: how /openapi.json learns each model's signature (None: it describes none)
        self.docs = ApiDocs(Refresher(upstreams, catalog, docs_fetch, interval=docs_interval))
        # the edge, outermost first: request id -> CORS (preflights end here) -> access log and
        # counters -> error envelope
        self._edge = RequestIds(
            Cors(
                AccessLog(
                    ErrorEnvelope(self._endpoint), enabled=access_log, consumer_label=self._consumer_label
                ),
                cors or CorsPolicy(),
            )
        )

    # ---- ASGI entry -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self._startup, self._shutdown)
            return
        if scope["type"] != "http":
            return
        await self._edge(scope, receive, send)

    async def _startup(self) -> None:
        await self.pool.start()
        await self.docs.refresher.start()
        for hook in self.on_startup:
            await hook()

    async def _shutdown(self) -> None:
        await self.docs.refresher.stop()
        await self.pool.close()
        for hook in self.on_shutdown:
            await hook()

    async def _endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Innermost: the gateway's own routes, inside the edge classes."""
        ctx = context(scope)
        await self._dispatch(scope, receive, send, ctx.headers, ctx)

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

    # ---- routing ----------------------------------------------------------------------------
    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, ctx: RequestContext
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
        if self.docs.owns(path):
            self._require_method(method, "GET")
            return await self.docs.handle(path, send, ctx)
        if path in ("/healthz", "/readyz", "/metrics"):
            self._require_method(method, "GET")
        if path == "/healthz":
            return await respond(send, ctx, 200, b'{"status":"ok"}')
        if path == "/readyz":
            return await self._ready(send, ctx)
        if path == "/metrics":
            return await respond(
                send, ctx, 200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST.encode()
            )
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
    async def _principal(self, headers: Headers, ctx: RequestContext) -> Principal:
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
        self, model: str, path: str, receive: Receive, send: Send, headers: Headers, ctx: RequestContext
    ) -> int:
        """The order of checks is the contract (module docstring): each step raises its error."""
        principal = await self._principal(headers, ctx)
        preview = self._wants_preview(headers)
        self._check_scopes(principal, model, preview)
        base = self._route(model, preview)
        ctx.model = model
        with bind(model=model):
            self._check_declared_size(headers)
            decision = await self._limit(principal, model)
            limit_headers = rate_limit_headers(decision)
            try:
                body = await self._json_body(receive)
                resp = await self.pool.post(
                    model, base, path, body, self._forward_headers(headers, principal, ctx), ctx.request_id
                )
            except FerryError as exc:
                exc.headers.update({k.decode(): v.decode() for k, v in limit_headers})
                raise
            metrics.UPSTREAM_DURATION.labels(model).observe(resp.seconds)
            content_type, extra = self._response_headers(resp.headers)
            return await respond(send, ctx, resp.status, resp.body, content_type, extra + limit_headers)

    @staticmethod
    def _wants_preview(headers: Headers) -> bool:
        return headers.get(b"x-ferry-preview", b"").lower() in (b"true", b"1")

    def _check_scopes(self, principal: Principal, model: str, preview: bool) -> None:
        """403 for a missing scope or a model outside the allow-list (404 for a bad name, first)."""
        if "predict" not in principal.scopes:
            raise self._forbid("missing_scope", "this credential lacks the 'predict' scope", "scope")
        if not valid_model_name(model):
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND,
                "no such model",
                [FieldError("name", "not a valid model name (DNS label)")],
            )
        if preview and "preview" not in principal.scopes:
            raise self._forbid(
                "missing_scope", "the preview colour needs the 'preview' scope", "X-Ferry-Preview"
            )
        if not principal.may_use(model):
            raise self._forbid(
                "model_not_allowed", f"consumer {principal.consumer} may not use model {model}", "name"
            )

    def _route(self, model: str, preview: bool) -> str:
        """The predictor's base URL; 404 for an unknown model, 503 for one not ready yet."""
        models = self.catalog.models if self.catalog is not None and self.catalog.synced else None
        route = self.upstreams.route(model, preview, models)
        if isinstance(route, Refusal):
            if route.not_ready:
                raise FerryError(ErrorCode.MODEL_NOT_READY, route.message, headers={"retry-after": "5"})
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND, route.message, [FieldError("name", f"unknown model {model!r}")]
            )
        return route.url

    def _check_declared_size(self, headers: Headers) -> None:
        """413 before the rate limit spends anything, when Content-Length already says too much."""
        declared = headers.get(b"content-length")
        if declared is None:
            return
        try:
            size = int(declared)
        except ValueError:
            raise FerryError(
                ErrorCode.INVALID_INPUT,
                "bad Content-Length",
                [FieldError("content-length", "not an integer")],
            ) from None
        if size > self.max_body_bytes:
            raise too_large(self.max_body_bytes)

    async def _json_body(self, receive: Receive) -> bytes:
        """The body (413 past the limit, ClientDisconnected if the client leaves), checked as JSON."""
        body = await read_body(receive, limit=self.max_body_bytes)
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FerryError(
                ErrorCode.INVALID_JSON, "request body is not valid JSON", [FieldError("body", str(exc))]
            ) from None
        return body

    @staticmethod
    def _forward_headers(headers: Headers, principal: Principal, ctx: RequestContext) -> RawHeaders:
        forward = [(k, headers[k]) for k in FORWARD_REQUEST_HEADERS if k in headers]
        forward += [
            (b"x-request-id", ctx.request_id.encode()),
            (b"x-ferry-consumer", principal.consumer.encode()),
        ]
        return forward

    @staticmethod
    def _response_headers(upstream: RawHeaders) -> tuple[bytes, RawHeaders]:
        """The predictor's content type and its other headers, minus its own request id."""
        content_type = JSON
        extra: RawHeaders = []
        for k, v in upstream:
            if k == b"content-type":
                content_type = v
            elif k != b"x-request-id":
                extra.append((k, v))
        return content_type, extra

    async def _limit(self, principal: Principal, model: str | None) -> Decision:
        decision = await self.limiter.check(principal.consumer, principal.tier, model)
        metrics.RATELIMIT_DECISIONS.labels(principal.tier, decision.outcome.value).inc()
        if decision.admitted:
            return decision
        code, message = _DENIAL[decision.outcome]
        hdrs = {k.decode(): v.decode() for k, v in rate_limit_headers(decision)}
        raise FerryError(code, message, [FieldError("consumer", decision.outcome.value)], headers=hdrs)

    # ---- other endpoints --------------------------------------------------------------------
    async def _list_models(self, send: Send, headers: Headers, ctx: RequestContext) -> int:
        principal = await self._principal(headers, ctx)
        if self.catalog is not None:
            with_preview = "preview" in principal.scopes
            listed = [
                e.describe(with_preview)
                for n, e in sorted(self.catalog.models.items())
                if principal.may_use(n)
            ]
            return await respond(send, ctx, 200, _json({"models": listed}))
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
        return await respond(send, ctx, 200, _json({"models": models}))

    async def _usage(self, send: Send, headers: Headers, ctx: RequestContext) -> int:
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
        return await respond(send, ctx, 200, _json(doc))

    async def _ready(self, send: Send, ctx: RequestContext) -> int:
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
        return await respond(send, ctx, 200, _json(doc))
