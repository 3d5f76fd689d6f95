"""Keeps the OpenAPI document on the signatures of the versions being served.

With a catalog (in a cluster), a model's metadata is fetched from its serving colour whenever
the active version or colour changes, and a model that leaves the catalog leaves the document.
Without one (dev mode, ``--upstream NAME=URL``), every model's metadata is fetched at startup and
again every ``interval`` seconds, since nothing says when a predictor changed. A failed fetch
leaves the model described generically (never with another version's signature) and is retried
on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from ferry_gateway.apidocs.document import build
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Route, Upstreams

log = logging.getLogger("ferry_gateway.apidocs")

# (model, predictor base URL) -> that predictor's v2 model metadata, or None when it has none
Fetch = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
# what to describe now: model -> (the version the catalog says is active, or None; base URL)
Target = tuple[str | None, str]


async def fetch_metadata(model: str, base: str) -> Mapping[str, Any] | None:
    """``GET {base}/v2/models/{model}``: the object it answers with 200, else None."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as session,
            session.get(f"{base}/v2/models/{model}") as resp,
        ):
            if resp.status != 200:
                return None
            doc = orjson.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


class Refresher:
    def __init__(
        self,
        upstreams: Upstreams,
        catalog: ModelCatalog | None,
        fetch: Fetch | None = fetch_metadata,
        *,
        interval: float = 10.0,
    ) -> None:
        self.upstreams = upstreams
        self.catalog = catalog
        self.fetch = fetch
        self.interval = interval  # dev mode: how often to look again; with a catalog: retry delay
        self.metadata: dict[str, Mapping[str, Any]] = {}
        self.document: bytes = orjson.dumps(build({}))
        self._have: dict[str, Target] = {}  # what each entry of ``metadata`` was fetched for
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if catalog is not None:
            catalog.listeners.append(self._wake.set)

    def targets(self) -> dict[str, Target]:
        """Which predictor each model's active traffic goes to now (the document's source)."""
        if self.catalog is None:
            return {
                name: (None, url)
                for name in self.upstreams.known_models()
                if (url := self.upstreams.resolve(name, False)) is not None
            }
        if not self.catalog.synced:
            return {}
        models = self.catalog.models
        out: dict[str, Target] = {}
        for name, entry in models.items():
            route = self.upstreams.route(name, False, models)
            if isinstance(route, Route):
                out[name] = (entry.version, route.url)
        return out

    async def refresh(self) -> None:
        """One pass: fetch what is stale, drop what is gone, rebuild the document if it changed."""
        fetch = self.fetch
        if fetch is None:
            return
        targets = self.targets()
        dev = self.catalog is None
        stale = [n for n, t in targets.items() if dev or self._have.get(n) != t]
        answers = await asyncio.gather(*(fetch(n, targets[n][1]) for n in stale))
        metadata = {n: m for n, m in self.metadata.items() if n in targets}
        for name, meta in zip(stale, answers, strict=True):
            if meta is not None:
                metadata[name] = meta
                self._have[name] = targets[name]
            elif self._have.get(name) != targets[name]:
                # what we hold describes another version or colour: say nothing rather than that
                metadata.pop(name, None)
                self._have.pop(name, None)
        self._have = {n: t for n, t in self._have.items() if n in targets}
        if metadata != self.metadata:
            for name in sorted(metadata.keys() | self.metadata.keys()):
                if metadata.get(name) != self.metadata.get(name):
                    version = targets.get(name, (None, ""))[0]
                    log.info(
                        "API docs: model %s now described %s",
                        name,
                        f"at version {version}" if name in metadata else "generically",
                    )
            self.metadata = metadata
            self.document = orjson.dumps(build(metadata))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # the docs must never take the gateway down; try again next tick
                log.exception("API docs refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def start(self) -> None:
        if self.fetch is None:  # nothing to learn signatures from: the generic document stays
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
