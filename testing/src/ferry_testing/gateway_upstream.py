"""A trivially fast HTTP/1.1 server standing in for a predictor (benchmarks and tests).

asyncio + httptools, keep-alive, no framework: it must never be the bottleneck when we measure
the gateway. Modes:
  static  answer every POST with a fixed small JSON body
  echo    answer with the path, the headers the gateway forwarded and the body size
``--delay S`` holds each answer S seconds (concurrently); ``--serial S`` holds each answer S
seconds one at a time, like a single-worker CPU-bound predictor, but without burning CPU.

    python -m ferry_testing.gateway_upstream --port 9001 [--mode echo] [--delay 0] [--serial 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import httptools

STATIC_BODY = b'{"predictions":[0.42]}'


@dataclass
class Options:
    mode: str = "static"
    delay: float = 0.0
    serial: float = 0.0
    name: str = "upstream"
    pending: int = 0
    connections: int = 0  # open client connections (tests watch pooled connections close)
    predictions: int = 0  # POST requests received, retries included
    keep_alive: bool = True  # False: every answer closes its connection (no client pooling)
    # Faults for the next requests, taken in order: "reset" closes the connection with a TCP RST
    # before any byte of an answer (a pod killed mid-request), "partial" sends half an answer
    # and closes, "hang" never answers. Empty: every request is answered.
    faults: list[str] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, opts: Options, lock: asyncio.Lock) -> None:
        self.opts = opts
        self.lock = lock
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transport is no asyncio.Transport
        self.opts.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.opts.connections -= 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        path = self.url.decode()
        headers, body = self.headers, bytes(self.body)
        self._reset()
        if method == "POST":
            self.opts.predictions += 1
        # Faults hit predictions only: the gateway's readiness looks (GET) are answered.
        if self.opts.faults and method == "POST" and self._fault(self.opts.faults.pop(0)):
            return
        if path == "/_pending":  # how much accepted work is still queued (benchmarks wait for 0)
            self._write(json.dumps({"pending": self.opts.pending}).encode())
        elif self.opts.delay or self.opts.serial:
            self.opts.pending += 1
            asyncio.get_running_loop().create_task(self._later(method, path, headers, body))
        else:
            self._answer(method, path, headers, body)

    async def _later(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        try:
            if self.opts.serial:
                async with self.lock:
                    await asyncio.sleep(self.opts.serial)
            if self.opts.delay:
                await asyncio.sleep(self.opts.delay)
            self._answer(method, path, headers, body)
        finally:
            self.opts.pending -= 1

    def _fault(self, fault: str) -> bool:
        if self.transport is None:
            return False
        if fault == "reset":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST, as a killed process's socket does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        elif fault == "partial":
            self.transport.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"predic')
            self.transport.close()
        elif fault != "hang":
            raise ValueError(f"unknown fault {fault!r}")
        return True

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        payload: bytes
        if method == "GET" and path.startswith("/v1/models/"):
            payload = json.dumps({"name": path.rsplit("/", 1)[-1], "ready": True}).encode()
        elif self.opts.mode == "echo":
            doc: dict[str, Any] = {
                "upstream": self.opts.name,
                "method": method,
                "path": path,
                "headers": headers,
                "body_bytes": len(body),
            }
            payload = json.dumps(doc).encode()
        else:
            payload = STATIC_BODY
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: "
            + self.opts.name.encode()
            + (b"" if self.opts.keep_alive else b"\r\nconnection: close")
            + b"\r\ncontent-length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )
        if not self.opts.keep_alive:
            self.transport.close()


async def serve(port: int, opts: Options, host: str = "127.0.0.1") -> asyncio.Server:
    lock = asyncio.Lock()
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Protocol(opts, lock), host, port, backlog=2048)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["static", "echo"], default="static")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--serial", type=float, default=0.0)
    p.add_argument("--name", default="upstream")
    a = p.parse_args()

    async def run() -> None:
        server = await serve(a.port, Options(a.mode, a.delay, a.serial, a.name))
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main()
