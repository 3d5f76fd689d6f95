"""Fixtures for the predictor's process tests: models trained once in a real MLflow server, real
predictor processes on loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.http
from ferry_devcluster.procs import free_port, wait_for
from ferry_mlflow_example.train import Registered, train_all
from ferry_testing.predictor import Predictor, StartPredictor, ready


@pytest.fixture(scope="session")
def registered(mlflow_uri: str) -> list[Registered]:
    """Both Titanic versions, trained and registered once per session in the real MLflow server."""
    return train_all(mlflow_uri)


@pytest.fixture(scope="session")
def start_predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartPredictor]:
    """Start ``ferry-predictor`` exactly as the ServingRuntime does, on a free loopback port."""
    started: list[Predictor] = []

    def start(
        model_uri: str,
        tracking_uri: str,
        *,
        name: str = "titanic",
        wait_ready: bool = True,
        extra_env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> Predictor:
        port = free_port()
        workdir = tmp_path_factory.mktemp("predictor")
        log = workdir / "predictor.log"
        env = {
            **os.environ,
            "MODEL_URI": model_uri,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "FERRY_COLOR": "blue",
            "FERRY_MODEL_DIR": str(workdir / "model"),
            **(extra_env or {}),
        }
        exe = Path(sys.executable).parent / "ferry-predictor"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(exe), f"--model_name={name}", f"--http_port={port}", "--host=127.0.0.1", *(args or [])],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        p = Predictor(f"http://127.0.0.1:{port}", proc, log)
        started.append(p)
        if wait_ready:
            wait_until_ready(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.terminate()
            try:
                p.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()


def wait_until_ready(p: Predictor) -> Predictor:
    def up() -> bool:
        # An exited process ends the wait at once; its log is the error message.
        return p.proc.poll() is not None or ready(p.url)

    wait_for(f"ferry-predictor at {p.url}", up, timeout=120, interval=0.2)
    if p.proc.poll() is not None:
        raise RuntimeError(f"ferry-predictor exited ({p.proc.returncode}):\n{p.logs()}")
    return p


@pytest.fixture(scope="session")
def fleet(
    registered: list[Registered], mlflow_uri: str, start_predictor: StartPredictor
) -> dict[str, Predictor]:
    """The session's predictors, launched together so that their slow starts overlap."""
    return {
        # The way the operator deploys an alias.
        "champion": start_predictor(
            "models:/titanic-survival@champion",
            mlflow_uri,
            wait_ready=False,
            extra_env={"FERRY_COLOR": "green"},
        ),
        # Started as KServe starts a colour (named after its InferenceService) with the public
        # name the operator sets, which is the one it must answer to.
        "v2": start_predictor(
            registered[1].model_uri,
            mlflow_uri,
            name="titanic-green",
            wait_ready=False,
            extra_env={"FERRY_MODEL_NAME": "titanic"},
        ),
        "broken": start_predictor("models:/no-such-model/1", mlflow_uri, wait_ready=False),
    }


@pytest.fixture(scope="session")
def champion(fleet: dict[str, Predictor]) -> Predictor:
    return wait_until_ready(fleet["champion"])


@pytest.fixture(scope="session")
def pinned_v2(fleet: dict[str, Predictor]) -> Predictor:
    """A predictor pinned to version 2, as for a rollout's preview colour."""
    return wait_until_ready(fleet["v2"])


@pytest.fixture(scope="session")
def broken(fleet: dict[str, Predictor]) -> Predictor:
    """A predictor whose model does not exist in the registry."""
    return fleet["broken"]


@pytest.fixture
def triton(champion: Predictor) -> Iterator[tritonclient.http.InferenceServerClient]:
    """NVIDIA's Open Inference Protocol client, pointed at the champion predictor."""
    client = tritonclient.http.InferenceServerClient(champion.url.removeprefix("http://"))
    yield client
    client.close()
