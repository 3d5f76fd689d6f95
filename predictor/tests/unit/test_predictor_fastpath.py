"""The compiled scikit-learn path gives the pipeline's own probabilities, or steps aside."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from ferry_mlflow_example import data
from ferry_mlflow_example.train import build, signature
from ferry_predictor.fastpath import Unsupported, compile_pipeline
from ferry_predictor.model import LoadedModel, to_frame, try_fast_path
from ferry_predictor.schema import Batch, InputSchema, from_mlflow
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

SCHEMA: InputSchema = from_mlflow(signature().inputs.to_dict(), data.CONSTRAINTS)


def as_batch(x: pd.DataFrame) -> Batch:
    """The columns the validator would produce for these rows (NaN -> None, numpy -> Python)."""
    cols = {c: [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in x[c]] for c in x}
    return Batch(len(x), cols)


@pytest.fixture(scope="module", params=["baseline", "balanced"])
def fitted(request: pytest.FixtureRequest, titanic: tuple[pd.DataFrame, pd.Series]) -> Pipeline:
    x, y = titanic
    return build(request.param).fit(x, y)


def test_fast_path_matches_the_pipeline_on_the_whole_dataset(
    fitted: Pipeline, titanic: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = titanic
    fast = compile_pipeline(fitted)
    batch = as_batch(x)
    labels, proba = fast.predict(batch.columns, batch.rows)
    expected = fitted.predict_proba(x)
    assert np.max(np.abs(proba - expected)) <= 1e-6
    assert labels == fitted.predict(x).tolist()
    # The whole table includes 263 missing ages, a missing fare and two missing ports: all imputed alike.
    assert sum(v is None for v in batch.columns["age"]) == 263


ROW = st.fixed_dictionaries(
    {
        "pclass": st.sampled_from([1, 2, 3]),
        "sex": st.sampled_from(["male", "female"]),
        "age": st.none() | st.floats(0, 120),
        "sibsp": st.integers(0, 8),
        "parch": st.integers(0, 9),
        "fare": st.none() | st.floats(0, 600),
        "embarked": st.none() | st.sampled_from(["C", "Q", "S"]),
    }
)


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=20))
def test_fast_path_matches_on_any_valid_input(rows: list[dict[str, Any]], titanic: Any) -> None:
    x, y = titanic
    pipeline = _baseline(x, y)
    batch = SCHEMA.validate_records(rows, "instances")
    _, proba = compile_pipeline(pipeline).predict(batch.columns, batch.rows)
    assert np.max(np.abs(proba - pipeline.predict_proba(to_frame(batch, SCHEMA)))) <= 1e-6


_CACHE: dict[str, Pipeline] = {}


def _baseline(x: pd.DataFrame, y: pd.Series) -> Pipeline:
    if "baseline" not in _CACHE:
        _CACHE["baseline"] = build("baseline").fit(x, y)
    return _CACHE["baseline"]


def _with(features: ColumnTransformer, clf: Any) -> Pipeline:
    return Pipeline([("features", features), ("classifier", clf)])


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (
            _with(
                ColumnTransformer([("n", SimpleImputer(), ["age", "fare"])]),
                RandomForestClassifier(n_estimators=3),
            ),
            "RandomForestClassifier",
        ),
        (_with(ColumnTransformer([("n", MinMaxScaler(), ["sibsp"])]), LogisticRegression()), "MinMaxScaler"),
        (
            _with(ColumnTransformer([("c", OneHotEncoder(drop="first"), ["sex"])]), LogisticRegression()),
            "drop=None",
        ),
        (
            _with(
                ColumnTransformer([("c", SimpleImputer(add_indicator=True), ["age"])]), LogisticRegression()
            ),
            "indicator",
        ),
    ],
)
def test_unsupported_models_keep_their_own_predict(
    model: Pipeline, reason: str, titanic: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, y = titanic
    model.fit(x, y)
    with pytest.raises(Unsupported, match=reason):
        compile_pipeline(model)
    fast, note = try_fast_path(model, SCHEMA, None)
    assert fast is None and reason in note
    served = LoadedModel("models:/m/1", "1", "sklearn", SCHEMA, None, fast, note, estimator=model)
    assert served.blocking
    batch = as_batch(x.head(5))
    prediction = served.predict(batch)
    assert prediction.probabilities is not None
    assert np.allclose(prediction.probabilities, model.predict_proba(x.head(5)))
    assert prediction.labels == model.predict(x.head(5)).tolist()


def test_a_compiled_model_that_disagrees_is_not_used(
    titanic: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = titanic
    model = build("baseline").fit(x, y)

    class Drifted:  # stands for an estimator whose compiled form would be wrong
        def __getattr__(self, name: str) -> Any:
            return getattr(model, name)

        def predict_proba(self, frame: pd.DataFrame) -> Any:
            return model.predict_proba(frame) + 1e-3

    fast = compile_pipeline(model)
    monkeypatch.setattr("ferry_predictor.model.compile_pipeline", lambda _est: fast)
    rejected, note = try_fast_path(Drifted(), SCHEMA, None)
    assert rejected is None and "differ by 0.001" in note
