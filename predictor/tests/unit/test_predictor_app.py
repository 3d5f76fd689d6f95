"""The ASGI app called in-process: body reading (empty, too large, disconnect, trickle), lifespan,
and the JSON log lines that carry the request id and the model."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from ferry_common.asgi import Message
from ferry_predictor.__main__ import configure_logging
from ferry_predictor.app import PredictorApp
from ferry_predictor.config import Config
from ferry_predictor.model import ArtifactMismatch, LoadedModel

PATH = "/v1/models/titanic:predict"


class Raises:
    def predict(self, frame: Any) -> Any:
        raise RuntimeError("the model fell over")


def app_with(model: LoadedModel | None = None, **settings: Any) -> PredictorApp:
    app = PredictorApp(Config("titanic", "models:/titanic-survival/1", color="blue", **settings))
    app.model = model
    return app


def scope(headers: list[tuple[bytes, bytes]] | None = None, method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": PATH, "headers": headers or []}


async def call(app: PredictorApp, scope: dict[str, Any], messages: list[Message]) -> list[Message]:
    """What the app sent; ``receive`` hands out ``messages``, then waits as an idle client does."""
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answer(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    body: dict[str, Any] = json.loads(sent[1]["body"])
    return sent[0]["status"], body


async def test_a_client_that_disconnects_mid_body_gets_no_answer() -> None:
    app = app_with()
    part = {"type": "http.request", "body": b'{"instances": [', "more_body": True}
    sent = await call(app, scope(), [part, {"type": "http.disconnect"}])
    assert sent == []  # not "body is empty": nobody is there to read an answer


async def test_an_empty_body_is_a_400() -> None:
    status, body = answer(await call(app_with(), scope(), [{"type": "http.request", "body": b""}]))
    assert (status, body["error_code"]) == (400, "INVALID_JSON")
    assert "empty" in body["message"]


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    app = app_with(max_body_bytes=10)
    status, body = answer(await call(app, scope([(b"content-length", b"11")]), []))
    assert (status, body["error_code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_a_streamed_body_over_the_limit_is_refused() -> None:
    app = app_with(max_body_bytes=10)
    chunks: list[Message] = [
        {"type": "http.request", "body": b"123456", "more_body": True},
        {"type": "http.request", "body": b"123456", "more_body": True},
    ]
    status, body = answer(await call(app, scope(), chunks))
    assert (status, body["error_code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_a_trickling_client_gets_408() -> None:
    app = app_with(body_timeout_seconds=0.05)
    first: Message = {"type": "http.request", "body": b"{", "more_body": True}
    status, body = answer(await asyncio.wait_for(call(app, scope(), [first]), timeout=5))
    assert (status, body["error_code"]) == (408, "REQUEST_TIMEOUT")


async def test_lifespan_starts_loading_and_shutdown_stops_it() -> None:
    tried = threading.Event()

    def loader(config: Config) -> LoadedModel:
        tried.set()
        raise ConnectionError("registry down")  # so the loader waits to retry until shut down

    app = PredictorApp(Config("titanic", "models:/titanic-survival/1"), loader=loader)
    events: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        if len(events) == 1:  # shut down only once loading has begun
            assert await asyncio.to_thread(tried.wait, 10)
        return events.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert app._thread is not None
    await asyncio.to_thread(app._thread.join, 10)
    assert not app._thread.is_alive() and app.model is None


EXPECTED, GOT = "sha256:" + "a" * 64, "sha256:" + "b" * 64


async def test_refused_artifacts_are_never_ready_nor_retried(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Config] = []

    def loader(config: Config) -> LoadedModel:
        calls.append(config)
        raise ArtifactMismatch(EXPECTED, GOT)

    app = PredictorApp(Config("titanic", "models:/titanic-survival/1", version_override="1"), loader=loader)
    with caplog.at_level(logging.ERROR, "ferry_predictor"):
        app.start_loading()
        assert app._thread is not None
        await asyncio.to_thread(app._thread.join, 10)
    assert not app._thread.is_alive() and len(calls) == 1 and app.model is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert EXPECTED in line and GOT in line and "refused" in line
    metrics = app.exposition()[0].decode()
    assert 'ferry_predictor_artifact_mismatch{model="titanic",version="1"} 1.0' in metrics
    for path in ("/v2/health/ready", "/v2/models/titanic/ready", "/v1/models/titanic"):
        status, body = answer(await call(app, {**scope(method="GET"), "path": path}, []))
        assert (status, body["error_code"]) == (503, "MODEL_NOT_READY"), path
        assert body["details"] == [
            {"field": "FERRY_ARTIFACT_DIGEST", "reason": f"expected {EXPECTED}, got {GOT}"}
        ]
    body_message: Message = {"type": "http.request", "body": b'{"instances": []}'}
    status, body = answer(await call(app, scope(), [body_message]))
    assert (status, body["error_code"]) == (503, "MODEL_NOT_READY") and "refused" in body["message"]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The process's logging as ``main`` sets it up, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(Config("titanic", "models:/titanic-survival/1", log_level="debug"))
    buffer = io.StringIO()
    # configure() writes to stderr; pytest swaps stderr between phases, so read a buffer instead.
    cast(logging.StreamHandler[Any], root.handlers[0]).setStream(buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_log_lines_are_json_with_the_request_id_and_model(
    json_logs: io.StringIO,
) -> None:
    model = LoadedModel("models:/titanic-survival/1", "1", "custom", None, None, pyfunc=Raises())
    request: Message = {"type": "http.request", "body": b'{"instances": [{"x": 1}]}'}
    status, body = answer(await call(app_with(model), scope([(b"x-request-id", b"req-7")]), [request]))
    assert (status, body["error_code"]) == (500, "INTERNAL")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    (entry,) = [e for e in lines if e["msg"].startswith("unexpected error")]
    assert (entry["component"], entry["request_id"], entry["model"]) == ("predictor", "req-7", "titanic")
    assert entry["level"] == "error" and "the model fell over" in entry["exc"]
