"""The one error envelope every Ferry HTTP surface returns, and the one list of error codes.

Envelope: ``{error_code, message, details, request_id, timestamp}``. ``details`` is a list of
``{"field": ..., "reason": ...}`` so a client can point at the offending input; it is empty when
the error is not about a particular field.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from ferry_common.timefmt import format_time


class ErrorCode(enum.StrEnum):
    """Stable, documented codes. The HTTP status of each lives in ``HTTP_STATUS``."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_INPUT = "INVALID_INPUT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL = "INTERNAL"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.MODEL_NOT_READY: 503,
    ErrorCode.UPSTREAM_UNAVAILABLE: 502,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass
class FerryError(Exception):
    """Raise anywhere in a request path; the component's HTTP layer renders it as the envelope."""

    code: ErrorCode
    message: str
    details: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def envelope(self, request_id: str | None = None) -> dict[str, Any]:
        return envelope(self.code, self.message, self.details, request_id)


def new_request_id() -> str:
    return uuid.uuid4().hex


def envelope(
    code: ErrorCode,
    message: str,
    details: list[FieldError] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "error_code": code.value,
        "message": message,
        "details": [d.to_dict() for d in details or []],
        "request_id": request_id or new_request_id(),
        "timestamp": format_time(timespec="milliseconds"),
    }
