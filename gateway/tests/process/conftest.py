"""Real predictors for the gateway's surface tests: both Titanic versions trained once in a real
MLflow server of this suite's own, each served by a ``ferry-predictor`` process as a colour (the
approach of predictor/tests/process/conftest.py).

The registry is the suite's own so that the versions are 1 and 2, as a newcomer's ``make train``
registers them, whichever other suites trained in the session's shared server before."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferry_devcluster.procs import free_port, wait_for
from ferry_mlflow_example.train import Registered, train_all
from ferry_testing.predictor import Predictor, ready
from ferry_testing.servers import mlflow_server


@pytest.fixture(scope="session")
def gateway_mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-gateway")) as server:
        yield server.url


@pytest.fixture(scope="session")
def titanic_versions(gateway_mlflow_uri: str) -> list[Registered]:
    return train_all(gateway_mlflow_uri)


@pytest.fixture(scope="session")
def colours(
    titanic_versions: list[Registered], gateway_mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Predictor]]:
    """``blue`` serves version 1 (the active colour), ``green`` version 2 (the preview), both
    under the public name ``titanic``, started together so their slow starts overlap."""
    started: dict[str, Predictor] = {}
    for colour, reg in (("blue", titanic_versions[0]), ("green", titanic_versions[1])):
        port = free_port()
        workdir = tmp_path_factory.mktemp(f"predictor-{colour}")
        log = workdir / "predictor.log"
        env = {
            **os.environ,
            "MODEL_URI": reg.model_uri,
            "MLFLOW_TRACKING_URI": gateway_mlflow_uri,
            "FERRY_COLOR": colour,
            "FERRY_MODEL_DIR": str(workdir / "model"),
        }
        exe = Path(sys.executable).parent / "ferry-predictor"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(exe), "--model_name=titanic", f"--http_port={port}", "--host=127.0.0.1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        started[colour] = Predictor(f"http://127.0.0.1:{port}", proc, log)
    try:
        for p in started.values():
            # an exited process ends the wait at once; its log is the error message
            wait_for(
                f"ferry-predictor at {p.url}", lambda p=p: p.proc.poll() is not None or ready(p.url), 120, 0.2
            )
            if p.proc.poll() is not None:
                raise RuntimeError(f"ferry-predictor exited ({p.proc.returncode}):\n{p.logs()}")
        yield started
    finally:
        for p in started.values():
            if p.proc.poll() is None:
                p.proc.terminate()
                try:
                    p.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait()
