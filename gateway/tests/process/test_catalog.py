"""In a cluster, ModelDeployments say which models exist, in which version and colour."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import MD_IRIS as IRIS
from ferry_testing.gateway import MD_TITANIC as TITANIC
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index

KEYS = Keys()


@pytest.fixture(scope="module")
def gw(redis_url: str, active_upstream: Upstream, preview_upstream: Upstream) -> Iterator[str]:
    catalog = ModelCatalog()
    catalog.update({"titanic": TITANIC, "iris": IRIS, "fresh": {"metadata": {"name": "fresh"}}})
    consumers = [Consumer("ops", "pro", frozenset({"predict", "preview"}))]
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(consumers, KEYS)),
        upstreams=Upstreams(
            {"titanic": active_upstream.url, "iris": active_upstream.url, "gone": active_upstream.url},
            {"titanic": preview_upstream.url, "iris": preview_upstream.url},
        ),
        catalog=catalog,
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


def call(gw: str, path: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gw + path, content=b"{}", headers={"X-API-Key": KEYS.by_consumer["ops"], **headers}, timeout=10
    )


def test_listing_and_routing_follow_the_catalog(gw: str) -> None:
    listed = httpx.get(gw + "/v1/models", headers={"X-API-Key": KEYS.by_consumer["ops"]}, timeout=10).json()
    assert [(m["name"], m["version"], m["color"], m["status"]) for m in listed["models"]] == [
        ("fresh", None, None, "Pending"),
        ("iris", "1", "green", "Verifying"),
        ("titanic", "3", "blue", "Stable"),
    ]
    assert call(gw, "/v1/models/titanic:predict").status_code == 200
    assert call(gw, "/v1/models/iris:predict", **{"X-Ferry-Preview": "true"}).json()["upstream"] == "preview"
    no_preview = call(gw, "/v1/models/titanic:predict", **{"X-Ferry-Preview": "true"})
    assert no_preview.status_code == 404 and "preview colour" in no_preview.json()["message"]
    assert call(gw, "/v1/models/gone:predict").status_code == 404  # no ModelDeployment, no route


def test_a_model_without_an_active_colour_is_not_ready(gw: str) -> None:
    resp = call(gw, "/v1/models/fresh:predict")
    assert resp.status_code == 503 and resp.json()["error_code"] == "MODEL_NOT_READY"
    assert "Pending" in resp.json()["message"] and resp.headers["retry-after"] == "5"
