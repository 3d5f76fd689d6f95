"""Operator test fixtures used by more than one tier (process, cluster): a real MLflow registry
holding a tiny registered model."""

from __future__ import annotations

import pytest
from ferry_testing.operator import RegisteredModel, register_echo


@pytest.fixture(scope="session")
def registered_model(mlflow_uri: str) -> RegisteredModel:
    """``ferry-echo`` with two versions and the alias ``champion`` on version 1."""
    return register_echo(mlflow_uri)
