"""The v2 binary tensor extension: bodies built by tritonclient's and kserve's own code decode to what
the JSON path reads, binary outputs read back with their readers, and every malformed body is
refused naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from ferry_common.errors import FerryError
from ferry_predictor import binary
from ferry_predictor.codec import Identity, Prediction, decode_v2, encode_v2
from ferry_predictor.schema import from_mlflow
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kserve import InferInput as KInferInput
from kserve import InferRequest, InferResponse
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import serialize_byte_tensor

SCHEMA = from_mlflow(
    [
        {"type": "long", "name": "pclass"},
        {"type": "string", "name": "sex"},
        {"type": "double", "name": "age", "required": False},
    ],
    {},
)
WHO = Identity("titanic", "1", "blue")
NUMERIC = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def triton_body(
    tensors: list[tuple[str, np.ndarray[Any, Any], str]],
    outputs: list[InferRequestedOutput] | None = None,
    binary_data: bool = True,
) -> tuple[bytes, str | None]:
    """The exact body and Inference-Header-Content-Length tritonclient.http would send."""
    inputs = []
    for name, array, datatype in tensors:
        i = InferInput(name, list(array.shape), datatype)
        i.set_data_from_numpy(array, binary_data=binary_data)
        inputs.append(i)
    body, json_size = _get_inference_request(inputs, "", outputs, 0, False, False, 0, None, None)
    return body, None if json_size is None else str(json_size)


def titanic_tensors(n: int = 2) -> list[tuple[str, np.ndarray[Any, Any], str]]:
    return [
        ("pclass", np.array([1, 3][:n], dtype=np.int64), "INT64"),
        ("sex", np.array(["female", "male"][:n], dtype=np.object_), "BYTES"),
        ("age", np.array([29.0, 40.5][:n], dtype=np.float64), "FP64"),
    ]


def refusal(body: bytes, declared: str) -> tuple[int, str, str]:
    with pytest.raises(FerryError) as info:
        binary.decode_request(body, declared)
    err = info.value
    assert len(err.details) == 1, err.details
    return err.status, err.details[0].field, err.details[0].reason


# -- requests --------------------------------------------------------------------------------------


def test_a_tritonclient_request_decodes_to_what_the_json_path_reads() -> None:
    body, declared = triton_body(titanic_tensors())
    assert declared is not None
    json_body, _ = triton_body(titanic_tensors(), binary_data=False)
    from_binary = decode_v2(binary.decode_request(body, declared), SCHEMA, 10)
    from_json = decode_v2(orjson.loads(json_body), SCHEMA, 10)
    assert from_binary == from_json
    assert from_binary.columns == {"pclass": [1, 3], "sex": ["female", "male"], "age": [29.0, 40.5]}


def test_a_kserve_request_decodes_to_what_the_json_path_reads() -> None:
    inputs = []
    for name, array, datatype in titanic_tensors():
        i = KInferInput(name, list(array.shape), datatype)
        i.set_data_from_numpy(array, binary_data=True)
        inputs.append(i)
    body, json_length = InferRequest("titanic", inputs).to_rest()
    assert isinstance(body, bytes) and json_length
    batch = decode_v2(binary.decode_request(body, str(json_length)), SCHEMA, 10)
    assert batch.columns == {"pclass": [1, 3], "sex": ["female", "male"], "age": [29.0, 40.5]}


def test_binary_and_json_tensors_mix_in_one_request() -> None:
    pclass = InferInput("pclass", [1], "INT64").set_data_from_numpy(np.array([2], dtype=np.int64))
    sex = InferInput("sex", [1], "BYTES").set_data_from_numpy(
        np.array(["male"], dtype=np.object_), binary_data=False
    )
    age = InferInput("age", [1, 1], "FP32").set_data_from_numpy(np.array([[3.5]], dtype=np.float32))
    body, json_size = _get_inference_request([pclass, sex, age], "", None, 0, False, False, 0, None, None)
    batch = decode_v2(binary.decode_request(body, str(json_size)), SCHEMA, 10)
    assert batch.columns == {"pclass": [2], "sex": ["male"], "age": [3.5]}


@given(
    st.sampled_from(sorted(NUMERIC)).flatmap(
        lambda dt: st.tuples(
            st.just(dt),
            hnp.arrays(NUMERIC[dt], hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)),
        )
    )
)
def test_every_fixed_width_datatype_round_trips_through_tritonclient(case: tuple[str, Any]) -> None:
    datatype, array = case
    body, declared = triton_body([("x", array, datatype)])
    assert declared is not None
    (tensor,) = binary.decode_request(body, declared)["inputs"]
    assert tensor["shape"] == list(array.shape)
    np.testing.assert_array_equal(np.array(tensor["data"], dtype=array.dtype), array.ravel())


@given(st.lists(st.text(), max_size=8))
def test_bytes_tensors_round_trip_through_serialize_byte_tensor(texts: list[str]) -> None:
    array = np.array(texts, dtype=np.object_)
    raw = serialize_byte_tensor(array)
    blob = raw.item() if raw.size else b""
    assert binary.tensor_values("BYTES", blob, "inputs[0]") == texts
    assert binary.tensor_bytes("BYTES", texts) == blob


def test_a_header_without_binary_data_is_plain_json() -> None:
    body = orjson.dumps({"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": [1.0]}]})
    assert binary.decode_request(body, str(len(body)))["inputs"][0]["data"] == [1.0]


# -- refusals --------------------------------------------------------------------------------------


def _one_input(params: dict[str, Any], datatype: str = "FP64", shape: list[int] | None = None) -> bytes:
    tensor = {"name": "age", "datatype": datatype, "shape": shape or [1], "parameters": params}
    return orjson.dumps({"inputs": [tensor]})


def framed(
    tail: bytes, params: dict[str, Any], datatype: str = "FP64", shape: list[int] | None = None
) -> tuple[bytes, str]:
    head = _one_input(params, datatype, shape)
    return head + tail, str(len(head))


HEAD = _one_input({"binary_data_size": 8})
H = binary.HEADER
SIZE = "inputs[0](age).parameters.binary_data_size"


@pytest.mark.parametrize(
    ("request_", "status", "field", "reason_part"),
    [
        ((HEAD + bytes(8), "x"), 400, H, "must be a non-negative integer"),
        ((HEAD + bytes(8), "-3"), 400, H, "must be a non-negative integer"),
        ((HEAD + bytes(8), "1.5"), 400, H, "must be a non-negative integer"),
        ((HEAD + bytes(8), str(len(HEAD) + 9)), 400, H, f"the body has only {len(HEAD) + 8} bytes"),
        ((HEAD + bytes(8), str(len(HEAD) - 1)), 400, "body", "not valid JSON"),
        ((HEAD + bytes(8), "0"), 400, "body", "not valid JSON"),
        ((b"[1]" + bytes(8), "3"), 400, "body", "must be a JSON object"),
        (framed(bytes(8), {}), 422, SIZE, "is required"),
        (framed(bytes(8), {"size": 8}), 422, SIZE, "is required"),
        (framed(bytes(4), {"binary_data_size": 8}), 422, SIZE, "only 4 bytes of binary data remain"),
        (framed(bytes(12), {"binary_data_size": 8}), 422, SIZE, "add up to 8 bytes, but 12 bytes follow"),
        (framed(bytes(6), {"binary_data_size": 6}), 422, SIZE, "not a multiple of 8"),
        (
            framed(bytes(16), {"binary_data_size": 16}),
            422,
            "inputs[0](age).shape",
            "holds 1 elements, but the binary data has 2",
        ),
        (framed(bytes(8), {"binary_data_size": 8}, shape=[-1]), 422, "inputs[0](age).shape", "non-negative"),
        (framed(bytes(8), {"binary_data_size": 8}, "FP8"), 422, "inputs[0](age).datatype", "must be one of"),
        (framed(bytes(8), {"binary_data_size": 8}, "BF16"), 422, "inputs[0](age).datatype", "must be one of"),
        (framed(bytes(8), {"binary_data_size": "8"}), 422, SIZE, "must be a non-negative integer, got '8'"),
        (framed(b"", {"binary_data_size": -1}), 422, SIZE, "must be a non-negative integer"),
        (framed(b"", {"binary_data_size": True}), 422, SIZE, "must be a non-negative integer"),
        ((orjson.dumps({"inputs": []}) + b"x", "13"), 422, H, "add up to 0 bytes, but 1 bytes follow"),
    ],
)
def test_a_malformed_binary_body_is_refused_naming_the_field(
    request_: tuple[bytes, str], status: int, field: str, reason_part: str
) -> None:
    got_status, got_field, reason = refusal(*request_)
    assert (got_status, got_field) == (status, field), reason
    assert reason_part in reason


def test_a_tensor_with_data_and_a_binary_size_is_refused() -> None:
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "age",
                    "datatype": "FP64",
                    "shape": [1],
                    "data": [1.0],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    assert refusal(head + bytes(8), str(len(head)))[:2] == (422, "inputs[0](age).data")


@pytest.mark.parametrize(
    ("blob", "reason_part"),
    [
        (b"\x05\x00\x00\x00abc", "ends inside element 0"),
        (b"\x01\x00\x00\x00a\x02\x00", "leaves 2 byte(s) after element 1"),
    ],
)
def test_a_bytes_tensor_with_broken_length_prefixes_is_refused(blob: bytes, reason_part: str) -> None:
    head = _one_input({"binary_data_size": len(blob)}, datatype="BYTES")
    status, field, reason = refusal(head + blob, str(len(head)))
    assert (status, field) == (422, SIZE)
    assert reason_part in reason


def test_a_bytes_element_that_is_not_utf8_is_refused() -> None:
    blob = b"\x01\x00\x00\x00\xff"
    head = _one_input({"binary_data_size": len(blob)}, datatype="BYTES")
    assert refusal(head + blob, str(len(head)))[:2] == (422, "inputs[0](age).data[0]")


@given(
    st.sampled_from(["FP64", "INT32", "BOOL", "BYTES", "FP8", None]),
    st.one_of(st.integers(-2, 80), st.text(max_size=3)),
    st.lists(st.integers(-1, 9), max_size=3),
    st.binary(max_size=64),
    st.one_of(st.none(), st.text(max_size=8)),
)
def test_no_body_crashes_the_decoder(
    datatype: Any, size: Any, shape: list[int], tail: bytes, declared: str | None
) -> None:
    head = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}
            ]
        }
    )
    try:
        payload = binary.decode_request(head + tail, str(len(head)) if declared is None else declared)
    except FerryError as err:
        assert err.status in (400, 422) and err.details
    else:
        try:
            decode_v2(payload, None, 100)
        except FerryError as err:
            assert err.status == 422


# -- outputs ---------------------------------------------------------------------------------------


PRED = Prediction([1, 0], np.array([[0.25, 0.75], [0.875, 0.125]]), [0, 1])
RESPONSE = encode_v2(PRED, WHO, "rid")
AVAILABLE = ("predictions", "probabilities")


def test_without_output_parameters_the_answer_stays_plain_json() -> None:
    assert binary.requested({"inputs": []}, AVAILABLE) is None
    assert binary.requested({"inputs": [], "parameters": {"binary_data_output": False}}, AVAILABLE) is None


def test_binary_data_output_makes_every_output_binary_for_tritonclient() -> None:
    wanted = binary.requested({"parameters": {"binary_data_output": True}}, AVAILABLE)
    assert wanted is not None
    body, n = binary.render(RESPONSE, wanted)
    assert n is not None
    head = orjson.loads(body[:n])
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [16, 32]
    assert all("data" not in o for o in head["outputs"])
    result = InferResult.from_response_body(body, header_length=n)
    assert result.as_numpy("predictions").tolist() == [1, 0]
    np.testing.assert_array_equal(result.as_numpy("probabilities"), PRED.probabilities)
    assert result.get_output("probabilities")["parameters"]["classes"] == "0,1"


def test_kserve_reads_binary_outputs() -> None:
    wanted = binary.requested({"parameters": {"binary_data_output": True}}, AVAILABLE)
    assert wanted is not None
    body, n = binary.render(RESPONSE, wanted)
    assert n is not None
    response = InferResponse.from_bytes(body, n)
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    assert outputs["predictions"].tolist() == [1, 0]
    np.testing.assert_array_equal(outputs["probabilities"], PRED.probabilities)


def test_requested_outputs_pick_which_and_how() -> None:
    outputs = [
        {"name": "probabilities", "parameters": {"binary_data": True}},
        {"name": "predictions", "parameters": {"binary_data": False}},
    ]
    wanted = binary.requested({"outputs": outputs}, AVAILABLE)
    assert wanted is not None
    body, n = binary.render(RESPONSE, wanted)
    assert n is not None
    head = orjson.loads(body[:n])
    assert [o["name"] for o in head["outputs"]] == ["probabilities", "predictions"]
    assert head["outputs"][1]["data"] == [1, 0]
    result = InferResult.from_response_body(body, header_length=n)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), PRED.probabilities)


def test_one_output_requested_as_json_is_that_output_alone() -> None:
    wanted = binary.requested({"outputs": [{"name": "predictions"}]}, AVAILABLE)
    assert wanted is not None
    body, n = binary.render(RESPONSE, wanted)
    assert n is None
    assert [o["name"] for o in orjson.loads(body)["outputs"]] == ["predictions"]


def test_a_per_output_flag_overrides_binary_data_output() -> None:
    payload = {
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "predictions", "parameters": {"binary_data": False}}, {"name": "probabilities"}],
    }
    wanted = binary.requested(payload, AVAILABLE)
    assert wanted is not None and wanted.outputs == (("predictions", False), ("probabilities", True))


def test_tritonclient_requested_outputs_ask_for_binary() -> None:
    body_json, _ = triton_body(
        titanic_tensors(), outputs=[InferRequestedOutput("predictions")], binary_data=False
    )
    payload = orjson.loads(body_json)
    wanted = binary.requested(payload, AVAILABLE)
    assert wanted is not None and wanted.outputs == (("predictions", True),)


def test_a_string_output_goes_as_length_prefixed_bytes() -> None:
    response = encode_v2(Prediction(["yes", "no"]), WHO, "rid")
    wanted = binary.requested({"parameters": {"binary_data_output": True}}, ("predictions",))
    assert wanted is not None
    body, n = binary.render(response, wanted)
    assert InferResult.from_response_body(body, header_length=n).as_numpy("predictions").tolist() == [
        b"yes",
        b"no",
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"outputs": [{"name": "nope"}]}, "outputs[0].name"),
        ({"outputs": ["predictions"]}, "outputs[0].name"),
        ({"outputs": {"name": "predictions"}}, "outputs"),
        (
            {"outputs": [{"name": "predictions", "parameters": {"binary_data": "yes"}}]},
            "outputs[0].parameters.binary_data",
        ),
        ({"outputs": [{"name": "predictions", "parameters": []}]}, "outputs[0].parameters"),
        ({"parameters": {"binary_data_output": 1}}, "parameters.binary_data_output"),
        ({"parameters": "binary"}, "parameters"),
    ],
)
def test_bad_output_requests_are_refused_naming_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(FerryError) as info:
        binary.requested(payload, AVAILABLE)
    assert info.value.status == 422
    assert [d.field for d in info.value.details] == [field]


def test_a_nan_sent_in_binary_is_refused_as_not_finite() -> None:
    tensors = titanic_tensors(1)
    tensors[2] = ("age", np.array([np.nan]), "FP64")
    body, declared = triton_body(tensors)
    assert declared is not None
    with pytest.raises(FerryError) as info:
        decode_v2(binary.decode_request(body, declared), SCHEMA, 10)
    assert info.value.status == 422
    assert [(d.field, d.reason) for d in info.value.details] == [
        ("inputs[2](age).data[0]", "must be a finite number, got nan")
    ]


@given(
    st.sampled_from(sorted(NUMERIC)).flatmap(
        lambda dt: st.tuples(
            st.just(dt),
            hnp.arrays(NUMERIC[dt], hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)),
        )
    )
)
def test_every_fixed_width_output_reads_back_in_tritonclient(case: tuple[str, Any]) -> None:
    datatype, array = case
    out = {"name": "x", "datatype": datatype, "shape": list(array.shape), "data": array.ravel().tolist()}
    body, n = binary.render({"outputs": [out]}, binary.Requested(None, True))
    assert n is not None
    got = InferResult.from_response_body(body, header_length=n).as_numpy("x")
    np.testing.assert_array_equal(got, array)
    assert got.dtype == array.dtype
