"""The test tiers, applied by location, and the session-wide fixtures backed by real servers.

Every test file lives in a tier folder, ``.../tests/<tier>/...`` anywhere in the repository, and
gets that tier's marker here (never by hand):

* ``unit``: pure code and in-process ASGI calls; no subprocess, no listening socket (enforced:
  starting either fails the test, see ``ferry_testing.tiers.UnitGuard``);
* ``process``: real local servers and processes (Redis, MLflow, Prometheus, uvicorn on loopback);
* ``cluster``: the local kwok Kubernetes cluster;
* ``node``: the local real node, or the whole stack on it (``make up``).

A test file in no tier folder is a collection error naming it, so nothing runs outside a tier.
``make test-<tier>`` runs ``pytest -m <tier>``.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from ferry_devcluster import cluster
from ferry_devcluster.stack import Stack
from ferry_testing.servers import Server, mlflow_server, redis_server
from ferry_testing.tiers import UnitGuard, UntieredModule, tier_of

# pytest's importlib mode names operator/tests/... modules ``operator.tests...`` and re-imports a
# parent module that has no ``__path__``: it would replace the standard library's ``operator``
# with this repository's operator/ folder, and every later ``import kubernetes`` would break. An
# empty ``__path__`` keeps the real module in place (nothing imports submodules of ``operator``).
if not hasattr(operator, "__path__"):
    operator.__path__ = []


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if tier_of(module_path) is None:
        return UntieredModule.from_parent(parent, path=module_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        assert tier is not None  # untiered files yield no items (UntieredModule)
        item.add_marker(getattr(pytest.mark, tier))


# Unit items run their fixture setup and the test itself under the guard. Teardown is left alone:
# session fixtures of other tiers may end after a unit test.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with UnitGuard(item.get_closest_marker("unit") is not None):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with UnitGuard(item.get_closest_marker("unit") is not None):
        return (yield)


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
    """The local kwok cluster's admin kubeconfig: reuses a running cluster or starts one.

    A cluster this fixture started is left running (stop it with `make stop-cluster`) so the next
    run starts in seconds; set FERRY_CLUSTER_TEARDOWN=1 to stop it at the end of the session.
    """
    cluster.KWOK.up()
    _USED_NODES.add("kwok")
    return str(cluster.KWOK.kubeconfig_path)


# The clusters this session's fixtures brought up (or reused): only those are stopped at its end,
# so a session that used none (the unit and process tiers) spends nothing on teardown.
_USED_NODES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _cluster_teardown() -> Iterator[None]:
    yield
    if os.environ.get("FERRY_CLUSTER_TEARDOWN") == "1":
        for node in sorted(_USED_NODES):
            subprocess.run([sys.executable, "-m", "ferry_devcluster", "--node", node, "down"], check=False)


@pytest.fixture(scope="session")
def real_kubeconfig() -> str:
    """A second local cluster whose node really runs containers (kubelet + containerd + runc).

    Started in a subprocess: it is a different cluster from `kubeconfig`'s kwok one, with its
    own state under .local/e2e. Left running like the kwok cluster unless FERRY_CLUSTER_TEARDOWN=1.
    """
    subprocess.run([sys.executable, "-m", "ferry_devcluster", "--node", "real", "up"], check=True)
    _USED_NODES.add("real")
    return str(cluster.REAL.kubeconfig_path)


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The whole product on the local real node, as `make up` brings it up (idempotent, reused).

    `make up` runs in a subprocess so its progress shows with `pytest -s` and a failure there
    reads like the command's own output.
    """
    subprocess.run([sys.executable, "-m", "ferry_devcluster.stack", "up"], check=True)
    _USED_NODES.add("real")
    return Stack.load()
