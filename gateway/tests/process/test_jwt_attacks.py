"""Known JWT attacks, each refused with 401 and the right reason; scope violations 403.

Through the real gateway over HTTP: what a client (or an attacker) would see."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from ferry_devcluster.procs import free_port, wait_for
from ferry_gateway.auth.jwks import UrlKeys
from ferry_gateway.consumers.registry import Consumer, ConsumerIndex, ConsumerRegistry
from ferry_gateway.limits.tiers import DEFAULT_TIERS, LimitsConfig, TierLimits
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index
from ferry_testing.gateway_jwt import (
    EC,
    ED,
    JWKS,
    OTHER_RSA,
    RSA,
    alg_none,
    claims,
    hs256_with_public_key,
    sign,
    tampered,
)

ATTACKS: dict[str, tuple[Any, str]] = {
    "alg-none": (alg_none, "alg_not_allowed"),
    "hs256-key-confusion": (hs256_with_public_key, "alg_not_allowed"),
    "rs256-header-on-ec-key": (lambda: sign(claims(), EC, "ES256", "rsa1"), "alg_not_allowed"),
    "expired": (lambda: sign(claims(exp=int(time.time()) - 120)), "token_expired"),
    "not-yet-valid": (lambda: sign(claims(nbf=int(time.time()) + 600)), "token_not_yet_valid"),
    "wrong-issuer": (lambda: sign(claims(iss="https://evil.test")), "wrong_issuer"),
    "wrong-audience": (lambda: sign(claims(aud="another-api")), "wrong_audience"),
    "unknown-kid": (lambda: sign(claims(), OTHER_RSA, kid="rotated-away"), "unknown_kid"),
    "signed-by-other-key": (lambda: sign(claims(), OTHER_RSA, kid="rsa1"), "bad_signature"),
    "tampered-payload": (tampered, "bad_signature"),
    "missing-exp": (lambda: sign(claims(exp=None)), "missing_claim"),
    "missing-sub": (lambda: sign(claims(sub=None)), "missing_claim"),
    "missing-aud": (lambda: sign(claims(aud=None)), "missing_claim"),
    "garbage": (lambda: "not.a.jwt", "malformed_token"),
}


@pytest.fixture(scope="module")
def gateway(redis_url: str, active_upstream: Upstream, preview_upstream: Upstream) -> Iterator[str]:
    registry = ConsumerRegistry(
        PEPPER, ConsumerIndex([Consumer("limited", "free", frozenset({"predict"}), frozenset({"titanic"}))])
    )
    app = build_app(
        redis_url,
        registry=registry,
        jwks=JWKS,
        upstreams=Upstreams(
            {"titanic": active_upstream.url, "iris": active_upstream.url}, {"titanic": preview_upstream.url}
        ),
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


def call(url: str, token: str, path: str = "/v1/models/titanic:predict", **headers: str) -> httpx.Response:
    return httpx.post(
        url + path,
        content=b'{"instances": [[1]]}',
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_refused_with_reason(gateway: str, attack: str) -> None:
    make, reason = ATTACKS[attack]
    resp = call(gateway, make())
    assert resp.status_code == 401
    body = resp.json()
    assert body["error_code"] == "UNAUTHENTICATED"
    assert body["details"] == [{"field": "authorization", "reason": reason}]
    assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(RSA, "RS256", "rsa1"), (EC, "ES256", "ec1"), (ED, "EdDSA", "ed1")]
)
def test_each_supported_algorithm_is_accepted(gateway: str, key: Any, alg: str, kid: str) -> None:
    resp = call(gateway, sign(claims(sub=f"ok-{alg.lower()}"), key, alg, kid))
    assert resp.status_code == 200, resp.text
    assert resp.json()["headers"]["x-ferry-consumer"] == f"jwt:ok-{alg.lower()}"  # its own namespace


def test_expiry_within_leeway_is_tolerated(gateway: str) -> None:
    assert call(gateway, sign(claims(exp=int(time.time()) - 5))).status_code == 200


def test_missing_and_malformed_credentials(gateway: str) -> None:
    none = httpx.post(gateway + "/v1/models/titanic:predict", content=b"{}", timeout=10)
    assert none.status_code == 401 and none.json()["details"][0]["reason"] == "missing_credentials"
    basic = httpx.post(
        gateway + "/v1/models/titanic:predict",
        content=b"{}",
        timeout=10,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert basic.json()["details"][0]["reason"] == "malformed_authorization"


def test_scope_violations_are_403(gateway: str) -> None:
    no_predict = call(gateway, sign(claims(scope="admin")))
    assert no_predict.status_code == 403
    assert no_predict.json()["details"] == [{"field": "scope", "reason": "missing_scope"}]
    preview = call(gateway, sign(claims(scope="predict")), **{"X-Ferry-Preview": "true"})
    assert preview.status_code == 403
    assert preview.json()["details"] == [{"field": "X-Ferry-Preview", "reason": "missing_scope"}]
    allowed = call(gateway, sign(claims(scope="predict preview")), **{"X-Ferry-Preview": "true"})
    assert allowed.status_code == 200 and allowed.json()["upstream"] == "preview"


def test_declared_consumer_allow_list_applies_to_tokens(gateway: str) -> None:
    token = sign(claims(sub="limited"))
    assert call(gateway, token).status_code == 200
    other = call(gateway, token, path="/v1/models/iris:predict")
    assert other.status_code == 403
    assert other.json()["details"] == [{"field": "name", "reason": "model_not_allowed"}]


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    doc: ClassVar[dict[str, Any]] = {"keys": []}
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps(type(self).doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


async def test_jwks_url_refreshes_on_unknown_kid_but_not_in_a_flood() -> None:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _JwksHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _JwksHandler.doc = {"keys": [JWKS["keys"][0]]}
        clock = [0.0]
        source = UrlKeys(f"http://127.0.0.1:{port}/jwks", ttl=300, min_refresh=10, clock=lambda: clock[0])
        assert set(await source.current()) == {"rsa1"}
        # the identity provider rotates in a new key; the first token with the new kid triggers a refetch
        _JwksHandler.doc = JWKS
        clock[0] = 11.0
        assert await source.refresh_for_unknown_kid() is True
        assert set(await source.current()) == {"rsa1", "ec1", "ed1"}
        hits = _JwksHandler.hits
        for _ in range(50):  # made-up kids right after: no new fetches
            assert await source.refresh_for_unknown_kid() is False
        assert _JwksHandler.hits == hits
        await source.close()
    finally:
        server.shutdown()


def test_two_credentials_at_once_are_refused(gateway: str) -> None:
    resp = httpx.post(
        gateway + "/v1/models/titanic:predict",
        content=b"{}",
        timeout=10,
        headers={"Authorization": f"Bearer {sign(claims())}", "X-API-Key": "fry_anything"},
    )
    assert resp.status_code == 401
    assert resp.json()["details"][0]["reason"] == "ambiguous_credentials"


def test_control_characters_in_the_subject_are_refused(gateway: str) -> None:
    # a signed but hostile subject must not be able to inject headers into the predictor call
    resp = call(gateway, sign(claims(sub="eve\r\nx-ferry-consumer: admin")))
    assert resp.status_code == 401 and resp.json()["details"][0]["reason"] == "invalid_claim"


def _jwks_server(doc: dict[str, Any], with_length: bool = True) -> tuple[str, Any, http.server.HTTPServer]:
    """A JWKS endpoint of the test's own: ``handler.doc`` is what it serves from now on."""

    class Handler(http.server.BaseHTTPRequestHandler):
        doc: ClassVar[dict[str, Any]] = {}

        def do_GET(self) -> None:
            body = json.dumps(type(self).doc).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            if with_length:
                self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    Handler.doc = doc
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/jwks", Handler, server


