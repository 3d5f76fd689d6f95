"""The gateway's OpenAPI document, a pure function of the deployed models' v2 metadata.

The gateway's own routes are written out by hand (the API is small and must say exactly what it
does). Each model with metadata (the serving colour's ``GET /v2/models/NAME``) adds its own
``:predict`` and ``/infer`` operations whose bodies follow the model's signature, with the
model's input example (``parameters.examples``) as the example, so Swagger UI shows a body that
model accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry_common.errors import ErrorCode

from ferry_gateway.upstream.routing import MODEL_NAME

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error_code", "message", "details", "request_id", "timestamp"],
    "properties": {
        "error_code": {"type": "string", "enum": [c.value for c in ErrorCode]},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "request_id": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
    },
}


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_MODEL_ERRORS = {
    "400": _err("Body is not JSON"),
    "401": _err("No or bad credentials; details name the reason"),
    "403": _err("Missing scope or model not allowed"),
    "404": _err("Unknown model"),
    "413": _err("Body too large"),
    "429": _err("Rate limit or daily quota exceeded (see Retry-After)"),
    "502": _err("Predictor unreachable"),
    "503": _err("Predictor failing (circuit open) or limiter unavailable in fail-closed mode"),
    "504": _err("Predictor too slow"),
}

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
}
_PREVIEW = {
    "name": "X-Ferry-Preview",
    "in": "header",
    "required": False,
    "description": "true: call the preview colour (needs the preview scope)",
    "schema": {"type": "string", "enum": ["true", "false"]},
}
_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_PASSTHROUGH = {
    "description": "The predictor's answer, passed through",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


_READY = {
    "description": "Ready: the active colour (or the preview, with X-Ferry-Preview) can serve",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["name", "ready"],
                "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
            }
        }
    },
}
_NOT_READY = {
    "description": "Not ready (KServe's answer: the same body, ready false)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
# Metadata and readiness: the same credential checks as predictions, never counted against limits.
_LOOKUP_ERRORS = {k: v for k, v in _MODEL_ERRORS.items() if k in ("401", "403", "404", "502", "503", "504")}
_OPEN = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}


def _get(summary: str, op_id: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "operationId": op_id, "responses": responses, **extra}}


def _kserve_paths() -> dict[str, Any]:
    """KServe's health, server metadata, model metadata and readiness routes (v1 and v2)."""
    open_: dict[str, Any] = {"security": []}
    model = [_NAME, _PREVIEW]
    versioned = [_NAME, _VERSION, _PREVIEW]
    return {
        "/": _get("Server liveness (KServe)", "root", {"200": _OPEN}, **open_),
        "/livez": _get("Liveness", "livez", {"200": {"description": "alive"}}, **open_),
        "/v2": _get("Server metadata (v2)", "serverMetadataV2", {"200": _OPEN}, **open_),
        "/v2/health/live": _get("Server live (v2)", "serverLiveV2", {"200": _OPEN}, **open_),
        "/v2/health/ready": _get(
            "Server ready (v2): the gateway's readiness",
            "serverReadyV2",
            {"200": _OPEN, "503": _err("not ready")},
            **open_,
        ),
        "/v1/models/{name}": _get(
            "Model readiness (v1)",
            "modelReadyV1",
            {"200": _READY, **_LOOKUP_ERRORS, "503": _NOT_READY},
            parameters=model,
        ),
        "/v2/models/{name}": _get(
            "Model metadata (v2), from the serving colour's predictor",
            "modelMetadataV2",
            {"200": _PASSTHROUGH, **_LOOKUP_ERRORS},
            parameters=model,
        ),
        "/v2/models/{name}/ready": _get(
            "Model readiness (v2)",
            "modelReadyV2",
            {"200": _READY, **_LOOKUP_ERRORS, "503": _NOT_READY},
            parameters=model,
        ),
        "/v2/models/{name}/versions/{version}": _get(
            "Metadata of one version (v2), from the colour serving it",
            "modelVersionMetadataV2",
            {"200": _PASSTHROUGH, **_LOOKUP_ERRORS},
            parameters=versioned,
        ),
        "/v2/models/{name}/versions/{version}/ready": _get(
            "Readiness of one version (v2)",
            "modelVersionReadyV2",
            {"200": _READY, **_LOOKUP_ERRORS, "503": _NOT_READY},
            parameters=versioned,
        ),
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {
                "summary": "Open Inference Protocol (v2) infer on one version",
                "operationId": "inferVersionV2",
                "parameters": versioned,
                "requestBody": _BODY,
                "responses": {"200": _PASSTHROUGH, **_MODEL_ERRORS},
            }
        },
    }


