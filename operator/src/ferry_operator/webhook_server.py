"""The HTTPS endpoint MLflow delivers registry webhooks to: ``POST /hooks/mlflow``.

``Receiver`` turns one request (headers, body) into an answer and, for a genuine new event, a call
of ``on_event``; ``WebhookServer`` is the aiohttp shell that serves it over TLS. Answers are the
shared error envelope; an accepted delivery is 202 with the event and how many ModelDeployments it
concerned (their names stay private: the answer goes back to the registry, not to their owners).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from ferry_common.errors import HTTP_STATUS, ErrorCode, FerryError, envelope

from ferry_operator import registry_events as ev
from ferry_operator.metrics import WEBHOOK_DELIVERIES, WEBHOOK_LAST_ACCEPTED
from ferry_operator.webhook_tls import Material, server_context

log = logging.getLogger("ferry.webhook")

PATH = "/hooks/mlflow"
BODY_DEADLINE_SECONDS = 10.0
OnEvent = Callable[[ev.RegistryEvent], list[ev.Key]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Receiver:
    def __init__(
        self,
        secret: str,
        on_event: OnEvent,
        max_age: float = ev.MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._on_event = on_event
        self._max_age = max_age
        self._clock = clock
        self._deliveries = ev.Deliveries(max_age)

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        """One delivery: refused with the reason, ignored, or accepted and acted on."""
        now = self._clock()
        try:
            event = ev.verify(self._secret, headers, body, now, self._max_age)
            self._deliveries.accept(event, now)
        except FerryError as err:
            WEBHOOK_DELIVERIES.labels(err.code.value.lower()).inc()
            # The reason only: the body and signature are the sender's, and may be an attacker's.
            log.warning("webhook delivery refused (%d): %s", err.status, err.message)
            return Answer(err.status, err.envelope())
        WEBHOOK_LAST_ACCEPTED.set(now)
        if not event.relevant:
            WEBHOOK_DELIVERIES.labels("ignored").inc()
            log.info("webhook delivery %s: %s, nothing to do", event.delivery_id, event.kind)
            return Answer(202, {"event": event.kind, "deployments": 0})
        keys = self._on_event(event)
        WEBHOOK_DELIVERIES.labels("accepted").inc()
        log.info("%s: %d ModelDeployment(s) re-resolved now", event.describe(), len(keys))
        return Answer(202, {"event": event.kind, "deployments": len(keys)})


def _json(answer: Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status)


def _refusal(code: ErrorCode, message: str) -> web.Response:
    WEBHOOK_DELIVERIES.labels(code.value.lower()).inc()
    return web.json_response(envelope(code, message), status=HTTP_STATUS[code])


class WebhookServer:
    """``Receiver`` on ``https://host:port/hooks/mlflow`` until ``stop``."""

    def __init__(self, receiver: Receiver, host: str, port: int, tls: Material) -> None:
        self._receiver = receiver
        self._host = host
        self._port = port
        self._tls = tls
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await asyncio.wait_for(request.read(), BODY_DEADLINE_SECONDS)
        except web.HTTPRequestEntityTooLarge:
            return _refusal(ErrorCode.PAYLOAD_TOO_LARGE, f"delivery body over {ev.MAX_BODY_BYTES} bytes")
        except TimeoutError:
            message = f"delivery body not received in {BODY_DEADLINE_SECONDS:.0f} s"
            return _refusal(ErrorCode.REQUEST_TIMEOUT, message)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return _json(self._receiver.receive(headers, body))

    async def _other(self, request: web.Request) -> web.Response:
        if request.path == PATH:
            response = _refusal(ErrorCode.METHOD_NOT_ALLOWED, f"{PATH} takes POST")
            response.headers["Allow"] = "POST"
            return response
        return _refusal(ErrorCode.NOT_FOUND, f"nothing at {request.path}; MLflow delivers to {PATH}")

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for 0)."""
        return self._port

    async def start(self) -> None:
        app = web.Application(client_max_size=ev.MAX_BODY_BYTES)
        app.router.add_post(PATH, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=server_context(self._tls))
        await site.start()
        self._port = self._runner.addresses[0][1]  # the OS's choice when the port was 0
        log.info("MLflow webhooks received on https://%s:%d%s", self._host, self._port, PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
