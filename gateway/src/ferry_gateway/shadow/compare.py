"""Do the preview's predictions agree with the active colour's on the same request?

Both answers are the predictor's JSON: KServe v1 (``{"predictions": [...]}``) or the Open Inference
Protocol v2 (``{"outputs": [{"name", "data": [...]}, ...]}``). A request agrees when every
prediction does: labels (strings, booleans, integers) must be equal, so a classifier trained on
wrong labels disagrees; real numbers must be within ``tolerance`` (relative, or absolute near
zero), so a regressor's rounding noise does not. Shapes that differ (another row count, another
output name) disagree: the client would notice. An answer that is not a prediction at all is the
preview's error, counted apart by the caller of ``compare``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Comparison:
    agreed: bool
    reason: str = ""  # why not, for a debug log; never the values themselves (no bodies kept)


def predictions(body: Any) -> dict[str, list[Any]] | None:
    """The predictions in a v1 or v2 answer, by output name (v1: one output, ``predictions``)."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("predictions"), list):
        return {"predictions": body["predictions"]}
    outputs = body.get("outputs")
    if isinstance(outputs, list) and outputs:
        found: dict[str, list[Any]] = {}
        for o in outputs:
            if not isinstance(o, dict) or not isinstance(o.get("data"), list):
                return None
            found[str(o.get("name", ""))] = o["data"]
        return found
    return None


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    return bool(a == b)


def compare(active: Any, preview: Any, tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """The active answer is known good (the caller got it); ``preview`` must be a prediction too."""
    mine, theirs = predictions(active), predictions(preview)
    if mine is None or theirs is None:
        return Comparison(False, "not a prediction")
    if mine.keys() != theirs.keys():
        return Comparison(False, "other outputs")
    for name, rows in mine.items():
        other = theirs[name]
        if len(rows) != len(other):
            return Comparison(False, f"{name}: {len(other)} rows, not {len(rows)}")
        for i, (x, y) in enumerate(zip(rows, other, strict=True)):
            if not _same(x, y, tolerance):
                return Comparison(False, f"{name}[{i}] differs")
    return Comparison(True)
