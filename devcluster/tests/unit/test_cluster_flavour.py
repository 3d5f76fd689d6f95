"""The cluster flavour is an object: each names its own state, kubeconfig and checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from ferry_devcluster import cluster
from ferry_devcluster.cluster import KWOK, REAL, Cluster, State


@pytest.fixture(autouse=True)
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FERRY_LOCAL", str(tmp_path))
    return tmp_path


def test_each_flavour_has_its_own_state_and_kubeconfig(local: Path) -> None:
    assert KWOK.kubeconfig_path == local / "kubeconfig"
    assert KWOK.state_dir == local / "cluster"
    assert REAL.kubeconfig_path == local / "e2e" / "kubeconfig"
    assert REAL.state_dir == local / "e2e" / "cluster"
    assert REAL.admin_kubeconfig == local / "e2e" / "cluster" / "admin.kubeconfig"
    assert REAL.real and not KWOK.real
    assert Cluster("real") == REAL


def test_an_unknown_flavour_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown node kind 'fake'"):
        Cluster("fake")


def test_the_default_flavour_comes_from_ferry_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERRY_NODE", raising=False)
    assert cluster.default_node() == "kwok"
    monkeypatch.setenv("FERRY_NODE", "real")
    assert cluster.default_node() == "real"


def test_state_round_trips_through_its_file(tmp_path: Path) -> None:
    state = State(tmp_path / "state.json", ports={"etcd": 20001}, pids={"etcd": 42})
    state.save()
    assert State.load(tmp_path / "state.json") == state
    assert State.load(tmp_path / "missing.json") is None


def test_a_cluster_with_no_state_is_down() -> None:
    assert KWOK.state() is None
    assert not KWOK.is_up()
    assert not REAL.is_up()


def test_each_start_phase_logs_its_time(capsys: pytest.CaptureFixture[str]) -> None:
    phase = cluster._Phases()
    with phase("etcd"):
        pass
    assert "etcd" in phase.took
    assert "] etcd ready in " in capsys.readouterr().out
