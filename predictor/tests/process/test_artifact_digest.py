"""FERRY_ARTIFACT_DIGEST against a real MLflow server: the recorded digest serves; artifacts
overwritten in the store after registration are refused before anything is unpickled
(issue 13, finding 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from ferry_common.digest import directory_digest
from ferry_devcluster.procs import Server, wait_for
from ferry_testing.artifacts import tracing_pickle, version_dir
from ferry_testing.predictor import StartPredictor

NAME = "ferry-digest-echo"


@pytest.fixture(scope="module")
def versions(mlflow_uri: str) -> tuple[str, str]:
    """Two versions of a small pyfunc model; the second is tampered with by one test."""
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class Echo(PythonModel):  # defined here so cloudpickle carries it by value
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input["a"] * 2

    mlflow.set_tracking_uri(mlflow_uri)
    out = []
    for _ in range(2):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Echo(),
                input_example=pd.DataFrame({"a": [1.0]}),
                registered_model_name=NAME,
                pip_requirements=["mlflow"],
            )
        out.append(str(info.registered_model_version))
    return out[0], out[1]


def test_the_recorded_digest_serves(
    versions: tuple[str, str], mlflow_tracking: Server, start_predictor: StartPredictor
) -> None:
    version = versions[0]
    recorded = directory_digest(version_dir(mlflow_tracking, NAME, version))
    p = start_predictor(
        f"models:/{NAME}/{version}",
        mlflow_tracking.url,
        name="echo",
        extra_env={
            "FERRY_ARTIFACT_DIGEST": recorded,
            "FERRY_MODEL_VERSION": version,
        },  # as the operator sets them
    )
    r = httpx.post(f"{p.url}/v1/models/echo:predict", json={"instances": [{"a": 2.0}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [4.0]
    assert (
        f'ferry_predictor_artifact_mismatch{{model="echo",version="{version}"}} 0.0'
        in httpx.get(p.metrics_url).text
    )


def test_artifacts_changed_after_registration_are_refused_unloaded(
    versions: tuple[str, str], mlflow_tracking: Server, start_predictor: StartPredictor, tmp_path: Path
) -> None:
    version = versions[1]
    store = version_dir(mlflow_tracking, NAME, version)
    recorded = directory_digest(store)  # what the operator recorded when it resolved the version
    marker = tmp_path / "unpickled"
    (store / "python_model.pkl").write_bytes(tracing_pickle(marker))  # someone with store access
    p = start_predictor(
        f"models:/{NAME}/{version}",
        mlflow_tracking.url,
        name="echo",
        wait_ready=False,
        extra_env={
            "FERRY_ARTIFACT_DIGEST": recorded,
            "FERRY_MODEL_VERSION": version,
        },  # as the operator sets them
    )
    wait_for("the refusal", lambda: "refused" in p.logs(), timeout=120, interval=0.2)
    got = directory_digest(store)
    (line,) = [line for line in p.logs().splitlines() if "refused" in line]
    assert recorded in line and got in line
    ready = httpx.get(f"{p.url}/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["error_code"] == "MODEL_NOT_READY"
    assert ready.json()["details"][0] == {
        "field": "FERRY_ARTIFACT_DIGEST",
        "reason": f"expected {recorded}, got {got}",
    }
    assert httpx.get(f"{p.url}/v2/models/echo/ready", timeout=5).status_code == 503
    infer = httpx.post(f"{p.url}/v1/models/echo:predict", json={"instances": [{"a": 2.0}]}, timeout=5)
    assert infer.status_code == 503 and infer.json()["error_code"] == "MODEL_NOT_READY"
    metrics = httpx.get(p.metrics_url, timeout=5).text
    assert f'ferry_predictor_artifact_mismatch{{model="echo",version="{version}"}} 1.0' in metrics
    assert not marker.exists(), "the tampered pickle was loaded"
    assert p.proc.poll() is None  # live (not restarted into a loop), only not ready
