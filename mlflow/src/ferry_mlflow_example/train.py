"""Train the two Titanic pipelines and register them in an MLflow registry.

Version 1 (``baseline``) gets the alias ``champion``; version 2 (``balanced``) is trained
differently (scaled numbers, class-balanced, stronger regularisation) so that a rollout has
something to switch to.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ferry_mlflow_example import data

MODEL_NAME = "titanic-survival"
CHAMPION = "champion"
EXPERIMENT = "titanic-survival"
CONSTRAINTS_FILE = "ferry_constraints.json"
# skops refuses to load types it does not know unless they are listed; these are the only
# non-default ones a fitted imputer/one-hot pipeline contains.
SKOPS_TRUSTED = ["numpy.dtype"]

_TYPES = {
    "pclass": "long",
    "sex": "string",
    "age": "double",
    "sibsp": "long",
    "parch": "long",
    "fare": "double",
    "embarked": "string",
}


def _requirements() -> list[str]:
    pkgs = ("scikit-learn", "skops", "numpy", "pandas")
    return [f"{p}=={importlib.metadata.version(p)}" for p in pkgs]


def signature() -> ModelSignature:
    inputs = Schema([ColSpec(_TYPES[c], c, required=c not in data.OPTIONAL) for c in data.FEATURES])
    outputs = Schema([ColSpec("long", "survived")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def build(variant: str) -> Pipeline:
    """``baseline``: impute + one-hot + logistic regression; ``balanced``: also scaled, class-balanced."""
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    if variant == "baseline":
        numeric: Pipeline | SimpleImputer = SimpleImputer(strategy="median")
        classifier = LogisticRegression(max_iter=1000)
    elif variant == "balanced":
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        classifier = LogisticRegression(max_iter=1000, C=0.1, class_weight="balanced")
    else:
        raise ValueError(f"unknown variant {variant!r}: expected baseline or balanced")
    features = ColumnTransformer([("num", numeric, data.NUMERIC), ("cat", categorical, data.CATEGORICAL)])
    return Pipeline([("features", features), ("classifier", classifier)])


def input_example(x: pd.DataFrame) -> pd.DataFrame:
    # Complete rows only: MLflow writes NaN as a bare NaN token, which is not JSON.
    return x.dropna().head(3).reset_index(drop=True)


@dataclass(frozen=True)
class Registered:
    variant: str
    version: str
    accuracy: float
    model_uri: str


def train_and_register(variant: str, x: pd.DataFrame, y: pd.Series, client: MlflowClient) -> Registered:
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42, stratify=y)
    pipeline = build(variant).fit(x_train, y_train)
    accuracy = float(accuracy_score(y_test, pipeline.predict(x_test)))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"titanic-{variant}"):
        constraints = Path(tmp) / CONSTRAINTS_FILE
        constraints.write_text(json.dumps(data.CONSTRAINTS, indent=2))
        mlflow.log_params(
            {
                "variant": variant,
                **{
                    k: str(v)
                    for k, v in pipeline[-1].get_params().items()
                    if k in ("C", "class_weight", "max_iter")
                },
            }
        )
        mlflow.log_metric("accuracy", accuracy)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature(),
            input_example=input_example(x),
            extra_files=[str(constraints)],
            skops_trusted_types=SKOPS_TRUSTED,
            registered_model_name=MODEL_NAME,
            metadata={"ferry_variant": variant},
            # Explicit, so MLflow does not export the whole uv workspace as the model's environment.
            pip_requirements=_requirements(),
        )
    version = str(info.registered_model_version)
    client.set_model_version_tag(MODEL_NAME, version, "variant", variant)
    client.set_model_version_tag(MODEL_NAME, version, "accuracy", f"{accuracy:.4f}")
    return Registered(variant, version, accuracy, f"models:/{MODEL_NAME}/{version}")


def train_all(tracking_uri: str) -> list[Registered]:
    """Register ``baseline`` then ``balanced``; point ``champion`` at the baseline just registered."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    x, y = data.load()
    print(f"data: {len(x)} passengers, {int(y.sum())} survived")
    results = []
    for variant in ("baseline", "balanced"):
        started = time.monotonic()
        print(f"training {variant} ...", flush=True)
        reg = train_and_register(variant, x, y, client)
        print(
            f"  {MODEL_NAME} v{reg.version} ({variant}): accuracy {reg.accuracy:.4f} on the held-out 25%"
            f" [{time.monotonic() - started:.1f}s]",
            flush=True,
        )
        results.append(reg)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, results[0].version)
    print(f"alias {CHAMPION} -> v{results[0].version}")
    return results
