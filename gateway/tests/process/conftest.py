"""Real predictors for the gateway's surface tests: both Titanic versions trained once in a real
MLflow server of this suite's own, each served by a ``ferry-predictor`` process as a colour (the
approach of predictor/tests/process/conftest.py).

The registry is the suite's own so that the versions are 1 and 2, as a newcomer's ``make train``
registers them, whichever other suites trained in the session's shared server before."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ferry_devcluster.procs import free_port, port_open, stop, wait_for
from ferry_mlflow_example.train import Registered, train_all
from ferry_testing.predictor import Predictor, launch, terminate, wait_until_ready
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
        workdir = tmp_path_factory.mktemp(f"predictor-{colour}")
        started[colour] = launch(reg.model_uri, gateway_mlflow_uri, workdir, color=colour)
    try:
        for p in started.values():
            wait_until_ready(p)
        yield started
    finally:
        for p in started.values():
            terminate(p)


def _up_or_exited(proc: subprocess.Popen[bytes], port: int) -> bool:
    return proc.poll() is not None or port_open(port)


def _start_cluster_node(exe: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    for attempt in range(3):  # a free port can be taken by a neighbour between choosing and binding
        port, bus = free_port(), free_port()  # the default bus port (+10000) may not be free
        node = workdir / f"node-{port}"
        node.mkdir(parents=True, exist_ok=True)
        log = node / "redis.log"
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
        args += ["--cluster-port", str(bus), "--cluster-config-file", str(node / "nodes.conf")]
        args += ["--save", "", "--appendonly", "no", "--dir", str(node), "--logfile", str(log)]
        proc = subprocess.Popen(args)
        up = functools.partial(_up_or_exited, proc, port)
        wait_for(f"redis-server (cluster) on :{port}", up, 20)
        if proc.poll() is None:
            return proc, port, bus
        if attempt == 2:
            raise RuntimeError(f"redis-server (cluster) exited: {log.read_text()[-500:]}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster of three masters on loopback, the 16384 slots split between them, as
    the ``redis+cluster://`` URL the gateway takes (one node: the client discovers the others)."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server not found: `apt-get install redis-server` (make deps does this)"
    workdir = tmp_path_factory.mktemp("redis-cluster")
    nodes: list[tuple[subprocess.Popen[bytes], int, int]] = []
    try:
        for _ in range(3):
            nodes.append(_start_cluster_node(exe, workdir))
        admins = [redis.Redis(port=port) for _, port, _ in nodes]
        per = 16384 // len(nodes)
        for i, admin in enumerate(admins):
            last = 16383 if i == len(nodes) - 1 else (i + 1) * per - 1
            admin.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        for _, port, bus in nodes[1:]:
            admins[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)

        def formed() -> bool:
            infos = [admin.cluster("info") for admin in admins]
            return all(
                i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == len(nodes) for i in infos
            )

        wait_for("a Redis Cluster of three masters", formed, timeout=30)
        for admin in admins:
            admin.close()
        yield f"redis+cluster://127.0.0.1:{nodes[0][1]}"
    finally:
        for proc, _, _ in nodes:
            stop(proc)
