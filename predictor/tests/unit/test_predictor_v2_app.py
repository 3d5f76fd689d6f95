"""The v2 surface of the ASGI app called in-process: binary tensors in and out, requested outputs, and
the metadata's request examples (which its own /infer accepts)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
from ferry_common.asgi import Message
from ferry_predictor.app import PredictorApp
from ferry_predictor.config import Config
from ferry_predictor.model import LoadedModel
from ferry_predictor.schema import from_mlflow
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

SCHEMA = from_mlflow(
    [
        {"type": "long", "name": "pclass"},
        {"type": "string", "name": "sex"},
        {"type": "double", "name": "age", "required": False},
    ],
    {},
)
EXAMPLE = {"columns": ["pclass", "sex", "age"], "data": [[1, "female", 29.0], [3, "male", 40.0]]}
INFER = "/v2/models/titanic/infer"


class Classifier:
    """Survives when first class: enough of scikit-learn's interface for the app."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame: Any) -> Any:
        first = (frame["pclass"].to_numpy() == 1).astype(float)
        return np.column_stack((1 - first * 0.75 - 0.125, first * 0.75 + 0.125))


def app(example: dict[str, Any] | None = EXAMPLE) -> PredictorApp:
    a = PredictorApp(Config("titanic", "models:/titanic-survival/1", color="blue"))
    a.model = LoadedModel(
        "models:/titanic-survival/1", "1", "sklearn", SCHEMA, example, estimator=Classifier()
    )
    return a


async def call(
    a: PredictorApp, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    sent: list[Message] = []
    pending: list[Message] = [{"type": "http.request", "body": body}]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await a(scope, receive, send)
    start, end = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, end["body"]


def triton_request(outputs: list[InferRequestedOutput] | None = None) -> tuple[bytes, dict[str, str]]:
    inputs = [
        InferInput("pclass", [2], "INT64").set_data_from_numpy(np.array([1, 3], dtype=np.int64)),
        InferInput("sex", [2], "BYTES").set_data_from_numpy(np.array(["female", "male"], dtype=np.object_)),
        InferInput("age", [2], "FP64").set_data_from_numpy(np.array([29.0, 40.0])),
    ]
    body, json_size = _get_inference_request(inputs, "", outputs, 0, False, False, 0, None, None)
    return body, {"Inference-Header-Content-Length": str(json_size)}


def json_request() -> bytes:
    inputs = [
        {"name": "pclass", "datatype": "INT64", "shape": [2], "data": [1, 3]},
        {"name": "sex", "datatype": "BYTES", "shape": [2], "data": ["female", "male"]},
        {"name": "age", "datatype": "FP64", "shape": [2], "data": [29.0, 40.0]},
    ]
    return orjson.dumps({"inputs": inputs})


async def test_the_json_path_answers_plain_json_as_before() -> None:
    status, headers, body = await call(app(), "POST", INFER, json_request())
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in headers
    outputs = {o["name"]: o["data"] for o in orjson.loads(body)["outputs"]}
    assert outputs["predictions"] == [1, 0]


async def test_tritonclients_default_request_gets_binary_outputs_equal_to_the_json_answer() -> None:
    a = app()
    body, headers = triton_request()  # no outputs named: tritonclient sets binary_data_output
    status, got, content = await call(a, "POST", INFER, body, headers)
    assert status == 200, content
    assert got["content-type"] == "application/octet-stream"
    n = int(got["inference-header-content-length"])
    result = InferResult.from_response_body(content, header_length=n)
    _, _, plain = await call(a, "POST", INFER, json_request())
    expected = {o["name"]: o for o in orjson.loads(plain)["outputs"]}
    assert result.as_numpy("predictions").tolist() == expected["predictions"]["data"]
    np.testing.assert_array_equal(
        result.as_numpy("probabilities").ravel(), np.array(expected["probabilities"]["data"])
    )
    assert result.get_response()["model_version"] == "1"


async def test_binary_inputs_with_json_outputs_answer_json() -> None:
    body, headers = triton_request([InferRequestedOutput("predictions", binary_data=False)])
    status, got, content = await call(app(), "POST", INFER, body, headers)
    assert status == 200, content
    assert got["content-type"] == "application/json"
    assert orjson.loads(content)["outputs"] == [
        {"name": "predictions", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    ]


async def test_a_bad_binary_body_gets_the_envelope_naming_the_field() -> None:
    body, headers = triton_request()
    status, _, content = await call(app(), "POST", INFER, body[:-3], headers)
    envelope = orjson.loads(content)
    assert (status, envelope["error_code"]) == (422, "INVALID_INPUT")
    assert [d["field"] for d in envelope["details"]] == ["inputs[2](age).parameters.binary_data_size"]
    status, _, content = await call(app(), "POST", INFER, body, {"Inference-Header-Content-Length": "lots"})
    assert (status, orjson.loads(content)["details"][0]["field"]) == (400, "Inference-Header-Content-Length")


async def test_an_unknown_requested_output_is_refused() -> None:
    payload = orjson.loads(json_request())
    payload["outputs"] = [{"name": "explanations"}]
    status, _, content = await call(app(), "POST", INFER, orjson.dumps(payload))
    assert status == 422
    assert orjson.loads(content)["details"][0]["field"] == "outputs[0].name"


async def test_metadata_offers_v1_and_v2_examples_that_infer_accepts() -> None:
    a = app()
    status, _, content = await call(a, "GET", "/v2/models/titanic")
    assert status == 200
    meta = orjson.loads(content)
    examples = meta["parameters"]["examples"]
    assert examples["v1"] == {
        "instances": [
            {"pclass": 1, "sex": "female", "age": 29.0},
            {"pclass": 3, "sex": "male", "age": 40.0},
        ]
    }
    advertised = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert {t["name"]: t["datatype"] for t in examples["v2"]["inputs"]} == advertised
    status, _, content = await call(a, "POST", INFER, orjson.dumps(examples["v2"]))
    assert status == 200, content
    status, _, content = await call(a, "POST", "/v1/models/titanic:predict", orjson.dumps(examples["v1"]))
    assert status == 200, content


async def test_a_model_without_an_input_example_offers_none() -> None:
    _, _, content = await call(app(example=None), "GET", "/v2/models/titanic")
    assert "examples" not in orjson.loads(content)["parameters"]


async def test_server_metadata_lists_the_binary_extension() -> None:
    status, _, content = await call(app(), "GET", "/v2")
    assert (status, orjson.loads(content)["extensions"]) == (200, ["binary_tensor_data"])
