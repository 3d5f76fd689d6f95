"""One logging setup for every component: JSON lines carrying the component, and the request id
and model of the request being served (bound per task with ``bind``). Never log a token or a key.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ferry_common.timefmt import format_time

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ferry_log_context", default=None
)


@contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Add fields (``request_id=``, ``model=``) to every line logged inside the block, this task only."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "component", "logger", "msg", ...}``; ``extra={"fields": {...}}`` adds keys.

    ``fields`` are the process's constant ones (the predictor's one model), on every line without
    a ``bind`` per request.
    """

    def __init__(self, component: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.component = component
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": format_time(record.created, "milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.fields,
        }
        bound = _context.get()
        if bound:
            entry.update(bound)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(
    component: str,
    level: str = "info",
    quiet: tuple[str, ...] = (),
    fields: Mapping[str, str] | None = None,
) -> None:
    """Send every logger's records to stderr as JSON lines carrying ``fields``; silence ``quiet``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component, fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in quiet:
        logging.getLogger(name).disabled = True
