"""One serialized reconcile loop per ModelDeployment, woken by watch events or by its own timer.

Why not kopf's daemons/timers: they put kopf's finalizer on every object, so deleting a
ModelDeployment would hang while the operator is down. Ferry needs no finalizer (ownerReferences
do the cleanup), so kopf's plain event handlers just ``kick`` a key here, and each key's loop
decides by itself when to look again (registry poll, rollout deadlines, backoff after errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ferry_common import logs

log = logging.getLogger("ferry.controller")

Key = tuple[str, str]
Reconcile = Callable[[str, str], Awaitable[float | None]]

MAX_ERROR_BACKOFF = 60.0


class Controller:
    def __init__(self, reconcile: Reconcile) -> None:
        self._reconcile = reconcile
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._wakeups: dict[Key, asyncio.Event] = {}

    def kick(self, key: Key) -> None:
        """Reconcile ``key`` soon; many kicks while a pass runs collapse into one more pass."""
        self._wakeups.setdefault(key, asyncio.Event()).set()
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._loop(key), name=f"reconcile {key[0]}/{key[1]}")

    @property
    def keys(self) -> list[Key]:
        return [k for k, t in self._tasks.items() if not t.done()]

    async def _loop(self, key: Key) -> None:
        # Every line this loop logs names its ModelDeployment (the task's own logging context).
        with logs.bind(namespace=key[0], model=key[1]):
            await self._run(key)

    async def _run(self, key: Key) -> None:
        wakeup = self._wakeups.setdefault(key, asyncio.Event())
        failures = 0
        try:
            while True:
                wakeup.clear()
                try:
                    delay = await self._reconcile(*key)
                    failures = 0
                except Exception:
                    failures += 1
                    delay = min(2.0**failures, MAX_ERROR_BACKOFF)
                    log.exception("reconcile of %s/%s failed; retrying in %.0fs", *key, delay)
                if delay is None:
                    return  # the object is gone
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=delay)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                self._wakeups.pop(key, None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
