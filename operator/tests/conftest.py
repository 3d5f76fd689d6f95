"""Operator test fixtures used by more than one tier (process, cluster): a real MLflow registry
holding a tiny registered model."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_testing.operator import RegisteredModel


@pytest.fixture(scope="session")
def registered_model(mlflow_uri: str) -> RegisteredModel:
    """``ferry-echo`` with two versions and the alias ``champion`` on version 1."""
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class Echo(PythonModel):  # what it predicts does not matter to the operator
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    mlflow.set_tracking_uri(mlflow_uri)
    name = "ferry-echo"
    example = {"pclass": [3], "sex": ["male"], "age": [22.0]}
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Echo(),
                input_example=pd.DataFrame(example),
                registered_model_name=name,
                pip_requirements=["mlflow"],  # skips requirement inference, which is slow
            )
        versions.append(str(info.registered_model_version))
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", versions[0])
    return RegisteredModel(mlflow_uri, name, versions, example)
