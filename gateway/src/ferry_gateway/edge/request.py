"""What the edge knows about the request being served, and the one way a response is sent.

The edge classes and the gateway share one ``RequestContext`` per request, kept in the ASGI
scope under ``CONTEXT``: the request id, who called (filled in by authentication), which model,
and the status once a response has started.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry_common.asgi import RawHeaders, Scope, Send

CONTEXT = "ferry.request"
JSON = b"application/json"
# The request's headers by lower-case name, built once per request (the last of a repeated one wins).
Headers = dict[bytes, bytes]


@dataclass
class RequestContext:
    request_id: str
    path: str
    client: str
    headers: Headers = field(default_factory=dict)
    model: str = "-"
    consumer: str = "-"
    status: int = 0
    started_response: bool = False


def context(scope: Scope) -> RequestContext:
    ctx = scope[CONTEXT]
    assert isinstance(ctx, RequestContext)
    return ctx


async def respond(
    send: Send,
    ctx: RequestContext,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: RawHeaders | None = None,
) -> int:
    """A whole response in two messages, always with its length and the request id."""
    headers: RawHeaders = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", ctx.request_id.encode()),
    ]
    if extra:
        headers += extra
    ctx.started_response = True
    ctx.status = status
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status