def test_a_key_removed_from_the_jwks_stops_its_cached_tokens_within_the_refresh(
    redis_url: str, active_upstream: Upstream
) -> None:
    # finding 6: a verified token stayed cached, and passing, until it expired
    refresh = 2.0
    url, jwks, idp = _jwks_server(JWKS)
    keys = UrlKeys(url, ttl=refresh, min_refresh=refresh)
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER),
        keys=keys,
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    app.on_shutdown.append(keys.close)
    gateway = GatewayServer(app)
    try:
        token, other = sign(claims(sub="rotating")), sign(claims(sub="stays"), EC, "ES256", "ec1")
        for _ in range(3):  # verified once, then from the cache
            assert call(gateway.url, token).status_code == 200
        jwks.doc = {"keys": [k for k in JWKS["keys"] if k["kid"] != "rsa1"]}  # the IdP drops rsa1
        # refused at the first refresh after the removal: one interval, plus the fetch itself
        wait_for(
            "the token of the removed key refused",
            lambda: call(gateway.url, token).status_code == 401,
            timeout=refresh + 3,
            interval=0.1,
        )
        refused = call(gateway.url, token).json()
        assert refused["details"] == [{"field": "authorization", "reason": "unknown_kid"}]
        assert call(gateway.url, other).status_code == 200  # the keys still published still work
    finally:
        gateway.close()
        idp.shutdown()


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "streamed"])
async def test_an_oversized_jwks_is_refused_and_the_known_keys_kept(
    with_length: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # finding 12: the JWKS body was read whole, whatever its size
    url, jwks, idp = _jwks_server({"keys": [JWKS["keys"][0]]}, with_length)
    clock = [0.0]
    source = UrlKeys(url, ttl=300, clock=lambda: clock[0], max_bytes=64 * 1024)
    try:
        assert set(await source.current()) == {"rsa1"}
        jwks.doc = {"keys": JWKS["keys"], "padding": "x" * (1024 * 1024)}
        clock[0] = 301.0
        assert set(await source.current()) == {"rsa1"}
        assert "larger than 65536 bytes" in caplog.text
    finally:
        await source.close()
        idp.shutdown()


def test_a_token_never_spends_or_takes_the_tier_of_the_consumer_it_names(
    redis_url: str, active_upstream: Upstream
) -> None:
    # finding 9: sub=acme was billed as, and limited like, Consumer acme, with the token's tier
    keys = Keys()
    tiers = {**DEFAULT_TIERS, "tiny": TierLimits("tiny", per_minute=600, burst=100, per_day=2)}
    registry = ConsumerRegistry(
        PEPPER, consumer_index([Consumer("acme", "tiny", frozenset({"predict", "preview"}))], keys)
    )
    app = build_app(
        redis_url,
        registry=registry,
        jwks=JWKS,
        limits=LimitsConfig(tiers),
        upstreams=Upstreams({"titanic": active_upstream.url}),
    )
    gateway = GatewayServer(app)
    key = {"X-API-Key": keys.by_consumer["acme"]}
    try:
        bare = sign(claims(sub="acme", scope=None))  # names acme, grants nothing
        assert [call(gateway.url, bare).status_code for _ in range(3)] == [200, 200, 200]
        usage = httpx.get(
            gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {bare}"}, timeout=10
        ).json()
        assert (usage["consumer"], usage["tier"], usage["scopes"]) == ("jwt:acme", "free", ["predict"])
        assert call(gateway.url, bare, **{"X-Ferry-Preview": "true"}).status_code == 403  # not acme's scopes
        mine = httpx.get(gateway.url + "/v1/usage", headers=key, timeout=10).json()
        assert (mine["consumer"], mine["tier"], mine["quota"]["remaining"]) == ("acme", "tiny", 2)
        spend = [
            httpx.post(
                gateway.url + "/v1/models/titanic:predict", content=b"{}", headers=key, timeout=10
            ).status_code
            for _ in range(3)
        ]
        assert spend == [200, 200, 429]  # acme's own quota, its own tier
        enterprise = sign(claims(sub="acme", tier="enterprise"))
        assert call(gateway.url, enterprise).status_code == 200  # its own bucket, not acme's
        again = httpx.post(gateway.url + "/v1/models/titanic:predict", content=b"{}", headers=key, timeout=10)
        assert again.status_code == 429  # the token's tier did not lift acme's limit
    finally:
        gateway.close()
