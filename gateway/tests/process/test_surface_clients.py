"""The clients KServe documents, unchanged, through a real gateway to real predictors: kserve's
``InferenceRESTClient`` (v1 and v2) and NVIDIA's ``tritonclient.http``, with an API key and with
a JWT (a fresh headers dict per call: tritonclient adds its own headers to the one it is given).

The binary tensor tests need the predictor's binary extension as well as the gateway's
pass-through; they fail until both are in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, build_app, consumer_index
from ferry_testing.gateway_jwt import JWKS, claims, sign
from ferry_testing.predictor import Predictor
from ferry_testing.titanic import PASSENGER, V2_TYPES
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

KEYS = Keys()
CONSUMERS = [
    Consumer("ops", "pro", frozenset({"predict", "preview"})),
    Consumer("reader", "pro", frozenset({"admin"})),
    Consumer("iris-only", "pro", frozenset({"predict"}), frozenset({"iris"})),
]

MD = {
    "metadata": {"name": "titanic"},
    "status": {
        "phase": "Verifying",
        "active": {"color": "blue", "modelVersion": "1", "ready": True},
        "preview": {"color": "green", "modelVersion": "2", "ready": True},
    },
}


@pytest.fixture(scope="module")
def gw(redis_url: str, colours: dict[str, Predictor]) -> Iterator[str]:
    catalog = ModelCatalog()
    catalog.update({"titanic": MD})
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        jwks=JWKS,
        upstreams=Upstreams({"titanic": colours["blue"].url}, {"titanic": colours["green"].url}),
        catalog=catalog,
        upstream_timeout=10.0,
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


Headers = Callable[[], dict[str, str]]


def api_key(consumer: str = "ops") -> dict[str, str]:
    return {"X-API-Key": KEYS.by_consumer[consumer]}


def bearer() -> dict[str, str]:
    return {"Authorization": "Bearer " + sign(claims(sub="jwt-ops", scope="predict preview", tier="pro"))}


@pytest.fixture(params=["api-key", "jwt"])
def creds(request: pytest.FixtureRequest) -> Headers:
    return api_key if request.param == "api-key" else bearer


def column(name: str) -> np.ndarray[Any, Any]:
    value = PASSENGER[name]
    if V2_TYPES[name] == "BYTES":
        return np.array([value.encode()], dtype=np.object_)
    return np.array([value], dtype=np.int64 if V2_TYPES[name] == "INT64" else np.float64)


# ---- kserve's client ---------------------------------------------------------------------------


async def test_kserve_v1_client(gw: str, creds: Headers) -> None:
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
    try:
        assert await client.is_server_live(gw, headers=creds()) is True
        assert await client.is_model_ready(gw, "titanic", headers=creds()) is True
        out = await client.infer(gw, {"instances": [PASSENGER]}, model_name="titanic", headers=creds())
        assert isinstance(out, dict) and out["predictions"] == [1] and out["model_version"] == "1"
        with pytest.raises(httpx.HTTPStatusError) as unknown:
            await client.is_model_ready(gw, "iris", headers=creds())
        assert unknown.value.response.status_code == 404
    finally:
        await client.close()


def kserve_request(binary: bool) -> InferRequest:
    inputs = []
    for name, datatype in V2_TYPES.items():
        i = InferInput(name, [1], datatype)
        i.set_data_from_numpy(column(name), binary_data=binary)
        inputs.append(i)
    return InferRequest("titanic", inputs)


async def test_kserve_v2_client(gw: str, creds: Headers) -> None:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        assert await client.is_server_live(gw, headers=creds()) is True
        assert await client.is_server_ready(gw, headers=creds()) is True
        assert await client.is_model_ready(gw, "titanic", headers=creds()) is True
        assert await client.is_model_ready(gw, "iris", headers=creds()) is False
        out = await client.infer(gw, kserve_request(binary=False), model_name="titanic", headers=creds())
        assert out.get_output_by_name("predictions").as_numpy().tolist() == [1]  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_kserve_v2_binary_infer(gw: str, creds: Headers) -> None:
    """Needs the predictor's binary tensor extension."""
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        out = await client.infer(gw, kserve_request(binary=True), model_name="titanic", headers=creds())
        assert out.get_output_by_name("predictions").as_numpy().tolist() == [1]  # type: ignore[union-attr]
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("who", "status"), [(dict, 401), (lambda: api_key("reader"), 403), (lambda: api_key("iris-only"), 403)]
)
async def test_kserve_refusals_are_its_own_errors(gw: str, who: Headers, status: int) -> None:
    for protocol in ("v1", "v2"):
        client = InferenceRESTClient(RESTConfig(protocol=protocol, timeout=30))
        try:
            with pytest.raises(httpx.HTTPStatusError) as refused:
                body = {"instances": [PASSENGER]} if protocol == "v1" else kserve_request(binary=False)
                await client.infer(gw, body, model_name="titanic", headers=who())
            assert refused.value.response.status_code == status
            assert refused.value.response.json()["error_code"] in ("UNAUTHENTICATED", "FORBIDDEN")
        finally:
            await client.close()


