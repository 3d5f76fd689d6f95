"""Session-wide fixtures backed by real servers (see tests/e2e/fixtures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.servers import Server, mlflow_server, redis_server
from localcluster.stack import Stack


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `mlflow server` (sqlite registry, local artifacts served through the server)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_uri(mlflow_tracking: Server) -> str:
    return mlflow_tracking.url


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The local cluster's admin kubeconfig: reuses a running cluster or starts one.

    A cluster this fixture started is left running (stop it with `make cluster-down`) so the next
    run starts in seconds; set FERRY_CLUSTER_TEARDOWN=1 to stop it at the end of the session.
    """
    from localcluster import cluster

    cluster.up()
    return str(cluster.kubeconfig_path())


@pytest.fixture(scope="session", autouse=True)
def _cluster_teardown() -> Iterator[None]:
    yield
    if os.environ.get("FERRY_CLUSTER_TEARDOWN") == "1":
        import subprocess
        import sys

        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent / "tests" / "e2e")}
        for node in ("real", "kwok"):
            subprocess.run(
                [sys.executable, "-m", "localcluster", "--node", node, "down"], env=env, check=False
            )


@pytest.fixture(scope="session")
def real_kubeconfig() -> str:
    """A second local cluster whose node really runs containers (kubelet + containerd + runc).

    Started in a subprocess: it is a different cluster from `kubeconfig`'s kwok one, with its
    own state under .local/e2e. Left running like the kwok cluster unless FERRY_CLUSTER_TEARDOWN=1.
    """
    import subprocess
    import sys

    from localcluster import cluster

    subprocess.run(
        [sys.executable, "-m", "localcluster", "--node", "real", "up"],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent / "tests" / "e2e")},
    )
    return str(cluster.root_for("real") / "kubeconfig")


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The whole product on the local real node, as `make up` brings it up (idempotent, reused).

    `make up` runs in a subprocess so its progress shows with `pytest -s` and a failure there
    reads like the command's own output.
    """
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "localcluster.stack", "up"],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent / "tests" / "e2e")},
    )
    return Stack.load()
