"""KServe's and NVIDIA's own clients against `make up`'s gateway Service, on the real node.

The same calls the process tier makes against a local gateway (gateway/tests/process), here through
kube-proxy to real gateway pods routing to real predictor pods: health, readiness, metadata and
infer (JSON and binary tensors), with an API key and with a JWT, and the refusals as each client
surfaces them. The model is `make up`'s sample ModelDeployment (stack.deployment).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ferry_devcluster.stack import Stack
from ferry_testing.traffic import ROW
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(600)

_NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32, "BOOL": np.bool_}


def credentials(stack: Stack) -> dict[str, dict[str, str]]:
    return {
        "api-key": {"X-API-Key": stack.api_keys["dev-pro"]},
        "jwt": {"Authorization": f"Bearer {stack.token}"},
    }


def column(name: str, datatype: str) -> np.ndarray:
    value = ROW[name]
    if datatype == "BYTES":
        return np.array([str(value).encode()], dtype=np.object_)
    return np.array([value], dtype=_NUMPY[datatype])


def triton_inputs(metadata: dict[str, Any], binary: bool) -> list[triton.InferInput]:
    """One row of the sample data, typed as the model's own metadata says (as a user would)."""
    out = []
    for spec in metadata["inputs"]:
        if spec["name"] not in ROW:
            continue
        data = column(spec["name"], spec["datatype"])
        inp = triton.InferInput(spec["name"], list(data.shape), spec["datatype"])
        inp.set_data_from_numpy(data, binary_data=binary)
        out.append(inp)
    return out


@pytest.fixture(scope="module")
def triton_client(stack: Stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(urlsplit(stack.gateway_url).netloc)


@pytest.mark.parametrize("credential", ["api-key", "jwt"])
def test_tritonclient_health_metadata_and_infer(
    stack: Stack, triton_client: triton.InferenceServerClient, credential: str
) -> None:
    name = stack.deployment
    headers = credentials(stack)[credential]
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(name, headers=dict(headers))
    metadata = triton_client.get_model_metadata(name, headers=dict(headers))
    assert {i["name"] for i in metadata["inputs"]} >= set(ROW)

    answers = []
    for binary in (False, True):
        outputs = [triton.InferRequestedOutput("predictions", binary_data=binary)]
        result = triton_client.infer(
            name, triton_inputs(metadata, binary), outputs=outputs, headers=dict(headers)
        )
        answers.append(result.as_numpy("predictions").tolist())
    assert answers[0] == answers[1] and len(answers[0]) == 1


def test_tritonclient_refusals_are_its_own_errors(
    stack: Stack, triton_client: triton.InferenceServerClient
) -> None:
    name = stack.deployment
    with pytest.raises(InferenceServerException) as no_credential:
        triton_client.get_model_metadata(name)
    assert no_credential.value.status() == "401"
    with pytest.raises(InferenceServerException) as unknown:
        triton_client.get_model_metadata("no-such-model", headers={"X-API-Key": stack.api_keys["dev-pro"]})
    assert unknown.value.status() == "404"
    # dev-free holds the predict scope but not preview.
    with pytest.raises(InferenceServerException) as scope:
        triton_client.get_model_metadata(
            name, headers={"X-API-Key": stack.api_keys["dev-free"], "X-Ferry-Preview": "true"}
        )
    assert scope.value.status() == "403"


@pytest.mark.parametrize("credential", ["api-key", "jwt"])
async def test_kserve_client_v1_and_v2(stack: Stack, credential: str) -> None:
    name = stack.deployment
    headers = credentials(stack)[credential]
    async with InferenceRESTClient(RESTConfig(protocol="v1")) as v1:
        assert await v1.is_server_live(stack.gateway_url)
        assert await v1.is_model_ready(stack.gateway_url, name, headers=headers)
        answer = await v1.infer(stack.gateway_url, {"instances": [ROW]}, model_name=name, headers=headers)
        assert len(answer["predictions"]) == 1
    async with InferenceRESTClient(RESTConfig(protocol="v2")) as v2:
        assert await v2.is_server_live(stack.gateway_url)
        assert await v2.is_server_ready(stack.gateway_url)
        assert await v2.is_model_ready(stack.gateway_url, name, headers=headers)
        async with httpx.AsyncClient() as http:
            meta = (await http.get(f"{stack.gateway_url}/v2/models/{name}", headers=headers)).json()
        inputs = []
        for spec in meta["inputs"]:
            if spec["name"] in ROW:
                inp = InferInput(spec["name"], [1], spec["datatype"])
                inp.set_data_from_numpy(column(spec["name"], spec["datatype"]), binary_data=True)
                inputs.append(inp)
        result = await v2.infer(
            stack.gateway_url, InferRequest(name, inputs), model_name=name, headers=dict(headers)
        )
        assert result.outputs[0].name == "predictions"
        assert len(result.outputs[0].as_numpy()) == 1


async def test_kserve_client_refusals_are_http_status_errors(stack: Stack) -> None:
    async with InferenceRESTClient(RESTConfig(protocol="v1")) as v1:
        with pytest.raises(httpx.HTTPStatusError) as no_credential:
            await v1.infer(stack.gateway_url, {"instances": [ROW]}, model_name=stack.deployment)
        assert no_credential.value.response.status_code == 401
        assert no_credential.value.response.json()["error_code"] == "UNAUTHENTICATED"
