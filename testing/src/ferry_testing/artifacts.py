"""A registered version's files where the test MLflow server stores them, and a pickle that
leaves a trace when it is loaded: what the artifact-digest tests tamper with and look for."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import httpx
from ferry_devcluster.procs import Server

PROXY = "mlflow-artifacts:/"


def version_dir(mlflow: Server, name: str, version: str) -> Path:
    """The directory of ``name`` version ``version`` in the server's local artifact store
    (``--artifacts-destination``, next to its log; see ``ferry_devcluster.mlflow_server``)."""
    r = httpx.get(
        f"{mlflow.url}/api/2.0/mlflow/model-versions/get-download-uri",
        params={"name": name, "version": version},
        timeout=10,
    )
    r.raise_for_status()
    uri: str = r.json()["artifact_uri"]
    assert uri.startswith(PROXY), uri
    return mlflow.log.parent / "artifacts" / uri.removeprefix(PROXY).strip("/")


class _Trace:
    """Unpickling this creates ``path``: proof that the bytes were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


def tracing_pickle(marker: Path) -> bytes:
    """A pickle whose loading runs code (``os.mkdir(marker)``), as a hostile model's would."""
    return pickle.dumps(_Trace(marker))
