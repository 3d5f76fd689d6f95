"""One complete Titanic passenger, as the example model's signature takes it (every column present,
so it encodes in any protocol, the binary tensor extension included), and the Open Inference
Protocol datatype of each column, in the signature's order."""

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

V2_TYPES: dict[str, str] = {
    "pclass": "INT64",
    "sex": "BYTES",
    "age": "FP64",
    "sibsp": "INT64",
    "parch": "INT64",
    "fare": "FP64",
    "embarked": "BYTES",
}
