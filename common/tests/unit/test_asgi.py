"""The shared ASGI pieces: the body reader's limits, disconnect and deadline, and the lifespan loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from ferry_common.asgi import (
    ClientDisconnected,
    Message,
    Receive,
    declared_length,
    header,
    lifespan,
    read_body,
)
from ferry_common.errors import ErrorCode, FerryError


def feed(*messages: Message, then_wait: bool = True) -> tuple[Receive, list[Message]]:
    """A ``receive`` handing out ``messages``; then it blocks like a client that sends nothing more."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if not then_wait:
            raise AssertionError("read past the last message")
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive, pending


def chunk(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_header_and_declared_length() -> None:
    scope = {"headers": [(b"content-length", b"12"), (b"x-a", b"1"), (b"x-a", b"2")]}
    assert header(scope, b"x-a") == "1" and header(scope, b"x-b") is None
    assert declared_length(scope) == 12
    assert declared_length({"headers": [(b"content-length", b"-1")]}) is None
    assert declared_length({"headers": []}) is None


async def test_one_chunk() -> None:
    receive, _ = feed(chunk(b"hello"), then_wait=False)
    assert await read_body(receive, limit=5) == b"hello"


async def test_several_chunks_are_joined_and_empty_ones_skipped() -> None:
    receive, left = feed(chunk(b"ab", True), chunk(b"", True), chunk(b"cd", True), chunk(b"e"), chunk(b"x"))
    assert await read_body(receive, limit=10) == b"abcde"
    assert left == [chunk(b"x")]  # stops at the last chunk


async def test_an_empty_body_is_empty_bytes() -> None:
    receive, _ = feed({"type": "http.request"}, then_wait=False)
    assert await read_body(receive, limit=10) == b""


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive, left = feed(chunk(b"x"))
    with pytest.raises(FerryError) as exc:
        await read_body(receive, limit=10, declared=11)
    assert exc.value.code is ErrorCode.PAYLOAD_TOO_LARGE and exc.value.status == 413
    assert left == [chunk(b"x")]  # nothing read
    assert exc.value.details[0].field == "body" and "10 bytes" in exc.value.message


async def test_reading_stops_as_soon_as_the_limit_is_passed() -> None:
    receive, left = feed(chunk(b"12345", True), chunk(b"678", True), chunk(b"9"))
    with pytest.raises(FerryError) as exc:
        await read_body(receive, limit=7)
    assert exc.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert left == [chunk(b"9")]


async def test_exactly_the_limit_is_accepted() -> None:
    receive, _ = feed(chunk(b"1234", True), chunk(b"567"), then_wait=False)
    assert await read_body(receive, limit=7, declared=7) == b"1234567"


async def test_a_disconnect_raises_client_disconnected() -> None:
    receive, _ = feed(chunk(b"12", True), {"type": "http.disconnect"}, then_wait=False)
    with pytest.raises(ClientDisconnected):
        await read_body(receive, limit=10)


async def test_a_body_not_complete_within_the_deadline_is_408() -> None:
    receive, _ = feed(chunk(b"{", True))
    with pytest.raises(FerryError) as exc:
        await asyncio.wait_for(read_body(receive, limit=10, deadline_seconds=0.05), timeout=5)
    assert exc.value.code is ErrorCode.REQUEST_TIMEOUT and exc.value.status == 408
    assert "0.05 s" in exc.value.message


async def test_the_deadline_covers_the_whole_body_not_each_chunk() -> None:
    async def trickle() -> Message:
        await asyncio.sleep(0.02)
        return chunk(b"x", True)  # every chunk in time, the body never complete

    with pytest.raises(FerryError) as exc:
        await asyncio.wait_for(read_body(trickle, limit=1000, deadline_seconds=0.1), timeout=5)
    assert exc.value.code is ErrorCode.REQUEST_TIMEOUT


async def test_no_deadline_waits_for_the_body() -> None:
    receive, _ = feed(chunk(b"ok"), then_wait=False)
    assert await read_body(receive, limit=10, deadline_seconds=None) == b"ok"


Step = Callable[[], Awaitable[None]]


async def run_lifespan(startup: Step | None, shutdown: Step | None, events: list[str]) -> list[Message]:
    receive, _ = feed(*({"type": e} for e in events), then_wait=False)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await lifespan(receive, send, startup, shutdown)
    return sent


async def test_lifespan_runs_startup_then_shutdown() -> None:
    calls: list[str] = []

    async def startup() -> None:
        calls.append("startup")

    async def shutdown() -> None:
        calls.append("shutdown")

    sent = await run_lifespan(startup, shutdown, ["lifespan.startup", "lifespan.shutdown"])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["startup", "shutdown"]


async def test_lifespan_without_steps() -> None:
    sent = await run_lifespan(None, None, ["lifespan.startup", "lifespan.shutdown"])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_failed_startup_is_reported_with_its_message() -> None:
    async def startup() -> None:
        raise RuntimeError("no model")

    sent = await run_lifespan(startup, None, ["lifespan.startup"])
    assert sent == [{"type": "lifespan.startup.failed", "message": "no model"}]


async def test_a_failed_shutdown_is_reported_with_its_message() -> None:
    async def shutdown() -> None:
        raise RuntimeError("stuck")

    sent = await run_lifespan(None, shutdown, ["lifespan.shutdown"])
    assert sent == [{"type": "lifespan.shutdown.failed", "message": "stuck"}]
