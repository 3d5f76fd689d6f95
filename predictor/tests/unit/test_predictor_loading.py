"""Loading through MLflow's clients: non-scikit-learn flavours, constraints files, the runtime manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pytest
from ferry_common.errors import FerryError
from ferry_predictor.model import load, read_constraints, resolve_version
from ferry_predictor.runtime import HTTP_PORT, METRICS_PORT, NAME, cluster_serving_runtime
from ferry_predictor.schema import Batch
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema


class Doubler(PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input["x"] * 2


@pytest.fixture(scope="module")
def pyfunc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    sig = ModelSignature(inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("double")]))
    constraints = path.parent / "ferry_constraints.json"
    constraints.write_text(json.dumps({"x": {"min": 0, "max": 10}}))
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Doubler(),
        signature=sig,
        pip_requirements=["pandas"],
        input_example=pd.DataFrame({"x": [1.5]}),
    )
    (path / "ferry_constraints.json").write_text(constraints.read_text())
    return path


def test_a_python_function_model_is_served_by_its_own_predict(pyfunc_dir: Path, tmp_path: Path) -> None:
    model = load(str(pyfunc_dir), None, tmp_path)
    assert model.flavor == "python_function" and model.fast is None and model.blocking
    assert model.version == "unregistered"
    assert model.schema is not None and model.schema.names == ["x"]
    batch = model.schema.validate_records([{"x": 1.5}, {"x": 4}], "instances")
    assert model.predict(batch).labels == [3.0, 8.0]
    assert model.predict(Batch(1, {"x": [2.0]})).probabilities is None
    with pytest.raises(FerryError) as exc:  # constraints shipped as a file at the model's root
        model.schema.validate_records([{"x": 11}], "instances")
    assert exc.value.details[0].reason.startswith("must be <= 10")


def test_constraints_must_be_an_object(tmp_path: Path) -> None:
    (tmp_path / "ferry_constraints.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold an object"):
        read_constraints(tmp_path)
    assert read_constraints(tmp_path / "nowhere") == {}


@pytest.mark.parametrize(
    ("uri", "override", "expected"),
    [
        ("models:/m/7", None, "7"),
        ("models:/m/7", "9", "9"),
        ("runs:/abc/model", None, "unregistered"),
        ("s3://bucket/model", "3", "3"),
        # `$` alone would match before the newline and report version 7 for a URI MLflow refuses
        ("models:/m/7\n", None, "unregistered"),
    ],
)
def test_the_reported_version(uri: str, override: str | None, expected: str) -> None:
    assert resolve_version(uri, None, override) == expected


def test_the_runtime_starts_the_predictor_as_the_operator_expects() -> None:
    rt = cluster_serving_runtime("registry.example/ferry-predictor:1")
    assert (rt["kind"], rt["metadata"]["name"]) == ("ClusterServingRuntime", NAME)
    (container,) = rt["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.example/ferry-predictor:1"
    assert container["args"] == [
        "--model_name={{.Name}}",
        f"--http_port={HTTP_PORT}",
        f"--metrics_port={METRICS_PORT}",
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": HTTP_PORT}
    assert rt["spec"]["protocolVersions"] == ["v1", "v2"]
    assert rt["spec"]["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    # Prometheus scrapes a port of its own, never the one predictions are served on (#13, finding 2)
    assert rt["spec"]["annotations"]["prometheus.kserve.io/port"] == str(METRICS_PORT) != str(HTTP_PORT)
    assert {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"} in container["ports"]
