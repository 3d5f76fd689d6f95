"""An array-only evaluation of common scikit-learn pipelines, without pandas or per-call validation.

A fitted ``Pipeline(ColumnTransformer(imputers, scalers, one-hot encoders), LogisticRegression)``
is compiled into plain lookup tables and one matrix product. The pipeline's own ``predict_proba``
spends ~3 ms per row in DataFrame handling and ColumnTransformer validation; this takes
microseconds. Anything outside the supported subset raises ``Unsupported`` and the caller keeps
the original model, so the fast path can only ever be an optimisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class Unsupported(Exception):
    """The model uses something the fast path does not reproduce exactly."""


@dataclass(frozen=True)
class ColumnPlan:
    """How one input column becomes ``width`` output features: impute, then scale or one-hot."""

    column: str
    offset: int
    impute: Any = None  # value replacing a missing input; None = missing is not allowed
    shift: float = 0.0
    scale: float = 1.0
    onehot: Mapping[Any, int] | None = None  # category -> output offset; unknown -> all zeros
    width: int = 1


@dataclass(frozen=True)
class CompiledLinear:
    plans: tuple[ColumnPlan, ...]
    n_features: int
    coef: Array  # (n_features, n_outputs)
    intercept: Array
    classes: list[Any]

    def features(self, columns: Mapping[str, Sequence[Any]], n: int) -> Array:
        x = np.zeros((n, self.n_features))
        for p in self.plans:
            values = columns[p.column]
            if p.onehot is None:
                if None in values:
                    # Without an imputer a missing value stays NaN, and the caller rejects NaN results.
                    imp = np.nan if p.impute is None else p.impute
                    values = [imp if v is None else v for v in values]
                col = np.asarray(values, dtype=np.float64)
                x[:, p.offset] = (col - p.shift) / p.scale if (p.shift or p.scale != 1.0) else col
            else:
                lookup, imp = p.onehot, p.impute
                hits = [lookup.get(imp if v is None else v, -1) for v in values]
                if n <= 4:  # numpy's fancy indexing costs more than it saves on a handful of rows
                    for i, j in enumerate(hits):
                        if j >= 0:
                            x[i, p.offset + j] = 1.0
                else:
                    cols = np.asarray(hits, dtype=np.intp)
                    rows = np.flatnonzero(cols >= 0)
                    x[rows, p.offset + cols[rows]] = 1.0
        return x

    def predict_proba(self, columns: Mapping[str, Sequence[Any]], n: int) -> Array:
        z = self.features(columns, n) @ self.coef + self.intercept
        if z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack((1.0 - p1, p1))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: Array = e / e.sum(axis=1, keepdims=True)
        return out

    def predict(self, columns: Mapping[str, Sequence[Any]], n: int) -> tuple[list[Any], Array]:
        proba = self.predict_proba(columns, n)
        idx = proba.argmax(axis=1)
        return [self.classes[i] for i in idx.tolist()], proba


def _is_missing_marker(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _column_steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if transformer == "passthrough":
        return []
    if isinstance(transformer, Pipeline):
        return [step for _, step in transformer.steps if step != "passthrough" and step is not None]
    return [transformer]


def _plan_column(column: str, position: int, steps: list[Any], offset: int) -> ColumnPlan:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    impute: Any = None
    shift, scale = 0.0, 1.0
    onehot: dict[Any, int] | None = None
    for i, step in enumerate(steps):
        if onehot is not None:
            raise Unsupported(f"{type(step).__name__} after OneHotEncoder on {column!r}")
        if isinstance(step, SimpleImputer):
            if (
                step.add_indicator
                or not _is_missing_marker(step.missing_values)
                or impute is not None
                or i > 0
            ):
                raise Unsupported(
                    f"SimpleImputer on {column!r}: only a leading imputer of NaN/None without indicator"
                )
            impute = _py(step.statistics_[position])
            if _is_missing_marker(impute):
                raise Unsupported(f"SimpleImputer dropped the all-missing column {column!r}")
        elif isinstance(step, StandardScaler):
            if onehot is not None or scale != 1.0 or shift != 0.0:
                raise Unsupported(f"more than one scaler on {column!r}")
            shift = float(step.mean_[position]) if step.with_mean else 0.0
            scale = float(step.scale_[position]) if step.with_std else 1.0
        elif isinstance(step, OneHotEncoder):
            if (
                step.drop is not None
                or step.handle_unknown != "ignore"
                or getattr(step, "_infrequent_enabled", False)
            ):
                raise Unsupported(f"OneHotEncoder on {column!r}: only drop=None, handle_unknown='ignore'")
            if shift != 0.0 or scale != 1.0:
                raise Unsupported(f"one-hot after scaling on {column!r}")
            onehot = {_py(c): j for j, c in enumerate(step.categories_[position])}
        else:
            raise Unsupported(f"{type(step).__name__} on {column!r}")
    if onehot is not None:
        return ColumnPlan(column, offset, impute, onehot=onehot, width=len(onehot))
    return ColumnPlan(column, offset, impute, shift, scale)


def compile_pipeline(model: Any) -> CompiledLinear:
    """Compile a fitted Pipeline(ColumnTransformer, LogisticRegression); raise ``Unsupported`` otherwise."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise Unsupported(
            f"expected Pipeline(ColumnTransformer, LogisticRegression), got {type(model).__name__}"
        )
    ct, clf = model.steps[0][1], model.steps[1][1]
    if not isinstance(ct, ColumnTransformer) or type(clf) is not LogisticRegression:
        raise Unsupported(
            f"expected ColumnTransformer + LogisticRegression, got {type(ct).__name__} + {type(clf).__name__}"
        )
    names = list(getattr(ct, "feature_names_in_", []))
    if not names:
        raise Unsupported("ColumnTransformer was fitted without column names")
    plans: list[ColumnPlan] = []
    offset = 0
    for _name, transformer, cols in ct.transformers_:
        if transformer == "drop":
            continue
        if isinstance(cols, slice) or callable(cols):
            raise Unsupported("column selectors must be explicit lists")
        raw = np.atleast_1d(cols).tolist()
        if any(isinstance(c, bool) for c in raw):
            raise Unsupported("boolean column masks are not supported")
        selected = [names[c] if isinstance(c, int) else c for c in raw]
        steps = _column_steps(transformer)
        for position, column in enumerate(selected):
            plan = _plan_column(str(column), position, steps, offset)
            plans.append(plan)
            offset += plan.width
    coef = np.asarray(clf.coef_, dtype=np.float64)
    if coef.shape[1] != offset:
        raise Unsupported(f"classifier expects {coef.shape[1]} features, the transformer yields {offset}")
    return CompiledLinear(
        tuple(plans),
        offset,
        coef.T.copy(),
        np.asarray(clf.intercept_, dtype=np.float64),
        [_py(c) for c in clf.classes_],
    )
