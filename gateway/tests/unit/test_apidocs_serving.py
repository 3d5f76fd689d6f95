"""/docs and /openapi.json through the whole gateway app, in process: Swagger UI's own files with
their content types and caching, nothing outside them, and the document following the catalog."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
import swagger_ui_bundle
from ferry_common.asgi import Message
from ferry_gateway.apidocs import Refresher, spec
from ferry_gateway.app import Gateway
from ferry_gateway.consumers.registry import ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import MD_IRIS, MD_TITANIC, PEPPER, Keys, build_app, consumer_index

VERSION = swagger_ui_bundle.swagger_ui_path.name.removeprefix("swagger-ui-")


def gateway() -> Gateway:
    registry = ConsumerRegistry(PEPPER, consumer_index([], Keys()))
    return build_app(None, registry=registry, upstreams=Upstreams({"titanic": "http://127.0.0.1:9"}))


def get(app: Gateway, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "scheme": "http",
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_page_loads_swagger_ui_from_the_gateway_itself_pointed_at_openapi_json() -> None:
    app = gateway()
    for path in ("/docs", "/docs/"):
        status, headers, body = get(app, path)
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-cache"
        page = body.decode()
        assert "http" not in page.replace("charset", "")  # no CDN, no other host: only /docs/... paths
        assert f"/docs/{VERSION}/swagger-ui-bundle.js" in page and "/docs/ferry-init.js" in page
        # without JavaScript, the page still lists the operations
        assert "<code>/v1/models/{name}:predict</code>" in page and "<noscript>" in page
    status, headers, body = get(app, "/docs/ferry-init.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b'url: "/openapi.json"' in body and b"persistAuthorization: true" in body


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
        ("swagger-ui-bundle.js.map", "application/json"),
    ],
)
def test_assets_are_the_package_files_with_their_type_and_cached_for_a_year(
    name: str, content_type: str
) -> None:
    status, headers, body = get(gateway(), f"/docs/{VERSION}/{name}")
    assert status == 200, body[:200]
    assert body == (swagger_ui_bundle.swagger_ui_path / name).read_bytes()
    assert headers["content-type"] == content_type
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize(
    "path",
    [
        f"/docs/{VERSION}/../../../../pyproject.toml",
        f"/docs/{VERSION}/..%2f..%2fpyproject.toml",
        f"/docs/{VERSION}/%2e%2e/__init__.py",
        f"/docs/{VERSION}/../__init__.py",
        f"/docs/{VERSION}//etc/passwd",
        f"/docs/{VERSION}/",
        f"/docs/{VERSION}/index.html",  # the package's petstore page is not ours
        f"/docs/{VERSION}/swagger-initializer.js",
        "/docs/swagger-ui-bundle.js",
        "/docs/0.0.1/swagger-ui-bundle.js",
        "/docs/../../etc/passwd",
        "/docs/%00",
    ],
)
def test_nothing_outside_the_allow_list_is_served(path: str) -> None:
    status, _, body = get(gateway(), path)
    assert status == 404
    assert orjson.loads(body)["error_code"] == "NOT_FOUND"


def test_only_get() -> None:
    status, headers, _ = get(gateway(), "/openapi.json", method="POST")
    assert status == 405 and headers["allow"] == "GET"


def test_openapi_json_before_any_metadata_is_the_generic_document() -> None:
    status, headers, body = get(gateway(), "/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-cache"
    assert orjson.loads(body) == spec()


# ---- the refresher, with a fake fetch -----------------------------------------------------------


def meta(version: str, column: str = "pclass") -> dict[str, Any]:
    inputs = [{"name": column, "datatype": "INT64", "shape": [-1], "parameters": {"required": True}}]
    return {"name": "titanic", "versions": [version], "inputs": inputs, "outputs": []}


class Fake:
    """Predictors by base URL: what each answers to GET /v2/models/NAME (None: no answer)."""

    def __init__(self, answers: Mapping[str, dict[str, Any] | None]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, model: str, base: str) -> dict[str, Any] | None:
        self.calls.append((model, base))
        return self.answers.get(base)


def md(version: str, color: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "titanic"},
        "status": {"phase": "Stable", "active": {"color": color, "modelVersion": version, "ready": True}},
    }


def described(r: Refresher) -> dict[str, Any]:
    doc = orjson.loads(r.document)
    return {p: op["post"]["x-ferry-model-version"] for p, op in doc["paths"].items() if "titanic" in p}


BLUE = "http://titanic-blue-predictor.ml.svc.cluster.local"
GREEN = "http://titanic-green-predictor.ml.svc.cluster.local"


def test_the_document_follows_the_active_version_and_drops_removed_models() -> None:
    async def scenario() -> None:
        catalog = ModelCatalog()
        fake = Fake({BLUE: meta("1"), GREEN: meta("2", "sex")})
        r = Refresher(Upstreams(namespace="ml"), catalog, fake)
        await r.refresh()
        assert described(r) == {} and fake.calls == []  # catalog not listed yet: nothing to fetch
        catalog.update({"titanic": md("1", "blue"), "iris": MD_IRIS})
        await r.refresh()
        assert described(r) == {"/v1/models/titanic:predict": "1", "/v2/models/titanic/infer": "1"}
        await r.refresh()  # nothing changed: nothing fetched again
        assert fake.calls.count(("titanic", BLUE)) == 1
        catalog.update({"titanic": md("2", "green")})
        await r.refresh()
        assert set(described(r).values()) == {"2"}
        assert "titanic.v2.input.sex" in orjson.loads(r.document)["components"]["schemas"]
        catalog.update({})
        await r.refresh()
        assert described(r) == {} and orjson.loads(r.document) == spec()

    asyncio.run(scenario())


def test_a_failed_fetch_after_a_promotion_never_shows_the_old_signature_and_is_retried() -> None:
    async def scenario() -> None:
        catalog = ModelCatalog()
        fake = Fake({BLUE: meta("1"), GREEN: None})
        r = Refresher(Upstreams(namespace="ml"), catalog, fake)
        catalog.update({"titanic": md("1", "blue")})
        await r.refresh()
        catalog.update({"titanic": md("2", "green")})
        await r.refresh()
        assert described(r) == {}  # generic, not version 1's
        fake.answers[GREEN] = meta("2")
        await r.refresh()
        assert set(described(r).values()) == {"2"}

    asyncio.run(scenario())


def test_dev_mode_fetches_every_upstream_on_each_pass() -> None:
    async def scenario() -> None:
        fake = Fake({"http://a": meta("7")})
        r = Refresher(Upstreams({"titanic": "http://a"}), None, fake)
        await r.refresh()
        await r.refresh()
        assert fake.calls == [("titanic", "http://a")] * 2 and set(described(r).values()) == {"7"}
        fake.answers["http://a"] = None  # the predictor went away: its last answer still stands
        await r.refresh()
        assert set(described(r).values()) == {"7"}

    asyncio.run(scenario())


def test_the_catalog_wakes_the_refresher() -> None:
    async def scenario() -> None:
        catalog = ModelCatalog()
        fake = Fake({"http://titanic-blue-predictor.ml.svc.cluster.local": meta("3")})
        r = Refresher(Upstreams(namespace="ml"), catalog, fake, interval=3600)
        await r.start()
        try:
            catalog.update({"titanic": MD_TITANIC})
            async with asyncio.timeout(5):
                while not described(r):  # noqa: ASYNC110 (polling the document: no event says it changed)
                    await asyncio.sleep(0.01)
        finally:
            await r.stop()
        assert set(described(r).values()) == {"3"}

    asyncio.run(scenario())