def spec() -> dict[str, Any]:
    """The document with no model described (no metadata yet, or no models at all)."""
    return build({})


def build(models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The whole document: the gateway's routes plus, per model (name -> its v2 metadata), its
    own predict and infer operations. Metadata that does not describe inputs is left out."""
    doc = _base()
    for name in sorted(models):
        sig = signature(models[name])
        if sig is not None and MODEL_NAME.fullmatch(name):
            _add_model(doc, name, sig)
    return doc


def _base() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Ferry gateway",
            "version": "v1",
            "description": "Authenticated, rate-limited access to models served by Ferry (KServe v1 and v2).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": {"Error": _ENVELOPE},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/models/{name}:predict": {
                "post": {
                    "summary": "KServe v1 predict",
                    "operationId": "predictV1",
                    "parameters": [_NAME, _PREVIEW],
                    "requestBody": _BODY,
                    "responses": {"200": _PASSTHROUGH, **_MODEL_ERRORS},
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "Open Inference Protocol (v2) infer",
                    "operationId": "inferV2",
                    "parameters": [_NAME, _PREVIEW],
                    "requestBody": _BODY,
                    "responses": {"200": _PASSTHROUGH, **_MODEL_ERRORS},
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "Models the caller may use",
                    "operationId": "listModels",
                    "responses": {
                        "200": {
                            "description": "Models",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": _err("No or bad credentials"),
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "summary": "The caller's limits and what is left of them",
                    "operationId": "usage",
                    "parameters": [
                        {
                            "name": "consumer",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "a declared consumer's usage instead (needs the admin scope)",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Usage",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": _err("No or bad credentials"),
                        "403": _err("Another consumer's usage without the admin scope"),
                        "404": _err("No such declared consumer"),
                        "422": _err("More than one consumer named"),
                    },
                }
            },
            **_kserve_paths(),
            "/healthz": {
                "get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": _err("not ready")},
                }
            },
        },
    }


# ---- one model, from its v2 metadata -----------------------------------------------------------

# Open Inference Protocol tensor datatypes as JSON values (BYTES: strings, as the JSON form sends them).
_INTS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
DATATYPES = ("BOOL", *_INTS, "FP16", "FP32", "FP64", "BF16", "BYTES")


def value_schema(datatype: str) -> dict[str, Any]:
    """The JSON schema of one element of a tensor of this datatype (unknown ones: any value)."""
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype in ("INT64", "UINT64"):
        # no bounds: a browser's numbers cannot hold them (Swagger UI would show 9223372036854776000)
        return {"type": "integer", "format": "int64", **({"minimum": 0} if datatype == "UINT64" else {})}
    if datatype in _INTS:
        low, high = _INTS[datatype]
        return {"type": "integer", "minimum": low, "maximum": high}
    if datatype in ("FP16", "FP32", "FP64", "BF16"):
        return {"type": "number"}
    if datatype == "BYTES":
        return {"type": "string"}
    return {}


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    required: bool


@dataclass(frozen=True)
class Signature:
    version: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    examples: Mapping[str, Any]  # "v1" / "v2" -> a request body that model accepts


def _tensors(items: Any) -> tuple[Tensor, ...] | None:
    if not isinstance(items, list):
        return None
    out = []
    for t in items:
        if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
            return None
        shape = t.get("shape")
        params = t.get("parameters")
        required = params.get("required", True) if isinstance(params, Mapping) else True
        out.append(
            Tensor(
                name=t["name"],
                datatype=str(t.get("datatype", "BYTES")),
                shape=tuple(d for d in shape if isinstance(d, int) and -1 <= d < 2**31)
                if isinstance(shape, list)
                else (-1,),
                required=required is not False,
            )
        )
    return tuple(out)


def signature(meta: Mapping[str, Any]) -> Signature | None:
    """What a predictor's ``GET /v2/models/NAME`` says of its model; None when it says nothing
    usable (no ``inputs`` list: not a Ferry predictor, or a broken answer)."""
    inputs = _tensors(meta.get("inputs"))
    if inputs is None:
        return None
    outputs = _tensors(meta.get("outputs")) or ()
    versions = meta.get("versions")
    version = str(versions[-1]) if isinstance(versions, list) and versions else None
    params = meta.get("parameters")
    examples = params.get("examples") if isinstance(params, Mapping) else None
    if not isinstance(examples, Mapping):
        examples = {}
    return Signature(version, inputs, outputs, {k: v for k, v in examples.items() if isinstance(v, Mapping)})


def _row(sig: Signature) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": "object",
        "description": "One instance: a value per input column",
        "properties": {
            t.name: {**value_schema(t.datatype), "nullable": True}
            if not t.required
            else value_schema(t.datatype)
            for t in sig.inputs
        },
    }
    required = [t.name for t in sig.inputs if t.required]
    if required:
        row["required"] = required
    return row


def _v1_request(row_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "minItems": 1, "items": {"$ref": row_ref}}},
    }


def _v1_response(sig: Signature) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for t in sig.outputs:
        items: dict[str, Any] = value_schema(t.datatype)
        if len(t.shape) > 1:
            items = {"type": "array", "items": items}
        props[t.name] = {"type": "array", "items": items}
    return {"type": "object", "properties": props}


def _tensor_schema(t: Tensor) -> dict[str, Any]:
    need = "required" if t.required else "optional"
    element = value_schema(t.datatype)
    if not t.required:
        element = {**element, "nullable": True}
    props: dict[str, Any] = {
        "name": {"type": "string", "enum": [t.name]},
        "datatype": {"type": "string", "enum": [t.datatype]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": {"type": "object"},
        "data": {"type": "array", "items": element},
    }
    return {
        "type": "object",
        "title": t.name,
        "description": f"{t.name}: {t.datatype}, shape {list(t.shape)}, {need}",
        "required": ["name", "datatype", "shape", "data"],
        "properties": props,
    }


def _v2_request(sig: Signature, name: str) -> dict[str, Any]:
    required = [t.name for t in sig.inputs if t.required]
    optional = [t.name for t in sig.inputs if not t.required]
    desc = f"One tensor per input column. Required: {', '.join(required) or 'none'}"
    if optional:
        desc += f"; optional: {', '.join(optional)}"
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "description": desc,
                "minItems": len(required) or 1,
                "maxItems": max(len(sig.inputs), 1),
                "items": {
                    "oneOf": [{"$ref": f"#/components/schemas/{name}.v2.input.{t.name}"} for t in sig.inputs]
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": [t.name for t in sig.outputs]},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    }


def _v2_response(sig: Signature) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {
                "type": "array",
                "items": {"oneOf": [_tensor_schema(t) for t in sig.outputs]}
                if sig.outputs
                else {"type": "object"},
            },
        },
    }


def _content(ref: str, example: Any | None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": ref}}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _add_model(doc: dict[str, Any], name: str, sig: Signature) -> None:
    schemas = doc["components"]["schemas"]
    ref = "#/components/schemas/"
    row = f"{name}.v1.instance"
    schemas[row] = _row(sig)
    schemas[f"{name}.v1.request"] = _v1_request(ref + row)
    schemas[f"{name}.v1.response"] = _v1_response(sig)
    for t in sig.inputs:
        schemas[f"{name}.v2.input.{t.name}"] = _tensor_schema(t)
    schemas[f"{name}.v2.request"] = _v2_request(sig, name)
    schemas[f"{name}.v2.response"] = _v2_response(sig)
    version = f"version {sig.version}" if sig.version else "version unknown"
    doc.setdefault("tags", []).append(
        {"name": name, "description": f"Model {name}, serving {version}: bodies follow its signature"}
    )
    errors = {
        **_MODEL_ERRORS,
        "422": _err("Input does not match the model's signature; details name each field"),
    }
    for protocol, path, op_id, summary in (
        ("v1", f"/v1/models/{name}:predict", f"predictV1_{name}", "KServe v1 predict"),
        ("v2", f"/v2/models/{name}/infer", f"inferV2_{name}", "Open Inference Protocol (v2) infer"),
    ):
        doc["paths"][path] = {
            "post": {
                "tags": [name],
                "summary": f"{name} ({version}): {summary}",
                "operationId": op_id,
                "x-ferry-model-version": sig.version,
                "parameters": [_PREVIEW],
                "requestBody": {
                    "required": True,
                    "content": _content(f"{ref}{name}.{protocol}.request", sig.examples.get(protocol)),
                },
                "responses": {
                    "200": {
                        "description": "The model's answer",
                        "content": _content(f"{ref}{name}.{protocol}.response", None),
                    },
                    **errors,
                },
            }
        }
