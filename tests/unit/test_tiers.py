"""The tier machinery itself: a file's tier comes from its folder, and a unit test starts no server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ferry_testing.tiers import UnitGuard, tier_of


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        ("tests/unit/test_x.py", "unit"),
        ("gateway/tests/process/test_x.py", "process"),
        ("operator/tests/cluster/deep/er/test_x.py", "cluster"),
        ("/abs/repo/tests/node/test_x.py", "node"),
        ("tests/test_x.py", None),
        ("tests/load/test_x.py", None),
        ("unit/test_x.py", None),  # a tier name not right below a tests/ folder
        ("tests/unit.py", None),
    ],
)
def test_a_files_tier_is_the_folder_below_tests(path: str, tier: str | None) -> None:
    assert tier_of(Path(path)) == tier


def test_this_file_is_marked_unit_by_its_folder(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("process") is None


def test_a_unit_test_may_not_start_a_subprocess() -> None:
    with pytest.raises(RuntimeError, match="a unit test may not start a subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(RuntimeError, match="a unit test may not start a subprocess"):
        subprocess.Popen(["true"])


def test_a_unit_test_may_not_listen_on_a_socket() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # binding alone (e.g. to find a port) is no server
        with pytest.raises(RuntimeError, match="a unit test may not listen on a socket"):
            s.listen()


def test_a_unit_test_may_not_start_an_asyncio_server() -> None:
    async def serve() -> None:
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)

    with pytest.raises(RuntimeError, match="a unit test may not listen on a socket"):
        asyncio.run(serve())


def test_the_guard_undoes_itself() -> None:
    original = subprocess.Popen.__init__
    guard = UnitGuard(active=False)
    with guard:
        assert subprocess.Popen.__init__ is original
