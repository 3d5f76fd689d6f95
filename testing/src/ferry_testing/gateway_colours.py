"""The colour-switch harness: a gateway routing by the ModelDeployment catalog to two loopback
predictor stand-ins playing the blue and green predictor Services (process and cluster tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from ferry_gateway.consumers.k8s_source import KubeWatches
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams

from ferry_testing.gateway import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index

KEYS = Keys()


@dataclass(frozen=True)
class LoopbackServices(Upstreams):
    """In-cluster routing whose Service URLs point at loopback servers (unknown ones: a closed port)."""

    services: Mapping[str, str] = field(default_factory=dict)

    def service_url(self, service: str) -> str:
        return self.services.get(service, "http://127.0.0.1:9")


def md(active: tuple[str, str], preview: tuple[str, str, bool] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Verifying" if preview else "Stable",
        "active": {"color": active[0], "modelVersion": active[1], "ready": True},
    }
    if preview:
        status["preview"] = {"color": preview[0], "modelVersion": preview[1], "ready": preview[2]}
    return {"metadata": {"name": "titanic"}, "status": status}


@dataclass
class Setup:
    gw: GatewayServer
    catalog: ModelCatalog
    blue: Upstream
    green: Upstream

    def publish(self, obj: dict[str, Any]) -> float:
        """Apply a status on the gateway's loop, as the watch does; returns when it took effect."""

        def apply() -> float:
            self.catalog.update({"titanic": obj})
            return time.monotonic()

        return float(self.gw.on_loop(apply))

    def call(self, client: httpx.Client | None = None, preview: bool = False) -> httpx.Response:
        headers = {"X-API-Key": KEYS.by_consumer["ops"]}
        if preview:
            headers["X-Ferry-Preview"] = "true"
        url = self.gw.url + "/v1/models/titanic:predict"
        if client is not None:
            return client.post(url, content=b"{}", headers=headers)
        return httpx.post(url, content=b"{}", headers=headers, timeout=10)


def make_setup(blue_delay: float = 0.0, watch: Callable[[ModelCatalog], KubeWatches] | None = None) -> Setup:
    blue = Upstream(mode="echo", name="blue", delay=blue_delay)
    green = Upstream(mode="echo", name="green")
    upstreams = LoopbackServices(
        namespace="ml",
        services={"titanic-blue-predictor": blue.url, "titanic-green-predictor": green.url},
    )
    catalog = ModelCatalog()
    consumers = [Consumer("ops", "enterprise", frozenset({"predict", "preview"}))]
    app = build_app(
        None,  # no Redis: limits are not what this is about
        registry=ConsumerRegistry(PEPPER, consumer_index(consumers, KEYS)),
        upstreams=upstreams,
        catalog=catalog,
    )
    if watch is not None:  # the catalog follows ModelDeployments in a cluster, as in factory.py
        kube = watch(catalog)

        async def start() -> None:
            kube.start()

        app.on_startup.append(start)
        app.on_shutdown.append(kube.stop)
    gw = GatewayServer(app)
    s = Setup(gw, catalog, blue, green)
    if watch is None:
        s.publish(md(("blue", "1")))
    return s
