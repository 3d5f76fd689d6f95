"""A caller's X-Request-ID is kept only when it is a plain token: it is echoed in responses and
written into every log line of the request, so a newline in it would forge log lines."""

from __future__ import annotations

import pytest
from ferry_common.asgi import Message, Receive, Scope, Send
from ferry_gateway.edge.request import CONTEXT
from ferry_gateway.edge.request_id import RequestIds


async def _request_id_seen(header: bytes | None) -> str:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope[CONTEXT].request_id)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    headers = [(b"x-request-id", header)] if header is not None else []
    scope: Scope = {"type": "http", "path": "/v2", "headers": headers, "client": ("127.0.0.1", 1)}
    await RequestIds(app)(scope, receive, send)
    return seen[0]


async def test_a_plain_request_id_is_kept() -> None:
    assert await _request_id_seen(b"trace-42:a.b_c") == "trace-42:a.b_c"


@pytest.mark.parametrize(
    "header", [b"abc\n", b"abc\nforged=1", b"a" * 129, b"", b"with space", b"\xff"], ids=repr
)
async def test_anything_else_is_replaced_by_a_fresh_id(header: bytes) -> None:
    rid = await _request_id_seen(header)
    assert rid != header.decode("latin-1") and rid.isprintable() and "\n" not in rid
