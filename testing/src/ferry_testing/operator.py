"""Types shared by the operator tests (a uniquely named module: test dirs are not packages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RegisteredModel:
    tracking_uri: str
    name: str
    versions: list[str]
    input_example: dict[str, Any]
