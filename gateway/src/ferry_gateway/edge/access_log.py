"""After every request: the request counter and duration histogram, and (FERRY_ACCESS_LOG) one
JSON line with who called what and the outcome."""

from __future__ import annotations

import time
from collections.abc import Callable

from ferry_common.asgi import ASGIApp, Receive, Scope, Send

from ferry_gateway import metrics
from ferry_gateway.edge.logs import access_log
from ferry_gateway.edge.request import context


class AccessLog:
    """``consumer_label`` bounds the consumer label's values (see Gateway._consumer_label)."""

    def __init__(self, app: ASGIApp, *, enabled: bool, consumer_label: Callable[[str], str]) -> None:
        self.app = app
        self.enabled = enabled
        self.consumer_label = consumer_label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        elapsed = time.perf_counter() - started
        ctx = context(scope)
        status = str(ctx.status)
        metrics.REQUESTS.labels(ctx.model, self.consumer_label(ctx.consumer), status).inc()
        if ctx.model != "-":
            metrics.REQUEST_DURATION.labels(ctx.model).observe(elapsed)
        if self.enabled:
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "request_id": ctx.request_id,
                        "consumer": ctx.consumer,
                        "model": ctx.model,
                        "method": scope["method"],
                        "path": ctx.path,
                        "status": ctx.status,
                        "ms": round(elapsed * 1000, 3),
                    }
                },
            )