# ---- tritonclient.http ------------------------------------------------------------------------


@pytest.fixture
def tc(gw: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=gw.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def triton_infer(
    tc: triton.InferenceServerClient, headers: dict[str, str], binary: bool, version: str = ""
) -> Any:
    inputs = []
    for name, datatype in V2_TYPES.items():
        i = triton.InferInput(name, [1], datatype)
        i.set_data_from_numpy(column(name), binary_data=binary)
        inputs.append(i)
    outputs = [triton.InferRequestedOutput("predictions", binary_data=binary)]
    return tc.infer("titanic", inputs, model_version=version, outputs=outputs, headers=headers)


def test_tritonclient_health_metadata_and_json_infer(
    tc: triton.InferenceServerClient, creds: Headers
) -> None:
    assert tc.is_server_live(headers=creds()) is True
    assert tc.is_server_ready(headers=creds()) is True
    assert tc.is_model_ready("titanic", headers=creds()) is True
    assert tc.is_model_ready("titanic", model_version="1", headers=creds()) is True
    assert tc.is_model_ready("titanic", model_version="9", headers=creds()) is False
    assert tc.is_model_ready("iris", headers=creds()) is False
    server = tc.get_server_metadata(headers=creds())
    assert server["name"] == "ferry-gateway" and "binary_tensor_data" in server["extensions"]
    meta = tc.get_model_metadata("titanic", headers=creds())
    assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == list(V2_TYPES)
    assert tc.get_model_metadata("titanic", model_version="2", headers=creds())["versions"] == ["2"]
    result = triton_infer(tc, creds(), binary=False)
    assert result.as_numpy("predictions").tolist() == [1]
    assert result.get_response()["model_version"] == "1"
    assert triton_infer(tc, creds(), binary=False, version="2").get_response()["model_version"] == "2"


def test_tritonclient_binary_infer(tc: triton.InferenceServerClient, creds: Headers) -> None:
    """tritonclient's default encoding. Needs the predictor's binary tensor extension."""
    result = triton_infer(tc, creds(), binary=True)
    assert result.as_numpy("predictions").tolist() == [1]


@pytest.mark.parametrize(
    ("who", "status"),
    [(dict, "401"), (lambda: api_key("reader"), "403"), (lambda: api_key("iris-only"), "403")],
)
def test_tritonclient_refusals_are_its_own_errors(
    tc: triton.InferenceServerClient, who: Headers, status: str
) -> None:
    with pytest.raises(InferenceServerException) as refused:
        tc.get_model_metadata("titanic", headers=who())
    assert refused.value.status() == status
    with pytest.raises(InferenceServerException) as refused_infer:
        triton_infer(tc, who(), binary=False)
    assert refused_infer.value.status() == status
    assert tc.is_model_ready("titanic", headers=who()) is False
    # health and server metadata need no credential
    assert (
        tc.is_server_live(headers=who()) and tc.get_server_metadata(headers=who())["name"] == "ferry-gateway"
    )
