"""Issue 13, finding 12, against a real ``ferry-predictor``: with both on their default body limit,
a body the predictor would refuse is refused by the gateway first, before any quota is spent; and
a body exactly at the limit passes both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from ferry_common.contract import MAX_BODY_BYTES
from ferry_gateway import config
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, build_app, consumer_index
from ferry_testing.predictor import Predictor
from ferry_testing.titanic import PASSENGER

KEYS = Keys()
CONSUMERS = [Consumer("sender", "free", frozenset({"predict"}))]
PATH = "/v1/models/titanic:predict"


@pytest.fixture(scope="module")
def gateway(redis_url: str, colours: dict[str, Predictor]) -> Iterator[GatewayServer]:
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        upstreams=Upstreams({"titanic": colours["blue"].url}),
        max_body_bytes=config.load(environ={}).max_body_bytes,  # the gateway's default, as deployed
        upstream_timeout=10.0,
    )
    server = GatewayServer(app)
    yield server
    server.close()


def body_of(size: int) -> bytes:
    """A valid v1 request of exactly ``size`` bytes (JSON whitespace pads it)."""
    head, tail = b'{"instances": [' + orjson.dumps(PASSENGER), b"]}"
    return head + b" " * (size - len(head) - len(tail)) + tail


def quota_left(gw: GatewayServer) -> int:
    usage = httpx.get(f"{gw.url}/v1/usage", headers={"X-API-Key": KEYS.by_consumer["sender"]}, timeout=10)
    assert usage.status_code == 200, usage.text
    left: int = usage.json()["quota"]["remaining"]
    return left


def post(gw: GatewayServer, body: bytes, chunked: bool = False) -> httpx.Response:
    headers = {"X-API-Key": KEYS.by_consumer["sender"], "Content-Type": "application/json"}
    content: bytes | Iterator[bytes] = (
        iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
    )
    return httpx.post(f"{gw.url}{PATH}", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_past_the_predictors_limit_is_refused_by_the_gateway_for_free(
    gateway: GatewayServer, colours: dict[str, Predictor], chunked: bool
) -> None:
    before = quota_left(gateway)
    refused = post(gateway, body_of(MAX_BODY_BYTES + 1), chunked)
    assert refused.status_code == 413, refused.text
    assert refused.json()["details"] == [{"field": "body", "reason": f"at most {MAX_BODY_BYTES} bytes"}]
    assert "x-ratelimit-remaining" not in refused.headers  # refused before the limiter was asked
    assert quota_left(gateway) == before, "quota spent on a body no predictor would take"
    # the predictor, asked directly, refuses that body too: the two limits agree
    direct = httpx.post(f"{colours['blue'].url}{PATH}", content=body_of(MAX_BODY_BYTES + 1), timeout=30)
    assert direct.status_code == 413, direct.text


def test_a_body_at_the_limit_passes_the_gateway_and_the_predictor(gateway: GatewayServer) -> None:
    before = quota_left(gateway)
    served = post(gateway, body_of(MAX_BODY_BYTES))
    assert served.status_code == 200, served.text
    assert served.json()["predictions"] == [1]
    assert quota_left(gateway) == before - 1
