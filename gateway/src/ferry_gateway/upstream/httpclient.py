"""A lean HTTP/1.1 client for the hot path: keep-alive pool, httptools parsing, no framework.

The general-purpose clients spend 100+ microseconds of CPU per request in layers a reverse
proxy does not need (cookie jars, redirects, tracing hooks, decompression); this does one
request per pooled connection at a time and nothing else. Timeouts are per request; a timed-out
connection is closed, never reused, because its late answer would be read by the next request.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before a whole response arrived."""

    def __init__(self, received_any: bool) -> None:
        super().__init__("connection closed by upstream" + (" mid-response" if received_any else ""))
        self.received_any = received_any


class UpstreamConnectError(ConnectionError):
    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# Why a request may be sent once more, on a fresh connection (through a Service, often to another
# endpoint): never after a timeout or a partial answer, only when the upstream provably answered
# nothing. A prediction has no side effects, so sending one twice is safe even if it arrived.
RETRY_REASONS = ("refused", "reset", "keepalive")


@dataclass(frozen=True)
class Origin:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected http(s)://HOST[:PORT]")
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls)

    @property
    def host_header(self) -> bytes:
        default = 443 if self.tls else 80
        return (self.host if self.port == default else f"{self.host}:{self.port}").encode()


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.future: asyncio.Future[Response] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._received = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamClosed(self._received))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self.parser.get_status_code(), self._headers, b"".join(self._body))
        if not self.parser.should_keep_alive():
            self.close()
        future, self.future = self.future, None
        if future is not None and not future.done():
            future.set_result(response)

    # ours
    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._headers, self._body, self._received = [], [], False
        self.future = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.future

    def _fail(self, exc: Exception) -> None:
        future, self.future = self.future, None
        if future is not None and not future.done():
            future.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


RetryHook = Callable[[str, str], None]  # (the request's tag, RETRY_REASONS entry)


class HttpClient:
    def __init__(self, max_idle_per_origin: int = 512, on_retry: RetryHook | None = None) -> None:
        self.max_idle = max_idle_per_origin
        self._on_retry = on_retry
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl = ssl.create_default_context()
        self._only: frozenset[Origin] | None = None  # None: every origin may keep idle connections

    def keep_only(self, origins: frozenset[Origin]) -> int:
        """Close the idle connections to every other origin now, and those in use when their
        request ends (the request itself completes). Returns how many were closed now."""
        self._only = origins
        closed = 0
        for origin in [o for o in self._idle if o not in origins]:
            for conn in self._idle.pop(origin):
                conn.close()
                closed += 1
        return closed

    def idle(self, origin: Origin) -> int:
        return sum(1 for c in self._idle.get(origin, ()) if not c.closed)

    async def _connect(self, origin: Origin, limit: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(
                    _Connection, origin.host, origin.port, ssl=self._ssl if origin.tls else None
                )
        except TimeoutError:
            raise UpstreamConnectError(
                f"cannot connect to {origin.host}:{origin.port}: no answer in {limit} s", timed_out=True
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from None
        return conn

    async def request(
        self,
        method: str,
        origin: Origin,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        response_timeout: float = 30.0,
        connect_timeout: float = 2.0,
        tag: str = "-",
    ) -> Response:
        """One request; raises UpstreamConnectError, TimeoutError, or ConnectionError.

        Sent once more on a fresh connection when the upstream provably answered nothing; the
        client's ``on_retry`` hook gets ``tag`` and the reason (RETRY_REASONS), whatever the
        second attempt's outcome.
        """
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"host: ", origin.host_header, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        data = b"".join(head)
        for attempt in (0, 1):
            idle = self._idle.get(origin)
            conn = None
            while idle:
                candidate = idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                try:
                    conn = await self._connect(origin, connect_timeout)
                except UpstreamConnectError as exc:
                    # Refused (a pod going away, an endpoint not yet removed): nothing was sent.
                    # A timed-out connect is not retried: the caller's deadline is already spent.
                    if attempt == 0 and not exc.timed_out:
                        if self._on_retry is not None:
                            self._on_retry(tag, "refused")
                        continue
                    raise
            future = conn.send(data)
            loop = asyncio.get_running_loop()
            timer = loop.call_later(response_timeout, _expire, future)
            try:
                response = await future
            except UpstreamClosed as exc:
                # Closed or reset before a single response byte: the keep-alive race (an idle
                # connection closed just as it was reused) or a backend shutting down. Sent again
                # once, on a fresh connection; never after part of an answer arrived.
                if attempt == 0 and not exc.received_any:
                    if self._on_retry is not None:
                        self._on_retry(tag, "keepalive" if reused else "reset")
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            finally:
                timer.cancel()
            if self._only is not None and origin not in self._only:
                conn.close()  # not routed to any more: its backend may go away at any moment
            elif not conn.closed:
                pool = self._idle.setdefault(origin, [])
                if len(pool) < self.max_idle:
                    pool.append(conn)
                else:
                    conn.close()
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()


def _expire(future: asyncio.Future[Response]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
