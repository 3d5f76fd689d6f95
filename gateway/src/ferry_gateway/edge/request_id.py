"""Request ids: keep the caller's ``X-Request-Id`` when it is sane, else make one; every log line
of the request carries it (``ferry_common.logs.bind``) and so does the response."""

from __future__ import annotations

import itertools
import re
import secrets

from ferry_common.asgi import ASGIApp, Receive, Scope, Send
from ferry_common.logs import bind

from ferry_gateway.edge.request import CONTEXT, RequestContext

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A random per-process prefix and a counter: unique without a urandom call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


class RequestIds:
    """Outermost edge class: creates the request's context in the scope under ``CONTEXT``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # once per request: every later lookup reads this
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        client = scope.get("client")
        ctx = RequestContext(
            rid if REQUEST_ID.fullmatch(rid) else new_request_id(),
            scope["path"],
            client[0] if client else "-",
            headers,
        )
        scope[CONTEXT] = ctx
        with bind(request_id=ctx.request_id):
            await self.app(scope, receive, send)
