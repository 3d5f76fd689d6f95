"""Consumers from the cluster: watch ``Consumer`` resources, and the Secrets holding their keys.

The gateway image stays light: no Kubernetes client library, just list + watch over HTTPS with
the pod's service-account token (re-read on every request, since bound tokens rotate). One
namespace is watched.

A Consumer's key is best given inline, as its keyed hash (``apiKeys: [{hash: ...}]``): a hash is
no credential, and a gateway that reads no Secrets needs no RBAC on Secrets, which a Role cannot
narrow to a label (list and watch reach every Secret of the namespace: the pepper, the Redis URL,
registry credentials, TLS keys). A key may instead be named by Secret when the gateway is allowed
to read Secrets (``read_secrets``; only those carrying the label in ``secret_selector`` are
listed). A Secret value is a keyed hash (``hmac-sha256:...``, as ``ferry keys secret`` writes it). A Secret
holding the API key itself still works (hashed on arrival; the clear key is not kept) but is
reported on every load: anyone who can read Secrets there can call the gateway as that consumer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from ferry_common.contract import API_KEY_SELECTOR, CONSUMER
from pydantic import ValidationError

from ferry_gateway.auth.apikeys import hash_key, is_hash, key_id, pepper_fingerprint
from ferry_gateway.consumers.crd import ConsumerSpec
from ferry_gateway.consumers.registry import Consumer, ConsumerIndex, ConsumerRegistry, KeyRecord

log = logging.getLogger("ferry_gateway.k8s")

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_SECRET_SELECTOR = API_KEY_SELECTOR


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def build_index(
    consumers: Iterable[Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, str]] | None,
    pepper: bytes,
) -> tuple[ConsumerIndex, list[str]]:
    """Consumer objects + Secret data (name -> key -> base64 value) -> an index (pure).

    ``secrets`` None: this gateway reads no Secrets, so a key named by Secret is reported, not
    looked up.

    Returns the problems found (invalid specs, missing Secrets, shared keys) so they can be
    logged; a broken Consumer is left out rather than taking the others down with it. A key that
    resolves to the same hash more than once (one Secret referenced twice, or two Secrets holding
    the same key) is refused for every entry: letting the last one win could undo a revocation or
    hand the key to another consumer, and the watch cannot refuse the whole set like a file load.
    """
    out: list[Consumer] = []
    keys: dict[str, KeyRecord] = {}
    shared: dict[str, list[str]] = {}
    first_where: dict[str, str] = {}  # hash -> where it was first seen, for the shared-key problem
    problems: list[str] = []
    for obj in consumers:
        name = str(obj.get("metadata", {}).get("name", "?"))
        try:
            spec = ConsumerSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            where = "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            problems.append(f"Consumer {name}: {where}")
            continue
        out.append(
            Consumer(
                name,
                spec.tier,
                frozenset(spec.scopes),
                frozenset(spec.models) if spec.models is not None else None,
                spec.disabled,
            )
        )
        for i, ref in enumerate(spec.api_keys):
            if ref.hash is not None:
                value, origin, where = ref.hash, f"apiKeys[{i}]", f"Consumer {name} (apiKeys[{i}])"
            elif secrets is None:
                problems.append(
                    f"Consumer {name}: apiKeys[{i}] names Secret {ref.name}, but this gateway reads no "
                    "Secrets (FERRY_KEY_SECRETS=false; chart gateway.keySecrets): give the key's hash "
                    "instead (`ferry keys patch`)"
                )
                continue
            else:
                raw = secrets.get(str(ref.name), {}).get(ref.key)
                if raw is None:
                    problems.append(
                        f"Consumer {name}: Secret {ref.name} (key {ref.key}) not found or not labelled"
                    )
                    continue
                try:
                    value = base64.b64decode(raw).decode().strip()
                except (ValueError, UnicodeDecodeError):
                    problems.append(
                        f"Consumer {name}: Secret {ref.name} key {ref.key} is not valid base64 text"
                    )
                    continue
                origin, where = f"Secret {ref.name} key {ref.key}", f"Consumer {name} (Secret {ref.name})"
            if is_hash(value):
                stored = value
                if value.split(":")[1] != pepper_fingerprint(pepper):
                    problems.append(
                        f"Consumer {name}: {origin} was hashed with another pepper; it cannot match"
                    )
            else:
                stored = hash_key(pepper, value)
                problems.append(
                    f"Consumer {name}: Secret {ref.name} key {ref.key} holds the API key itself, "
                    f"readable by anyone who can read Secrets in this namespace; replace it with its "
                    f"hash (a new key from `ferry keys secret`)"
                )
            if stored in shared:
                shared[stored].append(where)
                continue
            if stored in keys:
                keys.pop(stored)
                shared[stored] = [first_where[stored], where]
                continue
            keys[stored] = KeyRecord(name, key_id(stored), _epoch(ref.expires_at), ref.revoked, ref.name)
            first_where[stored] = where
    for stored, users in shared.items():
        problems.append(f"API key {key_id(stored)} refused: the same key is used by {', '.join(users)}")
    return ConsumerIndex(out, keys), problems


@dataclass(frozen=True)
class KubeAccess:
    """How to reach the API server: in-cluster service account, or a kubeconfig (dev, tests)."""

    server: str
    ca_file: str | None = None
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def in_cluster(cls, host: str | None, port: int = 443) -> KubeAccess:
        """The pod's service account; ``host``/``port`` are $KUBERNETES_SERVICE_HOST/_PORT (config.py)."""
        if not host:
            raise RuntimeError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        return cls(f"https://{host}:{port}", str(SA_DIR / "ca.crt"), token_file=str(SA_DIR / "token"))

    @classmethod
    def from_kubeconfig(cls, path: Path, workdir: Path) -> KubeAccess:
        """The current context's cluster and user; inline certificate data is written to ``workdir``."""
        cfg = yaml.safe_load(path.read_text())
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        workdir.mkdir(parents=True, exist_ok=True)

        def materialise(data_key: str, file_key: str, name: str) -> str | None:
            src: Mapping[str, Any] = cluster if data_key.startswith("certificate-authority") else user
            if src.get(file_key):
                return str(src[file_key])
            if src.get(data_key):
                fd, tmp = tempfile.mkstemp(prefix=name, dir=workdir)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(src[data_key]))
                return tmp
            return None

        token_file = None
        if user.get("token"):
            fd, token_file = tempfile.mkstemp(prefix="token", dir=workdir)
            with os.fdopen(fd, "w") as f:
                f.write(user["token"])
        return cls(
            cluster["server"],
            materialise("certificate-authority-data", "certificate-authority", "ca"),
            token_file,
            materialise("client-certificate-data", "client-certificate", "cert"),
            materialise("client-key-data", "client-key", "key"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def headers(self) -> dict[str, str]:
        if self.token_file:
            return {"Authorization": f"Bearer {Path(self.token_file).read_text().strip()}"}
        return {}


class _Relist(Exception):
    """The watch cannot continue from its resourceVersion (410 Gone, or the stream ended)."""


class ResourceWatch:
    """One collection kept current with list + watch; ``on_change`` gets the whole set each time."""

    def __init__(
        self,
        access: KubeAccess,
        path: str,
        on_change: Callable[[dict[str, dict[str, Any]]], None],
        params: dict[str, str] | None = None,
        watch_seconds: int = 290,
    ) -> None:
        self.access = access
        self.path = path
        self.params = params or {}
        self.on_change = on_change
        self.watch_seconds = watch_seconds
        self.items: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> None:
        backoff = 1.0
        while True:
            try:
                version = await self._list(session)
                backoff = 1.0
                await self._watch(session, version)
            except _Relist:
                continue
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as exc:
                log.warning(
                    "watch %s failed (%s: %s); retrying in %.0fs", self.path, type(exc).__name__, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _list(self, session: aiohttp.ClientSession) -> str:
        async with session.get(self.path, params=self.params, headers=self.access.headers()) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=(await resp.text())[:200]
                )
            doc = await resp.json()
        self.items = {o["metadata"]["name"]: o for o in doc.get("items") or []}
        self.synced.set()
        self.on_change(self.items)
        return str(doc["metadata"]["resourceVersion"])

    async def _watch(self, session: aiohttp.ClientSession, version: str) -> None:
        while True:
            query = {
                **self.params,
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.watch_seconds),
            }
            async with session.get(self.path, params=query, headers=self.access.headers()) as resp:
                if resp.status == 410:
                    raise _Relist
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        raise _Relist  # typically 410 Gone: our resourceVersion is too old
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if kind in ("ADDED", "MODIFIED"):
                        self.items[obj["metadata"]["name"]] = obj
                    elif kind == "DELETED":
                        self.items.pop(obj["metadata"]["name"], None)
                    else:
                        continue  # BOOKMARK: only the resourceVersion moves
                    self.on_change(self.items)


class KubeWatches:
    """Runs a set of ResourceWatches on one HTTPS session, as one background task."""

    def __init__(self, access: KubeAccess, watches: list[ResourceWatch]) -> None:
        self.access = access
        self.watches = watches
        self._task: asyncio.Task[None] | None = None

    def synced(self) -> bool:
        return all(w.synced.is_set() for w in self.watches)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=330)
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context())
        async with aiohttp.ClientSession(self.access.server, timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(w.run(session) for w in self.watches))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class KubeConsumerSource:
    """Consumers + their labelled key Secrets in one namespace -> the registry's index."""

    def __init__(
        self,
        access: KubeAccess,
        namespace: str,
        registry: ConsumerRegistry,
        secret_selector: str = DEFAULT_SECRET_SELECTOR,
        read_secrets: bool = True,
    ) -> None:
        self.namespace = namespace
        self.registry = registry
        self.consumers = ResourceWatch(access, CONSUMER.path(namespace), self._changed)
        self.secrets: ResourceWatch | None = None
        self.watches = [self.consumers]
        if read_secrets:
            self.secrets = ResourceWatch(
                access,
                f"/api/v1/namespaces/{namespace}/secrets",
                self._changed,
                {"labelSelector": secret_selector},
            )
            self.watches.append(self.secrets)

    def synced(self) -> bool:
        return all(w.synced.is_set() for w in self.watches)

    def _changed(self, _: dict[str, dict[str, Any]]) -> None:
        if not self.synced():
            return  # before both first lists are in, a Consumer would look like it had lost its Secrets
        secrets = (
            None
            if self.secrets is None
            else {name: dict(obj.get("data") or {}) for name, obj in self.secrets.items.items()}
        )
        index, problems = build_index(self.consumers.items.values(), secrets, self.registry.pepper)
        for problem in problems:
            log.warning("%s", problem)
        self.registry.replace(index)
        log.info(
            "consumers from namespace %s: %d consumers, %d keys",
            self.namespace,
            len(index.consumers),
            len(index.keys),
        )
