"""The binary tensor extension of Open Inference Protocol v2 REST, as ``tritonclient.http`` speaks it. Pure.

A request with the header ``Inference-Header-Content-Length: N`` carries its JSON inference header
in the body's first N bytes; the rest is every binary input's raw bytes, one after another in the
order of ``inputs``, each input's length in its ``parameters.binary_data_size`` (it then has no
``data``). Fixed-width datatypes are their elements' little-endian bytes in row-major order
(numpy's ``tobytes()``); a ``BYTES`` element is a 4-byte little-endian length and then that many
bytes. ``decode_request`` turns such a body into the same JSON object a client could have sent
with ``data`` lists, so ``codec.decode_v2`` validates both alike.

Outputs go back the same way when the request asks: ``parameters.binary_data_output: true`` makes
every output binary, and ``outputs: [{name, parameters: {binary_data}}]`` picks outputs (in that
order) and decides each one. ``render`` writes the JSON header, each binary output's bytes after
it, and reports N for the response's ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from ferry_common.errors import ErrorCode, FerryError, FieldError

from ferry_predictor.codec import V2_DATATYPES, invalid

HEADER = "Inference-Header-Content-Length"
HEADER_KEY = HEADER.lower().encode()

# Explicitly little-endian, whatever the machine: the extension's byte order.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")
_DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _framing(reason: str, field: str = HEADER) -> FerryError:
    """A body that cannot be split into header and tensors: as malformed as bad JSON (400)."""
    return FerryError(ErrorCode.INVALID_JSON, f"{field} {reason}", [FieldError(field, reason)])


def split(body: bytes, declared: str) -> tuple[dict[str, Any], memoryview]:
    """The JSON inference header and the binary part after it; 400 naming what is wrong."""
    text = declared.strip()
    if not text.isdigit() or not text.isascii():
        raise _framing(
            f"must be a non-negative integer (the JSON header's length in bytes), got {declared!r}"
        )
    length = int(text)
    if length > len(body):
        raise _framing(f"is {length} but the body has only {len(body)} bytes")
    try:
        head = orjson.loads(memoryview(body)[:length])
    except orjson.JSONDecodeError as exc:
        reason = f"the first {length} bytes of the body (the inference header) are not valid JSON: {exc}"
        raise _framing(reason, "body") from None
    if not isinstance(head, dict):
        raise _framing("the inference header must be a JSON object", "body")
    return head, memoryview(body)[length:]


def decode_request(body: bytes, declared: str) -> dict[str, Any]:
    """A binary-extension request as the JSON object with ``data`` lists that ``decode_v2`` reads."""
    head, raw = split(body, declared)
    inputs = head.get("inputs")
    if not isinstance(inputs, list):
        return head  # decode_v2 names the missing inputs
    offset, last_binary = 0, None
    tensors: list[Any] = []
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            tensors.append(tensor)
            continue
        path = _path(i, tensor)
        params = tensor.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise invalid(f"{path}.parameters", "must be an object")
        if not params or "binary_data_size" not in params:
            if "data" not in tensor:
                raise invalid(
                    f"{path}.parameters.binary_data_size",
                    "is required for a tensor without 'data' (its length in bytes after the JSON header)",
                )
            tensors.append(tensor)
            continue
        size_field = f"{path}.parameters.binary_data_size"
        size = params["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid(size_field, f"must be a non-negative integer, got {size!r}")
        if "data" in tensor:
            raise invalid(f"{path}.data", "must be absent when parameters.binary_data_size is given")
        if offset + size > len(raw):
            raise invalid(
                size_field,
                f"is {size} but only {len(raw) - offset} bytes of binary data remain after the "
                f"JSON header and the inputs before it",
            )
        values = tensor_values(tensor.get("datatype"), raw[offset : offset + size], path)
        _check_shape(tensor.get("shape"), len(values), path)
        tensors.append({**tensor, "data": values})
        offset += size
        last_binary = size_field
    if offset != len(raw):
        field = last_binary or HEADER
        raise invalid(
            field,
            f"the inputs' binary_data_size values add up to {offset} bytes, "
            f"but {len(raw)} bytes follow the JSON header",
        )
    return {**head, "inputs": tensors}


def _path(i: int, tensor: dict[str, Any]) -> str:
    """How ``decode_v2`` names a tensor, so the two paths name the same field alike."""
    name = tensor.get("name")
    return f"inputs[{i}]({name})" if isinstance(name, str) else f"inputs[{i}]"


def tensor_values(datatype: Any, raw: bytes | memoryview, path: str) -> list[Any]:
    """A binary tensor's elements as plain Python values (str for BYTES), row-major."""
    if datatype == "BYTES":
        return _bytes_elements(raw, path)
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise invalid(f"{path}.datatype", f"must be one of {sorted(V2_DATATYPES)}, got {datatype!r}")
    if len(raw) % dtype.itemsize:
        raise invalid(
            f"{path}.parameters.binary_data_size",
            f"is {len(raw)}, not a multiple of {dtype.itemsize} (the width of one {datatype} element)",
        )
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _bytes_elements(raw: bytes | memoryview, path: str) -> list[Any]:
    buf = bytes(raw)
    out: list[Any] = []
    offset, end = 0, len(buf)
    while offset < end:
        if offset + 4 > end:
            raise invalid(
                f"{path}.parameters.binary_data_size",
                f"leaves {end - offset} byte(s) after element {len(out)}: each BYTES element "
                "is a 4-byte little-endian length, then that many bytes",
            )
        (n,) = _LENGTH.unpack_from(buf, offset)
        offset += 4
        if offset + n > end:
            raise invalid(
                f"{path}.parameters.binary_data_size",
                f"ends inside element {len(out)}, whose length prefix says {n} bytes",
            )
        try:
            out.append(buf[offset : offset + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise invalid(f"{path}.data[{len(out)}]", "is not UTF-8 text") from None
        offset += n
    return out


def _check_shape(shape: Any, count: int, path: str) -> None:
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise invalid(f"{path}.shape", f"must be an array of non-negative integers, got {shape!r}")
    elements = 1
    for d in shape:
        elements *= d
    if elements != count:
        raise invalid(
            f"{path}.shape", f"is {shape}, which holds {elements} elements, but the binary data has {count}"
        )


@dataclass(frozen=True)
class Requested:
    """Which outputs the response carries, in order, and which of them go as binary."""

    outputs: tuple[tuple[str, bool], ...] | None  # (name, binary); None: every output
    binary_default: bool = False

    def binary(self, name: str) -> bool:
        if self.outputs is None:
            return self.binary_default
        return any(b for n, b in self.outputs if n == name)


def requested(payload: dict[str, Any], available: Sequence[str]) -> Requested | None:
    """What ``parameters.binary_data_output`` and ``outputs`` ask for; None: the plain JSON answer."""
    params, outputs = payload.get("parameters"), payload.get("outputs")
    if params is None and outputs is None:
        return None
    default = False
    if params is not None:
        if not isinstance(params, dict):
            raise invalid("parameters", "must be an object")
        default = _flag(params.get("binary_data_output", False), "parameters.binary_data_output")
    if outputs is None:
        return Requested(None, default) if default else None
    if not isinstance(outputs, list):
        raise invalid("outputs", "must be an array of {name, parameters}")
    chosen: list[tuple[str, bool]] = []
    errors: list[FieldError] = []
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or out.get("name") not in available:
            got = out.get("name") if isinstance(out, dict) else out
            errors.append(FieldError(f"outputs[{i}].name", f"must be one of {list(available)}, got {got!r}"))
            continue
        name, oparams = str(out["name"]), out.get("parameters")
        if oparams is not None and not isinstance(oparams, dict):
            errors.append(FieldError(f"outputs[{i}].parameters", "must be an object"))
            continue
        binary = default
        if oparams and "binary_data" in oparams:
            try:
                binary = _flag(oparams["binary_data"], f"outputs[{i}].parameters.binary_data")
            except FerryError as err:
                errors.extend(err.details)
                continue
        chosen.append((name, binary))
    if errors:
        raise FerryError(ErrorCode.INVALID_INPUT, f"{len(errors)} invalid requested output(s)", errors)
    return Requested(tuple(chosen), default)


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, f"must be a boolean, got {value!r}")
    return value


def render(response: dict[str, Any], req: Requested) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length in bytes."""
    by_name = {o["name"]: o for o in response["outputs"]}
    names = list(by_name) if req.outputs is None else [n for n, _ in req.outputs if n in by_name]
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in names:
        out = by_name[name]
        if not req.binary(name):
            tensors.append(out)
            continue
        blob = tensor_bytes(out["datatype"], out["data"])
        blobs.append(blob)
        meta = {k: v for k, v in out.items() if k != "data"}
        meta["parameters"] = {**out.get("parameters", {}), "binary_data_size": len(blob)}
        tensors.append(meta)
    head = orjson.dumps({**response, "outputs": tensors}, option=_DUMP_OPTS)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def tensor_bytes(datatype: str, data: Any) -> bytes:
    """One tensor's elements in the extension's byte layout."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in np.asarray(data, dtype=object).ravel().tolist():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(data, dtype=DTYPES[datatype]).tobytes()
