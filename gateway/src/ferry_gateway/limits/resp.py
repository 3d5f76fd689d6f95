"""A pipelined Redis client for the limiter's one call per request.

Every request's EVALSHA is written to ONE connection as soon as it is made and the replies are
matched in order (Redis answers a connection's commands in the order it got them), so there is no
connection pool to lock and one write can carry the commands of many concurrent requests.
Replies are parsed by hiredis. Used for plain ``redis://`` / ``rediss://`` URLs; Sentinel and
Cluster go through redis-py, which knows their topologies.

Errors are redis-py's exception types, so callers handle both clients alike. A timed-out call
closes the connection: a late reply would otherwise be matched to the wrong request.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


def encode(args: Sequence[Arg]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiters:  # nothing asked for this: the stream is out of step
                self.close()
                return
            future = self.waiters.popleft()
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("connection to Redis lost"))

    def send(self, data: bytes, replies: int) -> list[asyncio.Future[Any]]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(replies)]
        self.waiters.extend(futures)
        self.transport.write(data)
        return futures

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PipelinedRedis:
    def __init__(self, url: str, socket_timeout: float = 0.25, connect_timeout: float = 0.25) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"PipelinedRedis needs redis:// or rediss://, not {parts.scheme}://")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _Protocol:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, conn = await loop.create_connection(
                        _Protocol,
                        self.host,
                        self.port,
                        ssl=ssl.create_default_context() if self.tls else None,
                    )
                    setup: list[list[Arg]] = []
                    if self.password:
                        setup.append(
                            ["AUTH", self.username, self.password]
                            if self.username
                            else ["AUTH", self.password]
                        )
                    if self.db:
                        setup.append(["SELECT", self.db])
                    if setup:
                        for f in conn.send(b"".join(encode(c) for c in setup), len(setup)):
                            await f
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
                ) from None
            self._conn = conn
            return conn

    async def execute(self, *args: Arg) -> Any:
        conn = await self._connection()
        (future,) = conn.send(encode(args), 1)
        timer = asyncio.get_running_loop().call_later(self.socket_timeout, _expire, future, conn)
        try:
            return await future
        finally:
            timer.cancel()

    # the part of redis-py's interface the limiter uses
    def register_script(self, script: str) -> _Script:
        return _Script(self, script)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return list(await self.execute("MGET", *keys))

    async def ping(self) -> bool:
        return bool(await self.execute("PING") == b"PONG")

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _Script:
    def __init__(self, client: PipelinedRedis, script: str) -> None:
        self.client = client
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Arg] = ()) -> Any:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            # a restarted or failed-over Redis forgot the script: load it once, then go on
            await self.client.execute("SCRIPT", "LOAD", self.script)
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)


def _expire(future: asyncio.Future[Any], conn: _Protocol) -> None:
    if not future.done():
        future.set_exception(RedisTimeoutError("Redis did not answer in time"))
        conn.close()  # later replies would be matched to the wrong callers
