"""``ferry_gateway.server``: the header deadline and size cap uvicorn's httptools protocol lacks
(issue 13, finding 7), driven byte by byte over a stand-in transport (no socket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from ferry_gateway import config
from ferry_gateway.server import GuardedProtocol, protocol, uvicorn_options
from uvicorn.server import ServerState


class Transport(asyncio.Transport):
    """What uvicorn's protocol asks of a transport; records what it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.9", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never reached in these tests
    raise AssertionError("the app was called")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:  # requests whose headers completed: their (never run) ASGI cycles
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


def _connect(loop: asyncio.AbstractEventLoop, **limits: Any) -> tuple[GuardedProtocol, Transport]:
    cls = protocol(limits.get("header_timeout", 10.0), limits.get("max_header_bytes", 1024))
    cfg = uvicorn.Config(_app, log_config=None, lifespan="off")
    proto = cls(config=cfg, server_state=ServerState(), app_state={}, _loop=loop)
    transport = Transport()
    proto.connection_made(transport)
    return proto, transport


def _deadline(proto: GuardedProtocol) -> asyncio.TimerHandle:
    timer = proto._header_timer
    assert timer is not None, "no header deadline armed"
    return timer


def _fire(proto: GuardedProtocol) -> None:
    _deadline(proto).cancel()
    proto._headers_late()  # the deadline passing, without waiting for it


def _answer(transport: Transport) -> tuple[int, dict[str, Any]]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_socket_that_sends_nothing_is_closed_at_the_header_deadline(
    loop: asyncio.AbstractEventLoop,
) -> None:
    proto, transport = _connect(loop, header_timeout=7.0)
    assert _deadline(proto).when() == pytest.approx(loop.time() + 7.0, abs=0.5)
    _fire(proto)
    assert transport.closed and transport.written == b""  # nobody asked anything: nothing to answer


def test_headers_trickled_past_the_deadline_get_408_naming_them(loop: asyncio.AbstractEventLoop) -> None:
    proto, transport = _connect(loop, header_timeout=3.0)
    for byte in b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nX-Api-Key: k":
        proto.data_received(bytes([byte]))  # a byte at a time: each one used to reset uvicorn's timer
    _fire(proto)
    status, envelope = _answer(transport)
    assert (status, envelope["error_code"]) == (408, "REQUEST_TIMEOUT")
    assert envelope["details"] == [
        {"field": "headers", "reason": "send the request line and headers within 3 s"}
    ]
    assert transport.closed


def test_complete_headers_disarm_the_deadline(loop: asyncio.AbstractEventLoop) -> None:
    proto, transport = _connect(loop)
    proto.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert proto._header_timer is None and not transport.closed


def test_headers_over_the_cap_get_413_naming_them(loop: asyncio.AbstractEventLoop) -> None:
    proto, transport = _connect(loop, max_header_bytes=1024)
    proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000)
    status, envelope = _answer(transport)
    assert (status, envelope["error_code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert envelope["details"] == [{"field": "headers", "reason": "at most 1024 bytes"}]
    assert transport.closed


def test_a_body_in_the_same_read_as_the_headers_is_not_counted_as_headers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    proto, transport = _connect(loop, max_header_bytes=1024)
    head = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    proto.data_received(head + b" " * 5000)
    assert transport.written == b"" and not transport.closed


def test_the_settings_reach_uvicorn() -> None:
    s = config.load(
        environ={
            "FERRY_LIMIT_CONCURRENCY": "321",
            "FERRY_KEEP_ALIVE_SECONDS": "61",
            "FERRY_HEADER_TIMEOUT_SECONDS": "4",
            "FERRY_MAX_HEADER_BYTES": "9000",
        }
    )
    options = uvicorn_options(s)
    assert options["timeout_keep_alive"] == 61.0 and "limit_concurrency" not in options
    assert issubclass(options["http"], GuardedProtocol)
    assert (options["http"].header_timeout, options["http"].max_header_bytes) == (4.0, 9000)
    assert options["http"].max_concurrency == 321
    defaults = config.load(environ={})
    assert (defaults.limit_concurrency, defaults.header_timeout_seconds, defaults.body_timeout_seconds) == (
        config.DEFAULT_LIMIT_CONCURRENCY,
        config.DEFAULT_HEADER_TIMEOUT_SECONDS,
        config.DEFAULT_BODY_TIMEOUT_SECONDS,
    )
