"""One JSON object per line, with the component and the fields bound to the current task only."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any, cast

import pytest
from ferry_common.logs import JsonFormatter, bind, configure


@pytest.fixture
def lines() -> Iterator[Any]:
    """configure("test-component") into a buffer; a function returning the parsed lines so far."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure("test-component", "debug", quiet=("noisy",))
    buffer = io.StringIO()
    cast(logging.StreamHandler[Any], root.handlers[0]).setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("noisy").disabled = False


def test_each_record_is_one_json_line_with_the_component(lines: Any) -> None:
    log = logging.getLogger("ferry.test")
    log.info("hello %s", "world")
    log.warning("two\nlines")  # a newline in the message stays inside the one JSON line
    first, second = lines()
    assert first["msg"] == "hello world" and first["level"] == "info"
    assert (first["component"], first["logger"]) == ("test-component", "ferry.test")
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-12-03T07:48:09.123Z")
    assert second["msg"] == "two\nlines"


def test_bound_fields_and_extra_fields(lines: Any) -> None:
    log = logging.getLogger("ferry.test")
    with bind(request_id="r1", model="titanic"):
        log.info("inside", extra={"fields": {"status": 200}})
        with bind(model="other"):
            log.info("nested")
    log.info("outside")
    inside, nested, outside = lines()
    assert (inside["request_id"], inside["model"], inside["status"]) == ("r1", "titanic", 200)
    assert (nested["request_id"], nested["model"]) == ("r1", "other")
    assert "request_id" not in outside and "model" not in outside


async def test_bound_fields_do_not_leak_between_tasks(lines: Any) -> None:
    log = logging.getLogger("ferry.test")
    both_bound = asyncio.Barrier(2)

    async def request(rid: str) -> None:
        with bind(request_id=rid):
            await both_bound.wait()  # both tasks inside their bind at once
            log.info("served")

    await asyncio.gather(request("a"), request("b"))
    log.info("after")
    entries = lines()
    assert sorted(e["request_id"] for e in entries if e["msg"] == "served") == ["a", "b"]
    assert "request_id" not in entries[-1]


def test_exceptions_are_inside_the_line(lines: Any) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("ferry.test").exception("failed")
    (entry,) = lines()
    assert entry["level"] == "error" and "ValueError: boom" in entry["exc"]


def test_level_and_quiet_loggers(lines: Any) -> None:
    logging.getLogger("noisy").error("not shown")
    logging.getLogger("ferry.test").debug("shown at debug")
    assert [e["msg"] for e in lines()] == ["shown at debug"]
    configure("test-component", "warning")
    assert logging.getLogger().level == logging.WARNING


def test_the_formatter_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %d", (1,), None)
    assert json.loads(JsonFormatter("gateway").format(record))["component"] == "gateway"


def test_constant_fields_are_on_every_line_and_a_bind_overrides_them() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    formatter = JsonFormatter("predictor", {"model": "titanic"})
    assert json.loads(formatter.format(record))["model"] == "titanic"
    with bind(model="other"):
        assert json.loads(formatter.format(record))["model"] == "other"
    assert "model" not in json.loads(JsonFormatter("predictor").format(record))
