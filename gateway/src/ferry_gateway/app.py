"""The gateway as a plain ASGI application (no framework on the hot path: every microsecond here
is added to every prediction).

Every call naming a model (``upstream.routing.Kind``: v1 list, readiness and predict; v2
metadata, readiness and infer, each with or without a version) starts the same way in
``_model_call``: authenticate (401) -> scopes and allow-list (403) -> the version's colour (404).
A prediction then goes on: route (404/503) -> declared body size (413) -> read the body, within
its size limit and deadline (413/408) -> rate limit and quota in one Redis round trip (429/503)
-> check the body (400; with the binary tensor extension only its JSON header) -> forward
(502/503/504 on predictor failure); ``_predict`` reads as those steps. The body is read before
the limiter is asked so that a client too slow to send it, or one that hangs up, is refused
without spending its rate limit or quota (a refund would cost a second round trip). Metadata
and readiness spend no rate limit or quota. The server's own health and metadata
(``_UNAUTHENTICATED``) need no credentials.

Around the routes sits the edge (``ferry_gateway.edge``), one ASGI class per concern: request
ids, then CORS (a preflight is answered there, before any credential is looked at or any quota
spent), then the counters and access log, then the error envelope. ``/docs`` and ``/openapi.json`` belong to
``ferry_gateway.apidocs``, which follows the catalog on its own task.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from ferry_common.asgi import RawHeaders, Receive, Scope, Send, lifespan, read_body, too_large
from ferry_common.contract import MAX_BODY_BYTES
from ferry_common.errors import ErrorCode, FerryError, FieldError
from ferry_common.logs import bind

from ferry_gateway import health, metrics
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
from ferry_gateway.upstream.pool import FORWARD_REQUEST_HEADERS, INFERENCE_HEADER, UpstreamPool
from ferry_gateway.upstream.routing import (
    BadModelPath,
    Kind,
    ModelRoute,
    Refusal,
    Route,
    Upstreams,
    colour_serving,
    match_model_route,
    valid_model_name,
)

log = logging.getLogger("ferry_gateway.app")

VERSION = importlib.metadata.version("ferry-gateway")
# GET /v2: what Open Inference Protocol clients read to learn what this server speaks
SERVER_METADATA = {"name": "ferry-gateway", "version": VERSION, "extensions": ["binary_tensor_data"]}
# a sane Inference-Header-Content-Length: digits only, and no more of them than a body can have
_MAX_LENGTH_DIGITS = 12


# Answered without credentials: load balancers and probes call them, and they name no model.
_UNAUTHENTICATED = frozenset(
    {"/", "/v2", "/v2/health/live", "/v2/health/ready", "/healthz", "/livez", "/readyz"}
)
_TEXT = b"text/plain; charset=utf-8"

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
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout_seconds: float | None = 30.0,
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
        self.body_timeout_seconds = body_timeout_seconds
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
        route = match_model_route(path)
        if route is not None:
            self._require_method(method, route.kind.method)
            return await self._model_call(route, receive, send, headers, ctx)
        if path == "/v1/usage":
            self._require_method(method, "GET")
            return await self._usage(send, headers, ctx, scope.get("query_string", b""))
        if path in _UNAUTHENTICATED or path.startswith(("/livez/", "/readyz/")):
            self._require_method(method, "GET")
            return await self._server_call(path, scope.get("query_string", b""), send, ctx)
        if self.docs.owns(path):
            self._require_method(method, "GET")
            return await self.docs.handle(path, send, ctx)
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
    async def _model_call(
        self,
        route: ModelRoute | BadModelPath,
        receive: Receive,
        send: Send,
        headers: Headers,
        ctx: RequestContext,
    ) -> int:
        """Every call naming a model: authenticate (401), scopes and allow-list (403), then the
        call itself. Only predictions spend rate limit and quota."""
        if route.kind is Kind.LIST:
            return await self._list_models(send, headers, ctx)
        principal = await self._principal(headers, ctx)
        if isinstance(route, BadModelPath):
            self._check_predict_scope(principal)
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND, "no such model", [FieldError(route.field, route.reason)]
            )
        preview = self._wants_preview(headers)
        self._check_scopes(principal, route.model, preview)
        ctx.model = route.model
        with bind(model=route.model):
            if route.version is not None:
                preview = await self._colour_of(route.model, route.version, principal, preview, ctx)
            if route.kind in (Kind.V1_PREDICT, Kind.V2_INFER):
                return await self._predict(route, principal, preview, receive, send, headers, ctx)
            if route.kind in (Kind.V1_READY, Kind.V2_READY):
                return await self._model_ready(route, preview, send, ctx)
            return await self._model_metadata(route, principal, preview, send, headers, ctx)

    async def _predict(
        self,
        route: ModelRoute,
        principal: Principal,
        preview: bool,
        receive: Receive,
        send: Send,
        headers: Headers,
        ctx: RequestContext,
    ) -> int:
        """The order of checks is the contract (module docstring): each step raises its error."""
        model = route.model
        base = self._route(model, preview)
        self._check_declared_size(headers)
        raw = await read_body(receive, limit=self.max_body_bytes, deadline_seconds=self.body_timeout_seconds)
        decision = await self._limit(principal, model)
        limit_headers = rate_limit_headers(decision)
        binary = route.kind is Kind.V2_INFER and INFERENCE_HEADER in headers
        try:
            body = self._checked_body(raw, headers.get(INFERENCE_HEADER) if binary else None)
            resp = await self.pool.post(
                model,
                base,
                route.path,
                body,
                self._forward_headers(headers, principal, ctx, binary),
                ctx.request_id,
            )
        except FerryError as exc:
            exc.headers.update({k.decode(): v.decode() for k, v in limit_headers})
            raise
        metrics.UPSTREAM_DURATION.labels(model).observe(resp.seconds)
        content_type, extra = self._response_headers(resp.headers)
        return await respond(send, ctx, resp.status, resp.body, content_type, extra + limit_headers)

    async def _model_metadata(
        self,
        route: ModelRoute,
        principal: Principal,
        preview: bool,
        send: Send,
        headers: Headers,
        ctx: RequestContext,
    ) -> int:
        """``GET /v2/models/NAME[/versions/V]``: the serving colour's predictor describes its model."""
        base = self._route(route.model, preview)
        resp = await self.pool.get(
            route.model,
            base,
            route.path,
            self._forward_headers(headers, principal, ctx, False),
            ctx.request_id,
        )
        content_type, extra = self._response_headers(resp.headers)
        return await respond(send, ctx, resp.status, resp.body, content_type, extra)

    async def _model_ready(self, route: ModelRoute, preview: bool, send: Send, ctx: RequestContext) -> int:
        """Can the colour this caller reaches serve? From the ModelDeployment status in a cluster,
        by asking the predictor otherwise. 200 ``{"name", "ready": true}`` or 503, as KServe answers."""
        models = self.catalog.models if self.catalog is not None and self.catalog.synced else None
        target = self.upstreams.route(route.model, preview, models)
        if isinstance(target, Refusal) and not target.not_ready:
            self._route(route.model, preview)  # raises its 404
        if isinstance(target, Refusal):
            ready = False
        elif models is not None:
            entry = models[route.model]
            ready = entry.preview_ready if preview else entry.ready
        else:
            ready = await self._probe(route.model, target.url, route.path, ctx)
        if not ready:
            raise FerryError(
                ErrorCode.MODEL_NOT_READY,
                f"model {route.model}{' (preview)' if preview else ''} is not ready",
                [FieldError("name", "not_ready")],
                headers={"retry-after": "5"},
            )
        return await respond(send, ctx, 200, _json({"name": route.model, "ready": True}))

    async def _probe(self, model: str, base: str, path: str, ctx: RequestContext) -> bool:
        try:
            resp = await self.pool.get(
                model, base, path, [(b"x-request-id", ctx.request_id.encode())], ctx.request_id
            )
        except FerryError:
            return False  # unreachable, too slow, or its breaker is open: not ready
        return resp.status == 200

    async def _colour_of(
        self, model: str, version: str, principal: Principal, preview: bool, ctx: RequestContext
    ) -> bool:
        """The colour serving ``version`` for this caller (True: the preview), or 404 naming it."""
        models = self.catalog.models if self.catalog is not None and self.catalog.synced else None
        if models is not None:
            entry = models.get(model)
            if entry is None:
                self._route(model, False)  # raises its 404
                raise AssertionError("unreachable")
            active, candidate = entry.version, entry.preview_version
        else:
            if self.upstreams.resolve(model, False) is None and self.upstreams.resolve(model, True) is None:
                self._route(model, False)  # no such model at all: its 404 names the model, not the version
            active, candidate = await self._served_versions(model, "preview" in principal.scopes, ctx)
        chosen = colour_serving(
            version, active, candidate, may_preview="preview" in principal.scopes, preview_only=preview
        )
        if chosen is None:
            raise FerryError(
                ErrorCode.MODEL_NOT_FOUND,
                f"model {model} has no version {version} serving",
                [FieldError("version", f"version {version} is not served")],
            )
        return chosen

    async def _served_versions(
        self, model: str, with_preview: bool, ctx: RequestContext
    ) -> tuple[str | None, str | None]:
        """Without a catalog only the predictors know their versions (their v2 metadata says)."""

        async def version_at(preview: bool) -> str | None:
            base = self.upstreams.resolve(model, preview)
            if base is None:
                return None
            try:
                resp = await self.pool.get(
                    model,
                    base,
                    f"/v2/models/{model}",
                    [(b"x-request-id", ctx.request_id.encode())],
                    ctx.request_id,
                )
                versions = orjson.loads(resp.body).get("versions") if resp.status == 200 else None
            except (FerryError, orjson.JSONDecodeError, AttributeError):
                return None
            return str(versions[-1]) if isinstance(versions, list) and versions else None

        active, preview = await asyncio.gather(
            version_at(False), version_at(True) if with_preview else _none()
        )
        return active, preview

    @staticmethod
    def _wants_preview(headers: Headers) -> bool:
        return headers.get(b"x-ferry-preview", b"").lower() in (b"true", b"1")

    def _check_scopes(self, principal: Principal, model: str, preview: bool) -> None:
        """403 for a missing scope or a model outside the allow-list (404 for a bad name, first)."""
        self._check_predict_scope(principal)
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

    def _check_predict_scope(self, principal: Principal) -> None:
        if "predict" not in principal.scopes:
            raise self._forbid("missing_scope", "this credential lacks the 'predict' scope", "scope")

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

    def _checked_body(self, body: bytes, json_length: bytes | None) -> bytes:
        """The body checked as JSON; with the binary tensor extension only its JSON header is,
        the tensors' bytes pass as sent."""
        header = body if json_length is None else body[: self._json_header_length(json_length, len(body))]
        try:
            orjson.loads(header)
        except orjson.JSONDecodeError as exc:
            what = "request body" if json_length is None else "the JSON header of the body"
            reason = str(exc) if json_length is None else f"first {len(header)} bytes: {exc}"
            raise FerryError(
                ErrorCode.INVALID_JSON, f"{what} is not valid JSON", [FieldError("body", reason)]
            ) from None
        return body

    @staticmethod
    def _json_header_length(declared: bytes, body_length: int) -> int:
        """A length the body cannot be split by is as malformed as bad JSON: 400 INVALID_JSON,
        naming the header as the predictor does, so a client sees one answer wherever it fails."""
        field = "Inference-Header-Content-Length"
        if not declared.isdigit() or len(declared) > _MAX_LENGTH_DIGITS:
            raise FerryError(
                ErrorCode.INVALID_JSON,
                f"{field} must be a non-negative integer (the JSON header's length in bytes)",
                [FieldError(field, "not a non-negative integer")],
            )
        length = int(declared)
        if length > body_length:
            raise FerryError(
                ErrorCode.INVALID_JSON,
                f"{field} is larger than the body",
                [FieldError(field, f"is {length} but the body has only {body_length} bytes")],
            )
        return length

    @staticmethod
    def _forward_headers(
        headers: Headers, principal: Principal, ctx: RequestContext, binary: bool
    ) -> RawHeaders:
        forward = [
            (k, headers[k])
            for k in FORWARD_REQUEST_HEADERS
            if k in headers and (binary or k != INFERENCE_HEADER)
        ]
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
        self._check_predict_scope(principal)  # as for every call naming models
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

    async def _usage(self, send: Send, headers: Headers, ctx: RequestContext, query: bytes) -> int:
        principal = self._usage_subject(await self._principal(headers, ctx), query)
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

    def _usage_subject(self, caller: Principal, query: bytes) -> Principal:
        """Whose usage: the caller's, or with ``?consumer=NAME`` a declared consumer's, which
        takes the ``admin`` scope (the one thing that scope grants)."""
        names = urllib.parse.parse_qs(query.decode("latin-1")).get("consumer")
        if not names or names == [caller.consumer]:
            return caller
        if len(names) > 1:
            raise FerryError(
                ErrorCode.INVALID_INPUT, "name one consumer", [FieldError("consumer", "given more than once")]
            )
        if "admin" not in caller.scopes:
            raise self._forbid(
                "missing_scope", "another consumer's usage needs the 'admin' scope", "consumer"
            )
        declared = self.auth.declared(names[0])
        if declared is None:
            # a JWT consumer's tier lives in its tokens: only declared consumers can be looked up
            raise FerryError(
                ErrorCode.NOT_FOUND,
                f"no declared consumer {names[0]!r}",
                [FieldError("consumer", "not a declared consumer")],
            )
        return declared

    # ---- the server itself: health and metadata, no credentials -----------------------------
    async def _server_call(self, path: str, query: bytes, send: Send, ctx: RequestContext) -> int:
        if path == "/":
            return await respond(send, ctx, 200, b'{"status":"alive"}')  # KServe v1 is_server_live
        if path == "/healthz":
            return await respond(send, ctx, 200, b'{"status":"ok"}')
        if path == "/v2":
            return await respond(send, ctx, 200, _json(SERVER_METADATA))
        if path == "/v2/health/live":
            return await respond(send, ctx, 200, b'{"live":true}')
        if path == "/livez" or path.startswith("/livez/"):
            return await self._health_text("livez", path, health.liveness_checks(), query, send, ctx)
        checks = health.readiness_checks(await self._observe())
        if path == "/v2/health/ready":
            failed = health.failures(checks)
            if failed:
                raise FerryError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "the gateway is not ready: " + ", ".join(c.name for c in failed),
                    [FieldError(c.name, c.reason) for c in failed],
                )
            return await respond(send, ctx, 200, b'{"ready":true}')
        return await self._health_text("readyz", path, checks, query, send, ctx)

    async def _health_text(
        self,
        endpoint: str,
        path: str,
        checks: list[health.Check],
        query: bytes,
        send: Send,
        ctx: RequestContext,
    ) -> int:
        name = path[len(endpoint) + 2 :]
        answer = (
            health.single(checks, name)
            if name
            else health.report(endpoint, checks, health.parse_query(query))
        )
        if answer is None:
            raise FerryError(
                ErrorCode.NOT_FOUND,
                f"no {endpoint} check named {name!r}",
                [FieldError("path", "unknown check")],
            )
        return await respond(
            send, ctx, answer.status, answer.text.encode(), _TEXT, [(b"x-content-type-options", b"nosniff")]
        )

    async def _observe(self) -> health.Observed:
        redis_up = await self.limiter.ping()
        return health.Observed(
            redis_up=redis_up,
            redis_why="" if redis_up else self.limiter.why_degraded(),
            fail_open=self.limiter.fail_open,
            redis_configured=self.limiter.redis is not None,
            consumers_synced=self.consumers_ready() if self.consumers_ready is not None else None,
            catalogue_synced=self.catalog.synced if self.catalog is not None else None,
        )


async def _none() -> None:
    return None
