"""The whole KServe v1 and Open Inference Protocol v2 surface through a real gateway (real Redis)
to real predictors: blue serves Titanic version 1 (active), green version 2 (preview).

Two gateways: dev mode (static upstreams, readiness and versions asked of the predictors) and a
catalogue one (the ModelDeployment status says which colour serves which version, and whether it
is ready). Every model call with an API key and with a JWT; the refusals; no credentials for the
server's own health and metadata; and none of those calls spends rate limit or quota."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import free_port
from ferry_gateway.app import SERVER_METADATA
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing import snippets
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, LoopThread, Upstream, build_app, consumer_index
from ferry_testing.gateway_jwt import JWKS, claims, sign
from ferry_testing.predictor import Predictor
from ferry_testing.titanic import PASSENGER, V2_TYPES

KEYS = Keys()
CONSUMERS = [
    Consumer("ops", "pro", frozenset({"predict", "preview"})),
    Consumer("caller", "pro", frozenset({"predict"})),  # no preview scope
    Consumer("reader", "pro", frozenset({"admin"})),  # no predict scope
    Consumer("iris-only", "pro", frozenset({"predict", "preview"}), frozenset({"iris"})),
]

V1_BODY = {"instances": [PASSENGER]}
V2_BODY = {
    "inputs": [{"name": c, "datatype": t, "shape": [1], "data": [PASSENGER[c]]} for c, t in V2_TYPES.items()]
}


def md(active_ready: bool = True, preview_ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": "titanic"},
        "status": {
            "phase": "Verifying",
            "active": {"color": "blue", "modelVersion": "1", "ready": active_ready},
            "preview": {"color": "green", "modelVersion": "2", "ready": preview_ready},
        },
    }


@dataclass
class Gw:
    mode: str
    url: str
    server: GatewayServer
    catalog: ModelCatalog | None


def gateway(redis_url: str, colours: dict[str, Predictor], mode: str, **extra: str) -> Gw:
    catalog = None
    if mode == "catalog":
        catalog = ModelCatalog()
        catalog.update({"titanic": md()})
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        jwks=JWKS,
        upstreams=Upstreams({"titanic": colours["blue"].url, **extra}, {"titanic": colours["green"].url}),
        catalog=catalog,
        upstream_timeout=10.0,
    )
    server = GatewayServer(app)
    return Gw(mode, server.url, server, catalog)


@pytest.fixture(scope="module", params=["dev", "catalog"])
def gw(request: pytest.FixtureRequest, redis_url: str, colours: dict[str, Predictor]) -> Iterator[Gw]:
    g = gateway(redis_url, colours, request.param)
    yield g
    g.server.close()


Creds = Callable[[], dict[str, str]]


def api_key(consumer: str = "ops") -> dict[str, str]:
    return {"X-API-Key": KEYS.by_consumer[consumer]}


def bearer(**over: Any) -> dict[str, str]:
    token = sign(claims(**{"sub": "jwt-ops", "scope": "predict preview", "tier": "pro", **over}))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["api-key", "jwt"])
def creds(request: pytest.FixtureRequest) -> Creds:
    return api_key if request.param == "api-key" else bearer


def call(
    gw: Gw, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> httpx.Response:
    return httpx.request(method, gw.url + path, json=body, headers=headers or {}, timeout=30)


def envelope(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert set(doc) == {"error_code", "message", "details", "request_id", "timestamp"}
    assert doc["error_code"] == code and doc["request_id"] == r.headers["x-request-id"]
    return doc


MODEL_CALLS = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/titanic", None),
    ("POST", "/v1/models/titanic:predict", V1_BODY),
    ("GET", "/v2/models/titanic", None),
    ("GET", "/v2/models/titanic/versions/1", None),
    ("GET", "/v2/models/titanic/ready", None),
    ("GET", "/v2/models/titanic/versions/1/ready", None),
    ("POST", "/v2/models/titanic/infer", V2_BODY),
    ("POST", "/v2/models/titanic/versions/1/infer", V2_BODY),
]


def test_the_server_answers_health_and_metadata_without_credentials(gw: Gw) -> None:
    def get(path: str) -> httpx.Response:
        return httpx.get(gw.url + path, timeout=10)

    assert get("/").json() == {"status": "alive"}
    assert (
        get("/v2").json()
        == SERVER_METADATA
        == {
            "name": "ferry-gateway",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data"],
        }
    )
    assert get("/v2/health/live").json() == {"live": True}
    assert get("/v2/health/ready").json() == {"ready": True}
    assert get("/healthz").json() == {"status": "ok"}
    live = get("/livez")
    assert (live.status_code, live.text, live.headers["content-type"]) == (
        200,
        "ok",
        "text/plain; charset=utf-8",
    )
    assert get("/livez?verbose").text == "[+]ping ok\nlivez check passed\n"
    assert get("/readyz").text == "ok"
    expected = "[+]redis ok\n" + ("[+]catalogue-synced ok\n" if gw.mode == "catalog" else "")
    assert get("/readyz?verbose").text == expected + "readyz check passed\n"
    assert get("/readyz?verbose&exclude=redis").text.startswith("[+]redis excluded: ok\n")
    assert get("/readyz/redis").text == "ok"
    envelope(get("/readyz/etcd"), 404, "NOT_FOUND")
    wrong = httpx.post(gw.url + "/v2/health/ready", timeout=10)
    assert envelope(wrong, 405, "METHOD_NOT_ALLOWED") and wrong.headers["allow"] == "GET"


def test_every_model_call_with_a_credential(gw: Gw, creds: Creds) -> None:
    listed = call(gw, "GET", "/v1/models", creds()).json()["models"]
    assert [m["name"] for m in listed] == ["titanic"] and listed[0]["ready"] is True
    assert call(gw, "GET", "/v1/models/titanic", creds()).json() == {"name": "titanic", "ready": True}
    v1 = call(gw, "POST", "/v1/models/titanic:predict", creds(), V1_BODY)
    assert v1.status_code == 200 and v1.json()["predictions"] == [1]
    assert "x-ratelimit-remaining" in v1.headers
    for path, version in (("/v2/models/titanic", "1"), ("/v2/models/titanic/versions/1", "1")):
        meta = call(gw, "GET", path, creds())
        assert meta.status_code == 200, meta.text
        assert meta.json()["versions"] == [version] and meta.json()["parameters"]["color"] == "blue"
        assert "x-ratelimit-remaining" not in meta.headers  # metadata spends nothing
    for path in ("/v2/models/titanic/ready", "/v2/models/titanic/versions/1/ready"):
        assert call(gw, "GET", path, creds()).json() == {"name": "titanic", "ready": True}
    for path in ("/v2/models/titanic/infer", "/v2/models/titanic/versions/1/infer"):
        out = call(gw, "POST", path, creds(), V2_BODY)
        assert out.status_code == 200, out.text
        assert out.json()["model_version"] == "1" and out.json()["parameters"]["color"] == "blue"


def test_the_preview_by_version_or_header(gw: Gw, creds: Creds) -> None:
    preview = {**creds(), "X-Ferry-Preview": "true"}
    assert call(gw, "GET", "/v2/models/titanic", preview).json()["versions"] == ["2"]
    assert call(gw, "GET", "/v2/models/titanic/versions/2", creds()).json()["versions"] == ["2"]
    assert call(gw, "GET", "/v2/models/titanic/versions/2/ready", creds()).status_code == 200
    assert call(gw, "GET", "/v1/models/titanic", preview).json() == {"name": "titanic", "ready": True}
    out = call(gw, "POST", "/v2/models/titanic/versions/2/infer", creds(), V2_BODY).json()
    assert out["model_version"] == "2" and out["parameters"]["color"] == "green"
    # with the preview header only the preview's version exists
    missing = envelope(call(gw, "GET", "/v2/models/titanic/versions/1", preview), 404, "MODEL_NOT_FOUND")
    assert missing["details"] == [{"field": "version", "reason": "version 1 is not served"}]


@pytest.mark.parametrize(("method", "path", "body"), MODEL_CALLS, ids=[f"{m} {p}" for m, p, _ in MODEL_CALLS])
def test_refusals_as_for_predictions(gw: Gw, method: str, path: str, body: Any) -> None:
    assert envelope(call(gw, method, path, None, body), 401, "UNAUTHENTICATED")
    bad_jwt = call(gw, method, path, bearer(aud="someone-else"), body)
    assert envelope(bad_jwt, 401, "UNAUTHENTICATED")["details"][0]["reason"] == "wrong_audience"
    no_scope = envelope(call(gw, method, path, api_key("reader"), body), 403, "FORBIDDEN")
    assert no_scope["details"] == [{"field": "scope", "reason": "missing_scope"}]
    jwt_no_scope = call(gw, method, path, bearer(scope="admin"), body)
    assert envelope(jwt_no_scope, 403, "FORBIDDEN")["details"][0]["reason"] == "missing_scope"
    if path == "/v1/models":  # the list shows only what the caller may use
        assert call(gw, method, path, api_key("iris-only")).json() == {"models": []}
        return
    not_allowed = envelope(call(gw, method, path, api_key("iris-only"), body), 403, "FORBIDDEN")
    assert not_allowed["details"][0]["reason"] == "model_not_allowed"
    unknown = envelope(
        call(gw, method, path.replace("titanic", "iris"), api_key(), body), 404, "MODEL_NOT_FOUND"
    )
    assert unknown["details"][0]["field"] == "name"
    wrong_method = call(gw, "GET" if method == "POST" else "POST", path, api_key())
    assert envelope(wrong_method, 405, "METHOD_NOT_ALLOWED") and wrong_method.headers["allow"] == method


@pytest.mark.parametrize("path", ["/v2/models/titanic/versions/9", "/v2/models/titanic/versions/9/ready"])
def test_an_unknown_version_is_404_naming_it(gw: Gw, path: str) -> None:
    doc = envelope(call(gw, "GET", path, api_key()), 404, "MODEL_NOT_FOUND")
    assert doc["details"] == [{"field": "version", "reason": "version 9 is not served"}]
    assert "version 9" in doc["message"]
    infer = call(gw, "POST", "/v2/models/titanic/versions/9/infer", api_key(), V2_BODY)
    assert envelope(infer, 404, "MODEL_NOT_FOUND")["details"][0]["field"] == "version"
    # the preview's version is not there for a caller without the preview scope
    hidden = envelope(
        call(gw, "GET", "/v2/models/titanic/versions/2", api_key("caller")), 404, "MODEL_NOT_FOUND"
    )
    assert hidden["details"] == [{"field": "version", "reason": "version 2 is not served"}]


def usage(gw: Gw, headers: dict[str, str]) -> tuple[int, int]:
    doc = call(gw, "GET", "/v1/usage", headers).json()
    return doc["rate"]["remaining"], doc["quota"]["remaining"]


@pytest.mark.parametrize("who", ["api-key", "jwt"])
def test_metadata_readiness_and_health_spend_no_rate_limit_or_quota(gw: Gw, who: str) -> None:
    creds: Creds = api_key if who == "api-key" else bearer
    before = usage(gw, creds())
    for _ in range(3):
        for method, path, _body in MODEL_CALLS:
            if method == "GET":
                assert call(gw, method, path, creds()).status_code == 200, path
        for path in ("/", "/v2", "/v2/health/live", "/v2/health/ready", "/healthz", "/livez", "/readyz"):
            assert httpx.get(gw.url + path, timeout=10).status_code == 200
        assert call(gw, "GET", "/v2/models/titanic/versions/2", creds()).status_code == 200
    assert usage(gw, creds()) == before
    assert call(gw, "POST", "/v2/models/titanic/infer", creds(), V2_BODY).status_code == 200
    assert usage(gw, creds())[1] == before[1] - 1  # a prediction does spend


def test_readiness_follows_the_predictor_in_dev_mode(redis_url: str, colours: dict[str, Predictor]) -> None:
    g = gateway(redis_url, colours, "dev", dead=f"http://127.0.0.1:{free_port()}")
    try:
        for path in ("/v1/models/dead", "/v2/models/dead/ready"):
            doc = envelope(call(g, "GET", path, api_key()), 503, "MODEL_NOT_READY")
            assert doc["details"] == [{"field": "name", "reason": "not_ready"}]
        envelope(call(g, "GET", "/v2/models/dead", api_key()), 502, "UPSTREAM_UNAVAILABLE")
        # metadata and readiness share the predictions' breaker: three failures open it
        fast = envelope(call(g, "GET", "/v2/models/dead", api_key()), 503, "MODEL_NOT_READY")
        assert "recent failures" in fast["message"]
        envelope(call(g, "POST", "/v2/models/dead/infer", api_key(), V2_BODY), 503, "MODEL_NOT_READY")
        assert call(g, "GET", "/v1/models/titanic", api_key()).status_code == 200
    finally:
        g.server.close()


def test_readiness_follows_the_model_deployment_status(redis_url: str, colours: dict[str, Predictor]) -> None:
    g = gateway(redis_url, colours, "catalog")
    assert g.catalog is not None
    catalog = g.catalog
    try:
        g.server.on_loop(lambda: catalog.update({"titanic": md(active_ready=False, preview_ready=False)}))
        envelope(call(g, "GET", "/v1/models/titanic", api_key()), 503, "MODEL_NOT_READY")
        envelope(call(g, "GET", "/v2/models/titanic/ready", api_key()), 503, "MODEL_NOT_READY")
        preview = {**api_key(), "X-Ferry-Preview": "true"}
        envelope(call(g, "GET", "/v2/models/titanic/ready", preview), 503, "MODEL_NOT_READY")
        g.server.on_loop(lambda: catalog.update({"titanic": md(active_ready=True, preview_ready=False)}))
        assert call(g, "GET", "/v2/models/titanic/ready", api_key()).status_code == 200
        envelope(call(g, "GET", "/v2/models/titanic/versions/2/ready", api_key()), 503, "MODEL_NOT_READY")
    finally:
        g.server.close()


def test_readyz_names_the_catalogue_until_it_is_listed(redis_url: str, active_upstream: Upstream) -> None:
    catalog = ModelCatalog()
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        upstreams=Upstreams(namespace="ml"),
        catalog=catalog,
    )
    server = GatewayServer(app)
    try:
        pending = httpx.get(server.url + "/readyz", timeout=10)
        assert pending.status_code == 503
        assert pending.text == (
            "[+]redis ok\n"
            "[-]catalogue-synced failed: first list of ModelDeployments pending\n"
            "readyz check failed\n"
        )
        not_ready = envelope(
            httpx.get(server.url + "/v2/health/ready", timeout=10), 503, "SERVICE_UNAVAILABLE"
        )
        assert not_ready["details"] == [
            {"field": "catalogue-synced", "reason": "first list of ModelDeployments pending"}
        ]
        assert httpx.get(server.url + "/livez", timeout=10).text == "ok"  # alive all the same
        assert httpx.get(server.url + "/readyz?exclude=catalogue-synced", timeout=10).text == "ok"
        server.on_loop(lambda: catalog.update({}))
        assert httpx.get(server.url + "/readyz?verbose", timeout=10).text.endswith("readyz check passed\n")
    finally:
        server.close()


# ---- binary tensor bodies: forwarded unchanged, the predictor's headers passed back -------------


class BinaryUpstream:
    """A predictor stand-in that answers with a binary-extension body describing what it got: the
    JSON header (the request's Inference-Header-Content-Length and content type, the body's
    SHA-256) then raw bytes."""

    TAIL = bytes(range(256))

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = LoopThread()
        self._server = self._loop.run(asyncio.start_server(self._serve, "127.0.0.1", self.port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen = json.dumps(
                {
                    "path": lines[0].split()[1],
                    "json_length": headers.get("inference-header-content-length"),
                    "content_type": headers.get("content-type"),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            ).encode()
            payload = seen + self.TAIL
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                b"inference-header-content-length: " + str(len(seen)).encode() + b"\r\n"
                b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )
            await writer.drain()

    def close(self) -> None:
        self._server.close()
        self._loop.stop()


@pytest.fixture(scope="module")
def binary_gw(redis_url: str) -> Iterator[str]:
    up = BinaryUpstream()
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        upstreams=Upstreams({"titanic": up.url}),
    )
    server = GatewayServer(app)
    yield server.url
    server.close()
    up.close()


def binary_request() -> tuple[bytes, int]:
    header = json.dumps(
        {
            "inputs": [
                {"name": "age", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 16}}
            ]
        }
    ).encode()
    return header + b"\x00\x00\x00\x00\x00\x00\x3d\x40" * 2, len(header)


def test_a_binary_body_is_forwarded_unchanged_and_the_answer_passed_back(binary_gw: str) -> None:
    body, json_length = binary_request()
    headers = {
        **api_key(),
        "Inference-Header-Content-Length": str(json_length),
        "Content-Type": "application/octet-stream",
    }
    r = httpx.post(binary_gw + "/v2/models/titanic/infer", content=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    assert r.headers["content-type"] == "application/octet-stream"
    seen = json.loads(r.content[:n])
    assert seen == {
        "path": "/v2/models/titanic/infer",
        "json_length": str(json_length),
        "content_type": "application/octet-stream",
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert r.content[n:] == BinaryUpstream.TAIL
    # a versioned call goes the same way; v1 has no binary extension, so the header is not passed on
    v1 = httpx.post(binary_gw + "/v1/models/titanic:predict", content=b"{}", headers=headers, timeout=10)
    assert json.loads(v1.content[: int(v1.headers["inference-header-content-length"])])["json_length"] is None


@pytest.mark.parametrize(
    ("length", "status", "code", "field"),
    [
        ("abc", 400, "INVALID_JSON", "Inference-Header-Content-Length"),
        ("-5", 400, "INVALID_JSON", "Inference-Header-Content-Length"),
        ("1e3", 400, "INVALID_JSON", "Inference-Header-Content-Length"),
        ("99999999999999999999", 400, "INVALID_JSON", "Inference-Header-Content-Length"),
        ("100000", 400, "INVALID_JSON", "Inference-Header-Content-Length"),
        ("5", 400, "INVALID_JSON", "body"),
        ("0", 400, "INVALID_JSON", "body"),
    ],
)
def test_a_bad_binary_header_is_refused_naming_the_field(
    binary_gw: str, length: str, status: int, code: str, field: str
) -> None:
    body, _ = binary_request()
    headers = {**api_key(), "Inference-Header-Content-Length": length}
    r = httpx.post(binary_gw + "/v2/models/titanic/infer", content=body, headers=headers, timeout=10)
    assert envelope(r, status, code)["details"][0]["field"] == field


README = snippets.claim("gateway/README.md", "readyz-failing")


def test_readyz_names_the_consumers_until_they_are_listed(redis_url: str, active_upstream: Upstream) -> None:
    listed = False
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    app.consumers_ready = lambda: listed  # as the Consumer and Secret watches report it
    server = GatewayServer(app)
    try:
        pending = httpx.get(server.url + "/readyz", timeout=10)
        # the README shows this answer after its curl line
        assert (pending.status_code, pending.text) == (503, README.text("readyz-failing").split("\n", 1)[1])
        one = httpx.get(server.url + "/readyz/consumers-synced", timeout=10)
        assert one.status_code == 503 and "consumers-synced failed" in one.text
        listed = True
        assert httpx.get(server.url + "/readyz?verbose", timeout=10).text == (
            "[+]redis ok\n[+]consumers-synced ok\nreadyz check passed\n"
        )
    finally:
        server.close()
