"""The smoke test a preview must pass before promotion: a pluggable step.

The reconcile only knows the ``SmokeTester`` protocol. ``HttpSmokeTester`` is the real one: it
sends the spec's requests (or the model's MLflow input example) to the preview predictor and
checks every answer is 2xx, well-formed and, optionally, fast enough. Another implementation can
be named with ``FERRY_SMOKE_TESTER=package.module:factory`` — the local cluster's pods are
kwok-simulated and have no HTTP endpoint, so its tests inject one.

A connection the preview never accepted says nothing about the model: right after an operator pod
starts, the network policy agent may not yet admit its new address to the predictors (kube-router
answers a refusal, others drop). Such a request is sent again once a second for up to
``CONNECT_RETRY_SECONDS``; only an answer, or a failure after the request went out, is a verdict.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ferry_operator.resource import Color, SmokeTest

CONNECT_RETRY_SECONDS = 30.0
CONNECT_RETRY_INTERVAL_SECONDS = 1.0
# Failures before any byte of the request reached the preview; anything later may have run it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class SmokeTarget:
    namespace: str
    md_name: str
    md_body: dict[str, Any]  # the ModelDeployment as read this pass
    color: Color
    version: str
    isvc: str
    spec: SmokeTest
    input_example: Callable[[], Awaitable[Any | None]]


@dataclass(frozen=True)
class SmokeOutcome:
    passed: bool
    message: str


class SmokeTester(Protocol):
    async def run(self, target: SmokeTarget) -> SmokeOutcome: ...


def example_as_v1(example: Any) -> dict[str, Any] | None:
    """MLflow's ``input_example.json`` (pandas split orient, or a dict of columns) as a v1 request."""
    if not isinstance(example, dict):
        return None
    if "dataframe_split" in example:
        example = example["dataframe_split"]
    if "columns" in example and "data" in example:
        return {"instances": [dict(zip(example["columns"], row, strict=False)) for row in example["data"]]}
    if "instances" in example or "inputs" in example:
        return dict(example)
    if example and all(isinstance(v, list) for v in example.values()):
        n = len(next(iter(example.values())))
        return {"instances": [{k: v[i] for k, v in example.items()} for i in range(n)]}
    return None


def well_formed(protocol: str, body: Any) -> bool:
    if protocol == "v2":
        return isinstance(body, dict) and isinstance(body.get("outputs"), list) and bool(body["outputs"])
    return isinstance(body, dict) and isinstance(body.get("predictions"), list)


class HttpSmokeTester:
    def __init__(
        self,
        url_template: str,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_retry_seconds: float = CONNECT_RETRY_SECONDS,
        connect_retry_interval: float = CONNECT_RETRY_INTERVAL_SECONDS,
    ) -> None:
        self.url_template = url_template
        self.transport = transport
        self.connect_retry_seconds = connect_retry_seconds
        self.connect_retry_interval = connect_retry_interval

    async def _post(self, client: httpx.AsyncClient, path: str, body: Any) -> tuple[httpx.Response, float]:
        """POST, sending again while the connection is refused, up to the retry window.

        Returns the response and the milliseconds the answered attempt took.
        """
        started = time.monotonic()
        deadline = started + self.connect_retry_seconds
        attempts = 0
        while True:
            attempts += 1
            sent = time.perf_counter()
            try:
                response = await client.post(path, json=body)
                return response, (time.perf_counter() - sent) * 1000
            except _NOT_SENT as exc:
                if time.monotonic() + self.connect_retry_interval > deadline:
                    raise _Unreachable(exc, attempts, time.monotonic() - started) from exc
            await asyncio.sleep(self.connect_retry_interval)

    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        requests: list[tuple[str, dict[str, Any]]] = [(r.protocol, r.body) for r in target.spec.requests]
        if not requests:
            example = example_as_v1(await target.input_example())
            if example is None:
                return SmokeOutcome(False, "no smokeTest.requests and the model has no usable input example")
            requests = [("v1", example)]
        base = self.url_template.format(
            isvc=target.isvc, namespace=target.namespace, color=target.color.value
        )
        limit_ms = target.spec.maxLatencyMilliseconds
        async with httpx.AsyncClient(
            base_url=base, timeout=target.spec.timeoutSeconds, transport=self.transport
        ) as client:
            for i, (protocol, body) in enumerate(requests):
                path = (
                    # The predictor serves the ModelDeployment's name on every colour
                    # (FERRY_MODEL_NAME, see ferry_common.runtime).
                    f"/v2/models/{target.md_name}/infer"
                    if protocol == "v2"
                    else f"/v1/models/{target.md_name}:predict"
                )
                try:
                    response, elapsed_ms = await self._post(client, path, body)
                except _Unreachable as exc:
                    return SmokeOutcome(False, f"request {i} ({protocol}) to {base}{path}: {exc}")
                except httpx.HTTPError as exc:
                    return SmokeOutcome(
                        False, f"request {i} ({protocol}) to {base}{path}: {type(exc).__name__}"
                    )
                if not 200 <= response.status_code < 300:
                    return SmokeOutcome(
                        False, f"request {i} ({protocol}): HTTP {response.status_code}: {response.text[:200]}"
                    )
                try:
                    answer = response.json()
                except ValueError:
                    return SmokeOutcome(False, f"request {i} ({protocol}): response is not JSON")
                if not well_formed(protocol, answer):
                    return SmokeOutcome(
                        False, f"request {i} ({protocol}): malformed response {str(answer)[:200]}"
                    )
                if limit_ms is not None and elapsed_ms > limit_ms:
                    return SmokeOutcome(
                        False, f"request {i} ({protocol}) took {elapsed_ms:.0f} ms > {limit_ms} ms"
                    )
        return SmokeOutcome(True, f"{len(requests)} request(s) answered")


class _Unreachable(Exception):
    def __init__(self, cause: httpx.HTTPError, attempts: int, seconds: float) -> None:
        super().__init__(f"{type(cause).__name__} ({attempts} attempts in {seconds:.1f} s)")


def load_tester(spec: str, url_template: str) -> SmokeTester:
    if spec == "http":
        return HttpSmokeTester(url_template)
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"FERRY_SMOKE_TESTER={spec!r}: expected 'http' or 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attr)
    tester: SmokeTester = factory()
    return tester
