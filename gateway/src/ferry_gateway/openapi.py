"""The gateway's OpenAPI document (hand-written: the API is small and must say exactly what it does)."""

from __future__ import annotations

from typing import Any

from ferry_common.errors import ErrorCode

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


def spec() -> dict[str, Any]:
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
                    "responses": {
                        "200": {
                            "description": "Usage",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": _err("No or bad credentials"),
                    },
                }
            },
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


def docs_page(document: dict[str, Any]) -> str:
    """A dependency-free page: the operations, and a link to the JSON document for tools."""
    rows = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{path}</code></td>"
                f"<td>{op.get('summary', '')}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ferry gateway API</title></head><body>"
        "<h1>Ferry gateway API</h1><p>OpenAPI document: <a href='/openapi.json'>/openapi.json</a>. "
        "Authenticate with <code>Authorization: Bearer &lt;JWT&gt;</code> or <code>X-API-Key</code>.</p>"
        f"<table border='1' cellpadding='4'>{''.join(rows)}</table></body></html>"
    )
