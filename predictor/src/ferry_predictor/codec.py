"""KServe v1 and Open Inference Protocol v2 bodies <-> validated batches and predictions. Pure.

v1 ``POST /v1/models/NAME:predict`` accepts
  ``{"instances": [row, ...]}`` or ``{"inputs": [row, ...]}`` (a row is an object or an array in
  signature order), ``{"inputs": {column: [values]}}`` (columnar), and MLflow's own
  ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` / ``{"dataframe_records": [...]}``,
  so a model's ``serving_input_example.json`` is a valid request as it is.
v2 ``POST /v2/models/NAME/infer`` accepts one tensor per column: ``{"inputs": [{"name": "age",
  "datatype": "FP64", "shape": [n], "data": [...]}, ...]}``, or a single ``[n, columns]`` tensor
  (rows in signature order, flat or nested) under any name that is not a column's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from ferry_common.errors import ErrorCode, FerryError, FieldError

from ferry_predictor.schema import FLOAT_TYPES, INTEGER_TYPES, Batch, InputSchema, schemaless

V2_NUMERIC = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)
V2_DATATYPES = V2_NUMERIC | {"BYTES"}
# The datatype the metadata advertises for each MLflow column type (and the examples use).
COLUMN_DATATYPES = {
    "long": "INT64",
    "integer": "INT32",
    "double": "FP64",
    "float": "FP32",
    "string": "BYTES",
    "boolean": "BOOL",
}


@dataclass(frozen=True)
class Prediction:
    labels: list[Any]
    probabilities: npt.NDArray[np.float64] | None = None
    classes: list[Any] | None = None


@dataclass(frozen=True)
class Identity:
    """What every response says about who answered."""

    model_name: str
    model_version: str
    color: str


def invalid(field: str, reason: str) -> FerryError:
    return FerryError(
        ErrorCode.INVALID_INPUT, f"invalid input: {field} {reason}", [FieldError(field, reason)]
    )


def _check_rows(n: int, max_rows: int, field: str) -> None:
    if n == 0:
        raise invalid(field, "must contain at least one row")
    if n > max_rows:
        raise invalid(field, f"has {n} rows; this predictor accepts at most {max_rows} per request")


def _records(schema: InputSchema | None, rows: Sequence[Any], where: str, max_rows: int) -> Batch:
    _check_rows(len(rows), max_rows, where)
    return schema.validate_records(rows, where) if schema else schemaless(rows, where)


def _columnar(schema: InputSchema | None, cols: Mapping[str, Any], where: str, max_rows: int) -> Batch:
    bad = [
        FieldError(f"{where}.{k}", "must be an array of values")
        for k, v in cols.items()
        if not isinstance(v, list)
    ]
    if bad:
        raise FerryError(ErrorCode.INVALID_INPUT, "columnar inputs must be arrays", bad)
    n = max((len(v) for v in cols.values()), default=0)
    _check_rows(n, max_rows, where)
    if schema is None:
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise invalid(where, f"all inputs must have the same length, got {sorted(lengths)}")
        return Batch(n, {k: list(v) for k, v in cols.items()})
    return schema.validate_columns(cols, {k: f"{where}.{k}" for k in [*cols, *schema.names]})


def decode_v1(body: Any, schema: InputSchema | None, max_rows: int) -> Batch:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object with 'instances' or 'inputs'")
    keys = [k for k in ("instances", "inputs", "dataframe_split", "dataframe_records") if k in body]
    if len(keys) != 1:
        reason = "exactly one of 'instances', 'inputs', 'dataframe_split', 'dataframe_records' is required"
        raise invalid("body", reason + (f"; got {keys}" if keys else ""))
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        return _dataframe_split(value, schema, max_rows)
    if key == "inputs" and isinstance(value, dict):
        return _columnar(schema, value, key, max_rows)
    if not isinstance(value, list):
        raise invalid(key, "must be an array of rows")
    return _records(schema, value, key, max_rows)


def _dataframe_split(value: Any, schema: InputSchema | None, max_rows: int) -> Batch:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("columns"), list)
        or not isinstance(value.get("data"), list)
    ):
        raise invalid(
            "dataframe_split", "must be an object with 'columns' (array) and 'data' (array of rows)"
        )
    columns, data = value["columns"], value["data"]
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise invalid(f"dataframe_split.data[{i}]", f"must be an array of {len(columns)} values")
        rows.append(dict(zip(columns, row, strict=True)))
    return _records(schema, rows, "dataframe_split.data", max_rows)


def decode_v2(body: Any, schema: InputSchema | None, max_rows: int) -> Batch:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise invalid("inputs", "is required: an array of tensors {name, shape, datatype, data}")
    matrix = _single_matrix(body["inputs"], schema)
    if matrix is not None:
        rows, where = matrix
        _check_rows(len(rows), max_rows, where)
        return schema.validate_records(rows, where) if schema else schemaless(rows, where)
    errors: list[FieldError] = []
    cols: dict[str, list[Any]] = {}
    paths: dict[str, str] = {}
    for i, tensor in enumerate(body["inputs"]):
        path = f"inputs[{i}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            errors.append(FieldError(path, "must be an object with a string 'name'"))
            continue
        name = tensor["name"]
        path = f"inputs[{i}]({name})"
        datatype, data, shape = tensor.get("datatype"), tensor.get("data"), tensor.get("shape")
        if datatype not in V2_DATATYPES:
            errors.append(
                FieldError(f"{path}.datatype", f"must be one of {sorted(V2_DATATYPES)}, got {datatype!r}")
            )
            continue
        if not isinstance(data, list):
            errors.append(FieldError(f"{path}.data", "must be an array"))
            continue
        if data and isinstance(data[0], list):  # shape [n, 1] sent nested
            data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        if (
            not isinstance(shape, list)
            or not shape
            or shape[0] != len(data)
            or any(d != 1 for d in shape[1:])
        ):
            errors.append(
                FieldError(
                    f"{path}.shape",
                    f"must be [{len(data)}] or [{len(data)}, 1] for one column "
                    f"of {len(data)} values, got {shape!r}",
                )
            )
            continue
        col = schema.by_name.get(name) if schema else None
        if col is not None:
            reason = _datatype_mismatch(col.type, datatype)
            if reason:
                errors.append(FieldError(f"{path}.datatype", reason))
                continue
        cols[name] = data
        paths[name] = f"{path}.data"
    if errors:
        raise FerryError(ErrorCode.INVALID_INPUT, f"{len(errors)} invalid tensor(s) in the input", errors)
    if schema is not None:
        for c in schema.names:
            paths.setdefault(c, f"inputs({c})")
    n = max((len(v) for v in cols.values()), default=0)
    _check_rows(n, max_rows, "inputs")
    if schema is None:
        return _columnar(None, cols, "inputs", max_rows)
    return schema.validate_columns(cols, paths)


def _single_matrix(inputs: list[Any], schema: InputSchema | None) -> tuple[list[Any], str] | None:
    """One ``[n, columns]`` tensor not named after a column (what generic v2 clients send): its rows."""
    if schema is None or len(inputs) != 1 or not isinstance(inputs[0], dict):
        return None
    t = inputs[0]
    shape, data, name = t.get("shape"), t.get("data"), t.get("name")
    ncols = len(schema.columns)
    if (
        name in schema.by_name
        or not isinstance(data, list)
        or not isinstance(shape, list)
        or len(shape) != 2
        or shape[1] != ncols
        or ncols == 1
    ):
        return None
    where = f"inputs[0]({name}).data"
    if data and all(isinstance(r, list) for r in data):
        rows = data
    elif len(data) == shape[0] * ncols:
        rows = [data[i : i + ncols] for i in range(0, len(data), ncols)]
    else:
        raise invalid(where, f"must hold {shape[0]} x {ncols} values for shape {shape}, got {len(data)}")
    if len(rows) != shape[0]:
        raise invalid(where, f"has {len(rows)} rows but the shape says {shape[0]}")
    return rows, where


def _datatype_mismatch(column_type: str, datatype: str) -> str | None:
    if column_type == "string":
        ok = datatype == "BYTES"
    elif column_type in INTEGER_TYPES:
        ok = datatype.startswith(("INT", "UINT"))
    elif column_type in FLOAT_TYPES:
        ok = datatype.startswith(("FP", "INT", "UINT"))
    else:
        ok = datatype == "BOOL"
    return None if ok else f"column type {column_type} cannot be sent as {datatype}"


def encode_v1(pred: Prediction, who: Identity) -> dict[str, Any]:
    out: dict[str, Any] = {"predictions": pred.labels}
    if pred.probabilities is not None:
        out["probabilities"] = pred.probabilities
        out["classes"] = pred.classes
    out.update(model_name=who.model_name, model_version=who.model_version, color=who.color)
    return out


def v2_datatype(values: Sequence[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def encode_v2(pred: Prediction, who: Identity, request_id: str) -> dict[str, Any]:
    n = len(pred.labels)
    outputs: list[dict[str, Any]] = [
        {"name": "predictions", "datatype": v2_datatype(pred.labels), "shape": [n], "data": pred.labels}
    ]
    if pred.probabilities is not None:
        outputs.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": list(pred.probabilities.shape),
                "data": pred.probabilities.ravel(),
                "parameters": {"classes": ",".join(str(c) for c in pred.classes or [])},
            }
        )
    return {
        "model_name": who.model_name,
        "model_version": who.model_version,
        "id": request_id,
        "parameters": {"color": who.color},
        "outputs": outputs,
    }


def v1_from_mlflow_example(example: Mapping[str, Any]) -> dict[str, Any]:
    """MLflow's ``input_example.json`` (pandas ``split`` orient) as a v1 ``instances`` request."""
    if "dataframe_split" in example:
        example = example["dataframe_split"]
    columns, data = example["columns"], example["data"]
    return {"instances": [dict(zip(columns, row, strict=True)) for row in data]}


def v2_from_mlflow_example(example: Mapping[str, Any], schema: InputSchema | None) -> dict[str, Any]:
    """The same example as a v2 ``infer`` request: one tensor per column, typed as the metadata says."""
    if "dataframe_split" in example:
        example = example["dataframe_split"]
    columns, data = example["columns"], example["data"]
    inputs = []
    for j, name in enumerate(columns):
        values = [row[j] for row in data]
        col = schema.by_name.get(name) if schema else None
        datatype = COLUMN_DATATYPES[col.type] if col else v2_datatype([v for v in values if v is not None])
        inputs.append({"name": name, "datatype": datatype, "shape": [len(values)], "data": values})
    return {"inputs": inputs}
