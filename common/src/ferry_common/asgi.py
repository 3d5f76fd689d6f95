"""What both of Ferry's ASGI servers (gateway, predictor) share: the types, the request-body
reader and the lifespan loop. Plain ASGI, no framework, because each sits on every request's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ferry_common.errors import ErrorCode, FerryError, FieldError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: there is nobody to answer."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def too_large(limit: int) -> FerryError:
    return FerryError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"request body over {limit} bytes",
        [FieldError("body", f"at most {limit} bytes")],
    )


def declared_length(scope: Scope) -> int | None:
    """Content-Length as the client declared it; None when absent or not a number."""
    raw = header(scope, b"content-length")
    return int(raw) if raw is not None and raw.isdigit() else None


async def read_body(
    receive: Receive,
    *,
    limit: int,
    declared: int | None = None,
    deadline_seconds: float | None = None,
) -> bytes:
    """The whole request body, at most ``limit`` bytes.

    Refuses before reading when the declared length is over the limit, stops reading as soon as
    the received bytes pass it (413), raises ClientDisconnected on ``http.disconnect``, and gives
    up with 408 when the body is not complete within ``deadline_seconds`` of the call, so a client
    trickling its body cannot hold a connection open for ever.
    """
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        # One deadline for the whole body (None: none), armed once per request: cheaper than a
        # wait_for per receive(), which costs a task each time, on a path that takes microseconds.
        async with asyncio.timeout(deadline_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        if deadline_seconds is None:  # not our deadline: receive() itself timed out
            raise
        raise FerryError(
            ErrorCode.REQUEST_TIMEOUT,
            f"request body not received within {deadline_seconds:g} s",
            [FieldError("body", f"send the whole body within {deadline_seconds:g} s")],
        ) from None


async def lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer the ASGI lifespan protocol, running ``startup``/``shutdown`` at its two events.

    A step that raises is reported as ``lifespan.startup.failed`` / ``lifespan.shutdown.failed``
    with its message, as the ASGI spec asks: the server exits instead of serving half-initialised,
    and logs why a shutdown went wrong.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if startup is not None:
                    await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                if shutdown is not None:
                    await shutdown()
            except Exception as exc:
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return
