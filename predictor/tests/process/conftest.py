"""Fixtures for the predictor's process tests: models trained once in a real MLflow server, real
predictor processes on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tritonclient.http
from ferry_mlflow_example.train import Registered, train_all
from ferry_testing.predictor import Predictor, StartPredictor, launch, terminate, wait_until_ready


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
        workdir = tmp_path_factory.mktemp("predictor")
        p = launch(model_uri, tracking_uri, workdir, name=name, extra_env=extra_env, args=args)
        started.append(p)
        if wait_ready:
            wait_until_ready(p)
        return p

    yield start
    for p in started:
        terminate(p)


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
