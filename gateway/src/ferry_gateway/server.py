"""How the gateway is served: uvicorn's options from the settings, and uvicorn's httptools protocol
with the two limits uvicorn lacks (issue 13, finding 7).

uvicorn (0.54) arms no timer while it waits for a request: a connection that sends nothing, or
trickles its headers a byte at a time, is held for ever. Its ``timeout_keep_alive`` runs only
between requests, and any byte received cancels it; a "request start" timeout is still an open
item of uvicorn's own (Kludex/uvicorn#157). Nor does its httptools parser bound the size of the
headers (only the h11 one has ``h11_max_incomplete_event_size``). So ``GuardedProtocol`` adds:

- a deadline on each request's headers, armed when the connection opens and at the first byte of
  each later request, disarmed when the headers are complete. Past it the connection is closed:
  silently when nothing was sent (an idle socket, as uvicorn closes an idle keep-alive one), with
  408 in the error envelope when a request had begun;
- a cap on the request line plus headers: 413 in the envelope naming the headers (the one
  table of codes has no 431), and the connection is closed.

The body has its own deadline, in the app (``ferry_common.asgi.read_body``), read before any
quota is spent. ``limit_concurrency`` counts as uvicorn's own does (open connections plus requests
in flight) but is checked here, so that past it a request is answered 503 at once in the error
envelope, with Retry-After, rather than uvicorn's plain-text "Service Unavailable" that clients'
envelope parsers cannot read. Idle sockets count against it, which is why the header deadline
matters: it is what gives their slots back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from ferry_common.asgi import Receive, Scope, Send
from ferry_common.errors import ErrorCode, FerryError, FieldError
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ferry_gateway.config import DEFAULT_HEADER_TIMEOUT_SECONDS, DEFAULT_MAX_HEADER_BYTES, Settings

log = logging.getLogger("ferry_gateway.server")

_REASONS = {408: b"Request Timeout", 413: b"Content Too Large"}


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past ``limit_concurrency``: nothing was read or spent; the caller may retry."""
    error = FerryError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "the gateway is at its connection limit; retry shortly",
        [FieldError("connections", "over this gateway's limit of open connections and requests")],
    )
    body = orjson.dumps(error.envelope())
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a header size cap (module docstring).

    The limits are class attributes: ``protocol(...)`` makes a subclass carrying them, because
    uvicorn builds one protocol object per connection from the class it is given.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_concurrency: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._header_bytes = 0

    # ---- the connection ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # counted after parsing, so the body bytes sharing a read with the headers' end never count
        if self._awaiting_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(
                    FerryError(
                        ErrorCode.PAYLOAD_TOO_LARGE,
                        f"request line and headers over {self.max_header_bytes} bytes",
                        [FieldError("headers", f"at most {self.max_header_bytes} bytes")],
                    ),
                )

    # ---- the parser's events -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a later request on a kept-alive connection: its own deadline
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = False
        limit = self.max_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # uvicorn runs ``self.app`` for the request whose headers just completed: for this one
            # request, that is the envelope's 503
            log.warning("connection limit (%d) reached: request refused with 503", limit)
            app, self.app = self.app, _over_capacity
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._awaiting_headers = True
        self._header_bytes = 0

    # ---- the deadline ------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request's headers are late while an earlier one is answered: finish that
            # answer, then close
            self.cycle.keep_alive = False
            return
        if self._header_bytes == 0:
            self.transport.close()  # nothing sent: an idle socket, closed as an idle keep-alive one is
            return
        within = f"{self.header_timeout:g} s"
        self._refuse(
            FerryError(
                ErrorCode.REQUEST_TIMEOUT,
                f"request headers not received within {within}",
                [FieldError("headers", f"send the request line and headers within {within}")],
            ),
        )

    def _refuse(self, error: FerryError) -> None:
        """Answer in the envelope outside any ASGI cycle (there is no request yet), then close."""
        status = error.status
        self._disarm()
        self._awaiting_headers = False
        body = orjson.dumps(error.envelope())
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.info(
            "connection refused before its request: %s",
            error.message,
            extra={"fields": {"status": status, "client": client}},
        )
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        self.transport.close()


def protocol(
    header_timeout: float, max_header_bytes: int, max_concurrency: int | None = None
) -> type[GuardedProtocol]:
    """A ``GuardedProtocol`` class with these limits, for uvicorn's ``http`` option."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "max_concurrency": max_concurrency,
        },
    )


def uvicorn_options(s: Settings) -> dict[str, Any]:
    """What the gateway passes to uvicorn besides the app, host and port: its protocol with the
    header and connection limits (not uvicorn's ``limit_concurrency``: see the module docstring),
    the keep-alive timeout, and how long a SIGTERM waits for requests in flight (uvicorn's own
    default waits for ever, past any pod's grace period)."""
    return {
        "http": protocol(s.header_timeout_seconds, s.max_header_bytes, s.limit_concurrency),
        "timeout_keep_alive": s.keep_alive_seconds,
        "timeout_graceful_shutdown": s.shutdown_timeout_seconds,
    }
