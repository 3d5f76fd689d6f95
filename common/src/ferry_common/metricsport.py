"""Metrics on a port of their own, beside the traffic port, in the same process and event loop.

Why a port of its own (issue 13, finding 2): the traffic port is what Services, the Ingress and
the gateway route to, so anything served there is public; consumer names with their per-status
counts and internal predictor URLs are not. Prometheus scrapes the metrics port, which no Service
that carries traffic routes to and which the NetworkPolicies admit from Prometheus alone; the
traffic port answers ``/metrics`` 404 like any unknown path.

Why the same event loop rather than prometheus_client's thread server: the predictor keeps its
per-row tallies in plain dicts read at scrape time, safe only while one thread writes and reads
them; a scrape served by the loop keeps it so, and costs the loop one short task per scrape.

Used by the gateway and the predictor (both depend on uvicorn; ferry_common itself does not, so
uvicorn is imported by the function that runs the servers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ferry_common.asgi import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    import uvicorn

PATH = "/metrics"
# An exposition and its content type (prometheus_client's CONTENT_TYPE_LATEST).
Render = Callable[[], tuple[bytes, str]]


def exposition_app(render: Render) -> ASGIApp:
    """An ASGI app that answers ``GET /metrics`` with ``render()`` and 404 to anything else."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan="off": only http and websocket come
            return
        if scope["path"] != PATH:
            status, body, ctype = 404, b"not found: metrics are at /metrics\n", "text/plain"
        elif scope["method"] not in ("GET", "HEAD"):
            status, body, ctype = 405, b"GET /metrics\n", "text/plain"
        else:
            status = 200
            body, ctype = render()
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app


def run(main: uvicorn.Config, metrics: uvicorn.Config | None) -> None:
    """Serve ``main`` and, when given, ``metrics`` beside it until a signal stops ``main``.

    The metrics socket is bound first, so a port already taken fails the start with uvicorn's
    message instead of leaving a process that serves traffic and no metrics. ``main`` alone
    handles SIGTERM/SIGINT (uvicorn's graceful shutdown); the metrics server stops after it.
    """
    import uvicorn

    if metrics is None:
        uvicorn.Server(main).run()
        return
    metrics.load()
    sock = metrics.bind_socket()

    class Beside(uvicorn.Server):
        # Two servers installing signal handlers would take them from each other.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def both() -> None:
        side = Beside(metrics)
        task = asyncio.create_task(side.serve(sockets=[sock]))
        try:
            await uvicorn.Server(main).serve()
        finally:
            side.should_exit = True
            await task

    with asyncio.Runner(loop_factory=main.get_loop_factory()) as runner:
        runner.run(both())


def config(app: ASGIApp, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for the metrics port: no lifespan of its own, no access log, quiet."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        **options,
    )
