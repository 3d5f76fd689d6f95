"""Fixtures for the predictor's unit tests: the Titanic data, read once from its packaged CSV."""

from __future__ import annotations

import pandas as pd
import pytest
from ferry_mlflow_example import data


@pytest.fixture(scope="session")
def titanic() -> tuple[pd.DataFrame, pd.Series]:
    return data.load()
