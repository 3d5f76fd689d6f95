"""Every failure rendered once, as the one error envelope (``ferry_common.errors``): a FerryError
raised anywhere inside, a client gone mid-body (499, nothing sent), or a bug (500, logged). Every
refusal is also an audit event."""

from __future__ import annotations

import logging

import orjson
from ferry_common.asgi import ASGIApp, ClientDisconnected, Receive, Scope, Send
from ferry_common.errors import ErrorCode, FerryError

from ferry_gateway.edge.logs import audit
from ferry_gateway.edge.request import JSON, RequestContext, context, respond

log = logging.getLogger("ferry_gateway.app")

# nginx's code for "the client closed the connection before the response": counted, never sent
CLIENT_CLOSED = 499


class ErrorEnvelope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = context(scope)
        try:
            await self.app(scope, receive, send)
        except FerryError as exc:
            await render_error(send, exc, ctx)
        except ClientDisconnected:
            ctx.status = CLIENT_CLOSED
        except Exception:
            log.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
            await render_error(send, FerryError(ErrorCode.INTERNAL, "internal error"), ctx)


async def render_error(send: Send, exc: FerryError, ctx: RequestContext) -> None:
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
        ctx.status = status
        return
    extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
    await respond(send, ctx, status, orjson.dumps(exc.envelope(ctx.request_id)), JSON, extra)
