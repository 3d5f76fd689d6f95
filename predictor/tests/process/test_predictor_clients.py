"""The real ``tritonclient.http`` and ``kserve`` clients against a real ``ferry-predictor``: binary tensors
in and out (their defaults), answers equal to the JSON path's, metadata with request examples, and
malformed binary bodies refused with the envelope naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http
from ferry_testing.predictor import Predictor
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.http import InferRequestedOutput
from tritonclient.utils import InferenceServerException

# Complete rows: the binary encoding has no null, so every value is present.
ROWS = [
    {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 0, "parch": 0, "fare": 211.34, "embarked": "S"},
    {"pclass": 3, "sex": "male", "age": 40.0, "sibsp": 1, "parch": 2, "fare": 7.25, "embarked": "Q"},
    {"pclass": 2, "sex": "female", "age": 4.0, "sibsp": 1, "parch": 1, "fare": 23.0, "embarked": "C"},
]
TYPES = {
    "pclass": ("INT64", np.int64),
    "sex": ("BYTES", np.object_),
    "age": ("FP64", np.float64),
    "sibsp": ("INT64", np.int64),
    "parch": ("INT64", np.int64),
    "fare": ("FP64", np.float64),
    "embarked": ("BYTES", np.object_),
}


def columns() -> dict[str, np.ndarray[Any, Any]]:
    return {c: np.array([r[c] for r in ROWS], dtype=t) for c, (_, t) in TYPES.items()}


def triton_inputs(binary_data: bool = True) -> list[tritonclient.http.InferInput]:
    out = []
    for name, array in columns().items():
        i = tritonclient.http.InferInput(name, list(array.shape), TYPES[name][0])
        i.set_data_from_numpy(array, binary_data=binary_data)
        out.append(i)
    return out


def json_answer(p: Predictor) -> dict[str, Any]:
    body = {
        "inputs": [
            {"name": c, "datatype": TYPES[c][0], "shape": [len(ROWS)], "data": [r[c] for r in ROWS]}
            for c in TYPES
        ]
    }
    r = httpx.post(f"{p.url}/v2/models/titanic/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


def test_tritonclient_sees_a_live_ready_server_and_the_models_examples(
    champion: Predictor, triton: tritonclient.http.InferenceServerClient
) -> None:
    assert triton.is_server_live(headers={})
    assert triton.is_server_ready(headers={})
    assert triton.is_model_ready("titanic", headers={})
    meta = triton.get_model_metadata("titanic", headers={})
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {c: t for c, (t, _) in TYPES.items()}
    examples = meta["parameters"]["examples"]
    assert set(examples) == {"v1", "v2"}
    assert len(examples["v1"]["instances"]) == 3  # the three rows logged as the input example
    # The examples are requests this predictor accepts as they are.
    v2 = httpx.post(f"{champion.url}/v2/models/titanic/infer", json=examples["v2"], timeout=30)
    assert v2.status_code == 200, v2.text
    v1 = httpx.post(f"{champion.url}/v1/models/titanic:predict", json=examples["v1"], timeout=30)
    assert v1.status_code == 200, v1.text
    assert [o["data"] for o in v2.json()["outputs"] if o["name"] == "predictions"] == [
        v1.json()["predictions"]
    ]


def test_tritonclient_binary_inputs_and_outputs_answer_as_the_json_path(
    champion: Predictor, triton: tritonclient.http.InferenceServerClient
) -> None:
    expected = json_answer(champion)
    # The client's defaults: binary inputs, and with no outputs named, binary_data_output.
    result = triton.infer("titanic", triton_inputs(), headers={})
    response = result.get_response()
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    assert (response["model_version"], response["parameters"]["color"]) == ("1", "green")
    assert result.as_numpy("predictions").tolist() == expected["predictions"]["data"]
    np.testing.assert_array_equal(
        result.as_numpy("probabilities").ravel(), np.array(expected["probabilities"]["data"])
    )
    # Named outputs, each asked for as binary, and a pinned version.
    outputs = [InferRequestedOutput("probabilities", binary_data=True)]
    pinned = triton.infer("titanic", triton_inputs(), model_version="1", outputs=outputs, headers={})
    assert [o["name"] for o in pinned.get_response()["outputs"]] == ["probabilities"]
    np.testing.assert_array_equal(pinned.as_numpy("probabilities"), result.as_numpy("probabilities"))


def test_tritonclient_json_tensors_still_work(
    champion: Predictor, triton: tritonclient.http.InferenceServerClient
) -> None:
    outputs = [InferRequestedOutput("predictions", binary_data=False)]
    result = triton.infer("titanic", triton_inputs(binary_data=False), outputs=outputs, headers={})
    assert "binary_data_size" not in result.get_output("predictions").get("parameters", {})
    assert result.as_numpy("predictions").tolist() == json_answer(champion)["predictions"]["data"]


def test_tritonclient_gets_a_refusal_as_its_own_error(
    triton: tritonclient.http.InferenceServerClient,
) -> None:
    inputs = triton_inputs()
    wrong = tritonclient.http.InferInput("pclass", [len(ROWS)], "FP32")
    wrong.set_data_from_numpy(np.array([1.5, 3, 2], dtype=np.float32))
    inputs[0] = wrong
    with pytest.raises(InferenceServerException) as info:
        triton.infer("titanic", inputs, headers={})
    assert info.value.status() == "422"
    envelope = orjson.loads(info.value.debug_details() or "{}")
    assert envelope["error_code"] == "INVALID_INPUT"
    assert envelope["details"][0]["field"] == "inputs[0](pclass).datatype"


def test_a_bad_binary_body_gets_the_envelope_naming_the_field(champion: Predictor) -> None:
    head = orjson.dumps(
        {
            "inputs": [
                {"name": "pclass", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}},
                {"name": "age", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}},
            ]
        }
    )
    url = f"{champion.url}/v2/models/titanic/infer"
    framing = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
    r = httpx.post(url, content=head + bytes(12), headers=framing, timeout=30)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error_code", "message", "details", "request_id", "timestamp"}
    assert body["error_code"] == "INVALID_INPUT"
    assert body["details"][0]["field"] == "inputs[1](age).parameters.binary_data_size"
    assert "only 4 bytes" in body["details"][0]["reason"]
    r = httpx.post(
        url, content=head, headers={**framing, "Inference-Header-Content-Length": "-1"}, timeout=30
    )
    assert (r.status_code, r.json()["details"][0]["field"]) == (400, "Inference-Header-Content-Length")


async def test_kserve_v2_client_infers_with_binary_tensors(champion: Predictor) -> None:
    expected = json_answer(champion)
    inputs = []
    for name, array in columns().items():
        i = InferInput(name, list(array.shape), TYPES[name][0])
        i.set_data_from_numpy(array, binary_data=True)
        inputs.append(i)
    wanted = [
        RequestedOutput("predictions", {"binary_data": True}),
        RequestedOutput("probabilities", {"binary_data": True}),
    ]
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    headers: dict[str, str] = {}
    try:
        response = await client.infer(
            champion.url,
            InferRequest("titanic", inputs, request_outputs=wanted),
            model_name="titanic",
            response_headers=headers,
        )
    finally:
        await client.close()
    # The client turns binary outputs into lists as it reads them; the framing shows they came binary.
    assert headers["content-type"] == "application/octet-stream"
    assert int(headers["inference-header-content-length"]) > 0
    outputs = {o.name: o for o in response.outputs}
    assert outputs["predictions"].as_numpy().tolist() == expected["predictions"]["data"]
    np.testing.assert_array_equal(
        outputs["probabilities"].as_numpy().ravel(), np.array(expected["probabilities"]["data"])
    )
