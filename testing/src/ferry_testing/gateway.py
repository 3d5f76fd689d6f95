"""The gateway tests' harness: the gateway under uvicorn and a predictor stand-in, each on a
loopback port in a background thread with its own event loop, plus the test consumers, keys and
a controllable clock."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.app import Gateway
from ferry_gateway.auth.apikeys import hash_key, key_id
from ferry_gateway.auth.authenticator import Authenticator, KeySource
from ferry_gateway.auth.jwks import StaticKeys
from ferry_gateway.auth.jwt_verify import JwtSettings
from ferry_gateway.consumers.registry import Consumer, ConsumerIndex, ConsumerRegistry, KeyRecord
from ferry_gateway.edge.cors import CorsPolicy
from ferry_gateway.limits.ratelimit import RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import LimitsConfig
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.pool import UpstreamPool
from ferry_gateway.upstream.routing import Upstreams

from ferry_testing.gateway_upstream import Options, serve

T = TypeVar("T")
PEPPER = b"test-pepper"
ISSUER = "https://issuer.test"
AUDIENCE = "ferry-test"

# Two ModelDeployments as the operator leaves them: one stable, one verifying a preview.
MD_TITANIC: dict[str, Any] = {
    "metadata": {"name": "titanic"},
    "status": {
        "phase": "Stable",
        "active": {"color": "blue", "modelVersion": "3", "ready": True, "inferenceService": "titanic-blue"},
    },
}
MD_IRIS: dict[str, Any] = {
    "metadata": {"name": "iris"},
    "status": {
        "phase": "Verifying",
        "active": {"color": "green", "modelVersion": "1", "ready": True, "inferenceService": "iris-green"},
        "preview": {"color": "blue", "modelVersion": "2", "ready": True, "inferenceService": "iris-blue"},
    },
}


class FakeClock:
    """Wall clock under test control (epoch seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class Upstream:
    """The predictor stand-in (ferry_testing.gateway_upstream) on a free loopback port."""

    def __init__(self, mode: str = "echo", name: str = "active", delay: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.opts = Options(mode=mode, delay=delay, name=name)
        self._loop = LoopThread()
        self._server = self._loop.run(serve(self.port, self.opts))

    @property
    def connections(self) -> int:
        """Client connections open right now (the gateway's pooled ones included)."""
        return int(self.opts.connections)

    def stop_listening(self) -> None:
        """Like pods going away: new connections are refused (open ones are left alone)."""

        async def close() -> None:
            self._server.close()

        self._loop.run(close())

    def close(self) -> None:
        # On the loop's own thread: asyncio.Server is not thread-safe, and closing it from here
        # raced the loop detaching the last connection (TypeError in Server._wakeup, seen in CI
        # at the teardown of test_colour_switch.py::test_promotion_under_steady_traffic).
        self.stop_listening()
        self._loop.stop()


class GatewayServer:
    """A Gateway app served by uvicorn in a thread."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

        async def remember_loop() -> None:
            self.loop = asyncio.get_running_loop()

        app.on_startup.append(remember_loop)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(f"gateway on :{self.port}", lambda: self.server.started and port_open(self.port), timeout=20)

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run fn on the gateway's event loop (as the cluster watch does) and return its result."""
        assert self.loop is not None

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Keys:
    """API keys by consumer name (the clear keys, only ever held by the test)."""

    by_consumer: dict[str, str] = field(default_factory=dict)


def consumer_index(
    consumers: list[Consumer], keys: Keys, revoked: Mapping[str, bool] | None = None
) -> ConsumerIndex:
    records: dict[str, KeyRecord] = {}
    for c in consumers:
        key = keys.by_consumer.setdefault(c.name, f"fry_test_{c.name}_{uuid.uuid4().hex}")
        h = hash_key(PEPPER, key)
        records[h] = KeyRecord(c.name, key_id(h), revoked=bool((revoked or {}).get(c.name)))
    return ConsumerIndex(consumers, records)


def build_app(
    redis_url: str | None,
    *,
    registry: ConsumerRegistry,
    upstreams: Upstreams,
    jwks: Mapping[str, Any] | None = None,
    keys: KeySource | None = None,
    limits: LimitsConfig | None = None,
    clock: FakeClock | None = None,
    fail_open: bool = True,
    max_body_bytes: int = 64 * 1024,
    upstream_timeout: float = 5.0,
    catalog: ModelCatalog | None = None,
    cors: CorsPolicy | None = None,
) -> Gateway:
    redis = make_redis(redis_url) if redis_url else None
    limiter = RateLimiter(
        redis,
        limits or LimitsConfig(),
        fail_open=fail_open,
        clock=clock or FakeClock(),
        prefix=f"t{uuid.uuid4().hex[:10]}",
    )
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE)
    # keys: a live source (a JWKS URL) instead of the fixed set ``jwks``
    auth = Authenticator(registry, keys or StaticKeys(jwks or {"keys": []}), settings)
    return Gateway(
        auth,
        limiter,
        upstreams,
        UpstreamPool(timeout=upstream_timeout, breaker_failures=3, breaker_reset=30.0),
        max_body_bytes=max_body_bytes,
        catalog=catalog,
        cors=cors,
    )
