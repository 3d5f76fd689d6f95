"""Session-wide fixtures backed by real servers (see tests/e2e/fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures.servers import Server, mlflow_server, redis_server


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
    import os

    if os.environ.get("FERRY_CLUSTER_TEARDOWN") == "1":
        from localcluster import cluster

        cluster.down()
