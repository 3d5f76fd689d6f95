"""Consumers and their API keys, indexed by keyed hash; loaded from a file or built in for dev.

A file source re-reads its file when the file changes (checked on every lookup, which is one
``stat``), so ``ferry keys revoke`` takes effect on the very next request.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from ferry_gateway import metrics
from ferry_gateway.auth.apikeys import hash_key, key_id, pepper_fingerprint
from ferry_gateway.consumers.crd import ConsumersFile

log = logging.getLogger("ferry_gateway.consumers")


@dataclass(frozen=True)
class Consumer:
    name: str
    tier: str
    scopes: frozenset[str]
    models: frozenset[str] | None = None  # None: every model
    disabled: bool = False

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class KeyRecord:
    consumer: str
    key_id: str
    expires_at: float | None = None  # epoch seconds
    revoked: bool = False
    secret: str | None = None  # where it came from, in a cluster (for messages)


class KeyProblem(Exception):
    """Why an API key was refused; ``reason`` is the audit/metrics code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ConsumerIndex:
    """An immutable snapshot: consumers by name, key records by stored hash."""

    def __init__(self, consumers: Iterable[Consumer] = (), keys: dict[str, KeyRecord] | None = None) -> None:
        self.consumers = {c.name: c for c in consumers}
        self.keys = keys or {}


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def parse_consumers_file(text: str, source: str, pepper: bytes | None = None) -> ConsumerIndex:
    """Validate a consumers YAML document; raise ValueError naming the field and the reason."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    try:
        parsed = ConsumersFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{source}: {problems}") from None
    consumers: list[Consumer] = []
    keys: dict[str, KeyRecord] = {}
    fingerprint = pepper_fingerprint(pepper) if pepper is not None else None
    for c in parsed.consumers:
        if any(existing.name == c.name for existing in consumers):
            raise ValueError(f"{source}: consumers: duplicate name {c.name!r}")
        consumers.append(
            Consumer(
                c.name,
                c.tier,
                frozenset(c.scopes),
                frozenset(c.models) if c.models is not None else None,
                c.disabled,
            )
        )
        for k in c.api_keys:
            if fingerprint is not None and k.hash.split(":")[1] != fingerprint:
                log.warning(
                    "consumer %s key %s was hashed with another pepper; it cannot match",
                    c.name,
                    key_id(k.hash),
                )
            if k.hash in keys:
                # one hash, two entries: whichever came last would win, so a stale copy could
                # undo a revocation or hand the key to another consumer; refuse the whole file
                raise ValueError(
                    f"{source}: consumers: API key {key_id(k.hash)} is listed twice, under consumer "
                    f"{keys[k.hash].consumer!r} and consumer {c.name!r}; keep one entry"
                )
            keys[k.hash] = KeyRecord(c.name, key_id(k.hash), _epoch(k.expires_at), k.revoked)
    return ConsumerIndex(consumers, keys)


class ConsumerRegistry:
    """Looks up consumers and API keys; the source behind it may change at any time."""

    def __init__(
        self,
        pepper: bytes,
        index: ConsumerIndex | None = None,
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pepper = pepper
        self.path = path
        self.clock = clock
        self._index = index or ConsumerIndex()
        self._stamp: tuple[int, int] | None = None
        if path is not None:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if force:
                raise ValueError(f"{self.path}: cannot read consumers file: {exc.strerror}") from None
            log.error(
                "consumers file %s unreadable (%s); keeping the last good copy", self.path, exc.strerror
            )
            metrics.CONSUMERS_REJECTED.set(1)
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            index = parse_consumers_file(self.path.read_text(), str(self.path), self.pepper)
        except (ValueError, OSError) as exc:
            if force:
                raise
            log.error("consumers file rejected, keeping the last good copy: %s", exc)
            metrics.CONSUMERS_REJECTED.set(1)
            self._stamp = stamp
            return
        self._index, self._stamp = index, stamp
        metrics.CONSUMERS_REJECTED.set(0)
        log.info("loaded %d consumers, %d keys from %s", len(index.consumers), len(index.keys), self.path)

    def _current(self) -> ConsumerIndex:
        if self.path is not None:
            self._reload()
        return self._index

    def replace(self, index: ConsumerIndex) -> None:
        """Swap in a new snapshot (used by the in-cluster watch)."""
        self._index = index

    def consumer(self, name: str) -> Consumer | None:
        return self._current().consumers.get(name)

    def all(self) -> list[Consumer]:
        return list(self._current().consumers.values())

    def authenticate_key(self, key: str) -> Consumer:
        index = self._current()
        record = index.keys.get(hash_key(self.pepper, key))
        if record is None:
            raise KeyProblem("invalid_api_key", "the API key is not known")
        if record.revoked:
            raise KeyProblem("api_key_revoked", f"API key {record.key_id} has been revoked")
        if record.expires_at is not None and self.clock() >= record.expires_at:
            raise KeyProblem("api_key_expired", f"API key {record.key_id} has expired")
        consumer = index.consumers.get(record.consumer)
        if consumer is None:
            raise KeyProblem("invalid_api_key", "the API key's consumer no longer exists")
        if consumer.disabled:
            raise KeyProblem("consumer_disabled", f"consumer {consumer.name} is disabled")
        return consumer


# Development only: well-known keys so a newcomer can call the gateway in a minute.
DEV_KEYS = {
    "dev-free": "fry_dev_free_do_not_use_in_production",
    "dev-pro": "fry_dev_pro_do_not_use_in_production",
}


DEV_CONSUMERS = (
    Consumer("dev-free", "free", frozenset({"predict"})),
    Consumer("dev-pro", "pro", frozenset({"predict", "preview", "admin"})),
)


def dev_index(pepper: bytes) -> ConsumerIndex:
    consumers = list(DEV_CONSUMERS)
    keys = {}
    for name, key in DEV_KEYS.items():
        h = hash_key(pepper, key)
        keys[h] = KeyRecord(name, key_id(h))
    return ConsumerIndex(consumers, keys)
