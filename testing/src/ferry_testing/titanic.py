"""One complete Titanic passenger, as the example model's signature takes it (every column present,
so it encodes in any protocol, the binary tensor extension included)."""

from __future__ import annotations

from typing import Any

PASSENGER: dict[str, Any] = {
    "pclass": 1,
    "sex": "female",
    "age": 29.0,
    "sibsp": 0,
    "parch": 0,
    "fare": 211.34,
    "embarked": "S",
}
