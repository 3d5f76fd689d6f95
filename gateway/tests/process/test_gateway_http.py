"""The gateway over real HTTP on loopback, with a real Redis and a real upstream server."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ferry_devcluster.procs import free_port
from ferry_gateway import cli, metrics
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, FakeClock, GatewayServer, Keys, Upstream, build_app, consumer_index

KEYS = Keys()
CONSUMERS = [
    Consumer("acme", "pro", frozenset({"predict", "preview"})),
    Consumer("tiny", "tiny", frozenset({"predict"})),
    Consumer("crowd", "crowd", frozenset({"predict"})),
    Consumer("iris-only", "free", frozenset({"predict"}), frozenset({"iris"})),
]
LIMITS = parse_limits(
    {
        "tiers": {
            "tiny": {"perMinute": 60, "burst": 2, "perDay": 3},
            "crowd": {"perMinute": 60, "burst": 50, "perDay": 100000},
        }
    }
)


@pytest.fixture(scope="module")
def gw(redis_url: str, active_upstream: Upstream, preview_upstream: Upstream) -> Iterator[str]:
    slow = Upstream(mode="echo", name="slow", delay=3.0)
    dead = f"http://127.0.0.1:{free_port()}"
    registry = ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS))
    app = build_app(
        redis_url,
        registry=registry,
        limits=LIMITS,
        clock=FakeClock(),
        upstream_timeout=0.5,
        upstreams=Upstreams(
            {"titanic": active_upstream.url, "iris": active_upstream.url, "slow": slow.url, "dead": dead},
            {"titanic": preview_upstream.url},
        ),
    )
    server = GatewayServer(app)
    yield server.url
    server.close()
    slow.close()


def post(
    url: str,
    path: str,
    *,
    consumer: str = "acme",
    body: bytes = b'{"instances": [[1, 2]]}',
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        url + path,
        content=body,
        headers={"X-API-Key": KEYS.by_consumer[consumer], **(headers or {})},
        timeout=10,
    )


def test_v1_and_v2_reach_the_active_predictor_with_body_and_trace(gw: str) -> None:
    v1 = post(
        gw,
        "/v1/models/titanic:predict",
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    assert v1.status_code == 200
    seen = v1.json()
    assert seen["upstream"] == "active" and seen["path"] == "/v1/models/titanic:predict"
    assert seen["body_bytes"] == len(b'{"instances": [[1, 2]]}')
    assert seen["headers"]["traceparent"].startswith("00-0af7651916cd43dd")
    assert seen["headers"]["x-request-id"] == v1.headers["x-request-id"]
    # credentials stay at the gateway
    assert "x-api-key" not in seen["headers"] and "authorization" not in seen["headers"]
    v2 = post(gw, "/v2/models/titanic/infer", body=b'{"inputs": []}')
    assert v2.status_code == 200 and v2.json()["path"] == "/v2/models/titanic/infer"


def test_request_id_is_kept_when_sane_and_replaced_when_not(gw: str) -> None:
    kept = post(gw, "/v1/models/titanic:predict", headers={"X-Request-ID": "client-42"})
    assert (
        kept.headers["x-request-id"] == "client-42" and kept.json()["headers"]["x-request-id"] == "client-42"
    )
    replaced = post(gw, "/v1/models/titanic:predict", headers={"X-Request-ID": "bad id\twith spaces"})
    assert (
        replaced.headers["x-request-id"] != "bad id\twith spaces"
        and len(replaced.headers["x-request-id"]) == 32
    )


def test_preview_colour_by_header(gw: str) -> None:
    resp = post(gw, "/v1/models/titanic:predict", headers={"X-Ferry-Preview": "true"})
    assert resp.status_code == 200 and resp.json()["upstream"] == "preview"
    no_preview = post(gw, "/v1/models/iris:predict", headers={"X-Ferry-Preview": "true"})
    assert no_preview.status_code == 404 and "preview" in no_preview.json()["message"]


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/v1/models/unknown:predict", "POST", 404, "MODEL_NOT_FOUND"),
        ("/v1/models/Bad_Name:predict", "POST", 404, "MODEL_NOT_FOUND"),
        ("/v1/models/titanic:predict", "GET", 405, "METHOD_NOT_ALLOWED"),
        ("/v3/whatever", "GET", 404, "NOT_FOUND"),
    ],
)
def test_routing_errors_use_the_envelope(gw: str, path: str, method: str, status: int, code: str) -> None:
    resp = httpx.request(
        method, gw + path, content=b"{}", headers={"X-API-Key": KEYS.by_consumer["acme"]}, timeout=10
    )
    assert resp.status_code == status
    body = resp.json()
    assert body["error_code"] == code
    assert set(body) == {"error_code", "message", "details", "request_id", "timestamp"}
    assert body["request_id"] == resp.headers["x-request-id"]


def test_model_allow_list(gw: str) -> None:
    assert post(gw, "/v1/models/iris:predict", consumer="iris-only").status_code == 200
    denied = post(gw, "/v1/models/titanic:predict", consumer="iris-only")
    assert denied.status_code == 403 and denied.json()["details"][0]["reason"] == "model_not_allowed"


def test_body_limits_and_bad_json(gw: str) -> None:
    big = b'{"x": "' + b"a" * (70 * 1024) + b'"}'
    declared = post(gw, "/v1/models/titanic:predict", body=big)
    assert declared.status_code == 413 and declared.json()["error_code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    streamed = httpx.post(
        gw + "/v1/models/titanic:predict",
        content=chunks(),
        headers={"X-API-Key": KEYS.by_consumer["acme"]},
        timeout=10,
    )
    assert streamed.status_code == 413
    bad = post(gw, "/v1/models/titanic:predict", body=b'{"instances": [1,')
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_JSON" and bad.json()["details"][0]["field"] == "body"


def test_upstream_failures_map_to_502_504_then_breaker_503(gw: str) -> None:
    slow = post(gw, "/v1/models/slow:predict")
    assert slow.status_code == 504 and slow.json()["error_code"] == "UPSTREAM_TIMEOUT"
    statuses = [post(gw, "/v1/models/dead:predict").status_code for _ in range(5)]
    assert statuses[:3] == [502, 502, 502]  # connection refused, three times
    assert statuses[3:] == [503, 503]  # then the breaker answers at once
    fast_fail = post(gw, "/v1/models/dead:predict")
    assert fast_fail.json()["error_code"] == "MODEL_NOT_READY" and "retry-after" in fast_fail.headers
    assert post(gw, "/v1/models/titanic:predict").status_code == 200  # other models unaffected


def test_rate_limit_headers_and_429(gw: str) -> None:
    ok = post(gw, "/v1/models/titanic:predict", consumer="tiny")
    assert ok.status_code == 200
    assert ok.headers["ratelimit-policy"] == '"burst";q=2;w=2, "day";q=3;w=86400'
    assert ok.headers["ratelimit"].startswith('"burst";r=1;')
    assert ok.headers["x-ratelimit-limit"] == "2" and ok.headers["x-ratelimit-remaining"] == "1"
    assert ok.headers["x-quota-remaining"] == "2"
    assert post(gw, "/v1/models/titanic:predict", consumer="tiny").status_code == 200
    limited = post(gw, "/v1/models/titanic:predict", consumer="tiny")
    assert limited.status_code == 429
    assert limited.json()["error_code"] == "RATE_LIMITED"
    assert limited.headers["retry-after"] == "1" and limited.headers["x-ratelimit-remaining"] == "0"
    usage = httpx.get(gw + "/v1/usage", headers={"X-API-Key": KEYS.by_consumer["tiny"]}, timeout=10).json()
    assert usage["tier"] == "tiny" and usage["quota"]["remaining"] == 1 and usage["rate"]["remaining"] == 0


async def test_64_concurrent_http_clients_get_exactly_the_burst(gw: str) -> None:
    headers = {"X-API-Key": KEYS.by_consumer["crowd"]}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=20) as client:

        async def one_client() -> list[int]:
            out = []
            for _ in range(2):
                r = await client.post(gw + "/v1/models/titanic:predict", content=b"{}", headers=headers)
                out.append(r.status_code)
            return out

        statuses = [s for batch in await asyncio.gather(*(one_client() for _ in range(64))) for s in batch]
    assert statuses.count(200) == 50  # the crowd tier's burst; the clock is frozen
    assert statuses.count(429) == 128 - 50


def test_model_list_usage_health_metrics_docs(gw: str) -> None:
    key = {"X-API-Key": KEYS.by_consumer["iris-only"]}
    assert post(gw, "/v1/models/iris:predict", consumer="iris-only").status_code == 200
    models = httpx.get(gw + "/v1/models", headers=key, timeout=10).json()["models"]
    assert [m["name"] for m in models] == ["iris"] and models[0]["status"] == "Ready"
    assert httpx.get(gw + "/v1/models", timeout=10).status_code == 401
    everything = httpx.get(gw + "/v1/models", headers={"X-API-Key": KEYS.by_consumer["acme"]}, timeout=10)
    status = {m["name"]: m["status"] for m in everything.json()["models"]}
    assert status["titanic"] == "Ready" and status["dead"] == "Unavailable"
    usage = httpx.get(gw + "/v1/usage", headers=key, timeout=10).json()
    assert usage["consumer"] == "iris-only" and usage["limits"] == {
        "perMinute": 60,
        "burst": 100,
        "perDay": 1000,
    }
    assert httpx.get(gw + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(gw + "/readyz?verbose", timeout=10)
    assert ready.status_code == 200 and ready.text == "[+]redis ok\nreadyz check passed\n"
    # the traffic port has no /metrics (issue 13, finding 2); the in-process gateway's exposition
    # is what its metrics port serves (test_dev_mode scrapes that port of a real process)
    assert httpx.get(gw + "/metrics", timeout=10).status_code == 404
    exposition = metrics.exposition()[0].decode()
    for name in (
        metrics.REQUESTS_NAME,
        metrics.REQUEST_DURATION_NAME,
        metrics.UPSTREAM_DURATION_NAME,
        metrics.RATELIMIT_DECISIONS_NAME,
    ):
        assert name in exposition
    assert 'ferry_gateway_requests_total{consumer="iris-only",model="iris",status="200"}' in exposition
    # every gateway metric is declared in metrics.py, where dashboards look them up
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name for f in text_string_to_metric_families(exposition) if f.name.startswith("ferry_")}
    declared = {n.removesuffix("_total") for n in metrics.ALL_NAMES}
    assert families <= declared and families, families - declared
    assert httpx.get(gw + "/openapi.json", timeout=10).json()["openapi"].startswith("3.")
    assert "/v1/models/{name}:predict" in httpx.get(gw + "/docs", timeout=10).text


def test_no_secret_in_logs_and_an_audit_event_per_denial(gw: str, caplog: pytest.LogCaptureFixture) -> None:
    secret_key = "fry_this_is_a_wrong_key_that_must_never_be_logged"
    with caplog.at_level(logging.INFO):
        r = httpx.post(
            gw + "/v1/models/titanic:predict", content=b"{}", headers={"X-API-Key": secret_key}, timeout=10
        )
        t = httpx.post(
            gw + "/v1/models/titanic:predict",
            content=b"{}",
            headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30.secretsig"},
            timeout=10,
        )
    assert r.status_code == t.status_code == 401
    audits = [rec for rec in caplog.records if rec.name == "ferry_gateway.audit"]
    assert [getattr(a, "fields", {}).get("reason") for a in audits] == ["invalid_api_key", "malformed_token"]
    everything = " ".join(f"{rec.getMessage()} {getattr(rec, 'fields', '')}" for rec in caplog.records)
    assert secret_key not in everything and "secretsig" not in everything


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_dead_redis_over_http(fail_open: bool, active_upstream: Upstream) -> None:
    registry = ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS))
    app = build_app(
        f"redis://127.0.0.1:{free_port()}/0",
        registry=registry,
        fail_open=fail_open,
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    server = GatewayServer(app)
    try:
        resp = post(server.url, "/v1/models/titanic:predict")
        ready = httpx.get(server.url + "/readyz?verbose", timeout=10)
    finally:
        server.close()
    if fail_open:
        assert resp.status_code == 200 and "x-ratelimit-remaining" not in resp.headers
        assert ready.status_code == 200
        assert "[+]redis ok: unreachable, admitting without rate limits (fail-open)\n" in ready.text
    else:
        assert resp.status_code == 503 and resp.json()["error_code"] == "SERVICE_UNAVAILABLE"
        assert ready.status_code == 503
        assert ready.text.startswith("[-]redis failed: unreachable") and ready.text.endswith(
            "readyz check failed\n"
        )


def test_key_revocation_and_expiry_take_effect_at_once(
    tmp_path: Path,
    redis_url: str,
    active_upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FERRY_API_KEY_PEPPER", PEPPER.decode())
    file = tmp_path / "consumers.yaml"
    assert cli.main(["keys", "create", "--consumer", "shop", "--tier", "basic", "--file", str(file)]) == 0
    key = capsys.readouterr().out.strip()
    assert cli.main(["keys", "create", "--consumer", "shop", "--file", str(file), "--expires-in", "1"]) == 0
    short_lived = capsys.readouterr().out.strip()
    assert key not in file.read_text()  # only the keyed hash is stored
    registry = ConsumerRegistry(PEPPER, path=file)
    server = GatewayServer(
        build_app(redis_url, registry=registry, upstreams=Upstreams({"titanic": active_upstream.url}))
    )
    try:
        assert post_with(server.url, key).status_code == 200
        assert cli.main(["keys", "list", "--file", str(file)]) == 0
        listing = capsys.readouterr().out
        assert "shop" in listing and "basic" in listing and key not in listing
        key_id = listing.splitlines()[1].split()[2]
        assert cli.main(["keys", "revoke", "--consumer", "shop", "--id", key_id, "--file", str(file)]) == 0
        revoked = post_with(server.url, key)  # the very next request
        assert revoked.status_code == 401 and revoked.json()["details"][0]["reason"] == "api_key_revoked"
        registry.clock = lambda: 4_000_000_000.0  # long after the short-lived key's expiry
        expired = post_with(server.url, short_lived)
        assert expired.status_code == 401 and expired.json()["details"][0]["reason"] == "api_key_expired"
    finally:
        server.close()
    os.environ.pop("FERRY_API_KEY_PEPPER", None)


def post_with(url: str, key: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/models/titanic:predict", content=b"{}", headers={"X-API-Key": key}, timeout=10
    )


def test_consumer_label_cardinality_is_bounded(active_upstream: Upstream) -> None:
    app = build_app(None, registry=ConsumerRegistry(PEPPER), upstreams=Upstreams({"m": active_upstream.url}))
    app.MAX_CONSUMER_LABELS = 2
    labels = [app._consumer_label(name) for name in ("a", "b", "c", "a", "d")]
    assert labels == ["a", "b", "other", "a", "other"]
