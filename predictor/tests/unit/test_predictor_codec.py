"""KServe v1 / Open Inference Protocol v2 bodies: what is accepted, what is refused and how it reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ferry_common.errors import ErrorCode, FerryError
from ferry_predictor.codec import (
    Identity,
    Prediction,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
    v1_from_mlflow_example,
    v2_from_mlflow_example,
)
from ferry_predictor.schema import from_mlflow

SCHEMA = from_mlflow(
    [
        {"type": "long", "name": "pclass"},
        {"type": "string", "name": "sex"},
        {"type": "double", "name": "age", "required": False},
    ],
    {"pclass": {"enum": [1, 2, 3]}},
)
ROW = {"pclass": 1, "sex": "female", "age": 29.0}
EXPECTED = {"pclass": [1], "sex": ["female"], "age": [29.0]}


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [ROW]},
        {"inputs": [ROW]},
        {"instances": [[1, "female", 29.0]]},
        {"inputs": {"pclass": [1], "sex": ["female"], "age": [29.0]}},
        {"dataframe_split": {"columns": ["pclass", "sex", "age"], "data": [[1, "female", 29.0]]}},
        {"dataframe_records": [ROW]},
    ],
)
def test_v1_accepts_every_documented_layout(body: dict[str, Any]) -> None:
    batch = decode_v1(body, SCHEMA, max_rows=10)
    assert batch.rows == 1 and batch.columns == EXPECTED


def fields(body: Any, decode: Any = decode_v1, max_rows: int = 10) -> dict[str, str]:
    with pytest.raises(FerryError) as exc:
        decode(body, SCHEMA, max_rows)
    assert exc.value.code is ErrorCode.INVALID_INPUT
    return {d.field: d.reason for d in exc.value.details}


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ([ROW], "body", "JSON object"),
        ({}, "body", "exactly one of"),
        ({"instances": [ROW], "inputs": [ROW]}, "body", "got ['instances', 'inputs']"),
        ({"instances": ROW}, "instances", "array of rows"),
        ({"instances": []}, "instances", "at least one row"),
        ({"instances": [ROW] * 11}, "instances", "at most 10"),
        ({"inputs": {"pclass": 1}}, "inputs.pclass", "array of values"),
        ({"dataframe_split": {"columns": ["pclass"]}}, "dataframe_split", "'data'"),
        (
            {"dataframe_split": {"columns": ["pclass"], "data": [[1, 2]]}},
            "dataframe_split.data[0]",
            "1 values",
        ),
        ({"instances": [{**ROW, "pclass": 5}]}, "instances[0].pclass", "must be one of"),
    ],
)
def test_v1_refusals_name_the_field(body: Any, field: str, reason_part: str) -> None:
    assert reason_part in fields(body)[field]


def tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def test_v2_reads_one_tensor_per_column_flat_or_nested() -> None:
    body = {
        "inputs": [
            tensor("pclass", "INT64", [1]),
            tensor("sex", "BYTES", [["female"]], [1, 1]),
            tensor("age", "FP32", [29.0]),
        ]
    }
    assert decode_v2(body, SCHEMA, 10).columns == EXPECTED
    without_optional = {"inputs": body["inputs"][:2]}
    assert decode_v2(without_optional, SCHEMA, 10).columns["age"] == [None]


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ({}, "inputs", "array of tensors"),
        ({"inputs": [{"datatype": "INT64"}]}, "inputs[0]", "string 'name'"),
        ({"inputs": [tensor("pclass", "INT128", [1])]}, "inputs[0](pclass).datatype", "must be one of"),
        ({"inputs": [tensor("pclass", "INT64", [1], [2])]}, "inputs[0](pclass).shape", "must be [1]"),
        ({"inputs": [tensor("sex", "INT64", [1])]}, "inputs[0](sex).datatype", "cannot be sent as INT64"),
        (
            {"inputs": [{"name": "pclass", "datatype": "INT64", "shape": [1], "data": 1}]},
            "inputs[0](pclass).data",
            "must be an array",
        ),
        (
            {"inputs": [tensor("pclass", "INT64", [7]), tensor("sex", "BYTES", ["x"])]},
            "inputs[0](pclass).data[0]",
            "must be one of",
        ),
        ({"inputs": [tensor("pclass", "INT64", [1])]}, "inputs(sex)", "required input is missing"),
    ],
)
def test_v2_refusals_name_the_tensor(body: Any, field: str, reason_part: str) -> None:
    assert reason_part in fields(body, decode_v2)[field]


WHO = Identity("titanic", "3", "blue")
PRED = Prediction([1, 0], np.array([[0.25, 0.75], [0.9, 0.1]]), [0, 1])


def test_v1_response_carries_predictions_probabilities_and_identity() -> None:
    out = encode_v1(PRED, WHO)
    assert out["predictions"] == [1, 0]
    assert out["classes"] == [0, 1]
    assert np.asarray(out["probabilities"]).tolist() == [[0.25, 0.75], [0.9, 0.1]]
    assert (out["model_name"], out["model_version"], out["color"]) == ("titanic", "3", "blue")


def test_v2_response_is_an_inference_response() -> None:
    out = encode_v2(PRED, WHO, "req-1")
    assert (out["model_name"], out["model_version"], out["id"]) == ("titanic", "3", "req-1")
    assert out["parameters"] == {"color": "blue"}
    preds, proba = out["outputs"]
    assert preds == {"name": "predictions", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    assert proba["shape"] == [2, 2] and np.asarray(proba["data"]).tolist() == [0.25, 0.75, 0.9, 0.1]
    labels_only = encode_v2(Prediction(["yes", "no"]), WHO, "r")
    assert labels_only["outputs"] == [
        {"name": "predictions", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}
    ]


def test_mlflow_input_example_becomes_a_v1_request() -> None:
    example = {"columns": ["pclass", "sex", "age"], "data": [[1, "female", 29.0]]}
    request = v1_from_mlflow_example(example)
    assert request == {"instances": [ROW]}
    assert decode_v1(request, SCHEMA, 10).columns == EXPECTED
    assert v1_from_mlflow_example({"dataframe_split": example}) == request


def test_v2_reads_a_single_row_major_matrix_in_signature_order() -> None:
    flat = {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "BYTES",
                "shape": [2, 3],
                "data": [1, "female", 29.0, 3, "male", None],
            }
        ]
    }
    batch = decode_v2(flat, SCHEMA, 10)
    assert batch.columns == {"pclass": [1, 3], "sex": ["female", "male"], "age": [29.0, None]}
    nested = {"inputs": [{**flat["inputs"][0], "data": [[1, "female", 29.0], [3, "male", None]]}]}
    assert decode_v2(nested, SCHEMA, 10).columns == batch.columns
    bad = {"inputs": [{**flat["inputs"][0], "data": [1, "female", 29.0, 7, "male", None]}]}
    assert "must be one of [1, 2, 3]" in fields(bad, decode_v2)["inputs[0](input-0).data[1].pclass"]
    short = {"inputs": [{**flat["inputs"][0], "data": [1, "female"]}]}
    assert "2 x 3 values" in fields(short, decode_v2)["inputs[0](input-0).data"]


def test_mlflow_input_example_becomes_a_v2_request_typed_as_the_metadata_says() -> None:
    example = {"columns": ["pclass", "sex", "age"], "data": [[1, "female", 29.0], [3, "male", None]]}
    request = v2_from_mlflow_example(example, SCHEMA)
    assert request == {
        "inputs": [
            {"name": "pclass", "datatype": "INT64", "shape": [2], "data": [1, 3]},
            {"name": "sex", "datatype": "BYTES", "shape": [2], "data": ["female", "male"]},
            {"name": "age", "datatype": "FP64", "shape": [2], "data": [29.0, None]},
        ]
    }
    assert decode_v2(request, SCHEMA, max_rows=10).columns == {
        "pclass": [1, 3],
        "sex": ["female", "male"],
        "age": [29.0, None],
    }
    # Without a signature the datatypes follow the values.
    untyped = v2_from_mlflow_example({"dataframe_split": example}, None)
    assert [t["datatype"] for t in untyped["inputs"]] == ["INT64", "BYTES", "FP64"]
