"""The tiers end to end: pytest run on probe files inside the repository (so the root conftest
applies), in a child process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe() -> Iterator[Path]:
    """A scratch folder under the checkout's .local/ (gitignored), removed afterwards."""
    import shutil

    root = REPO / ".local" / f"tier-probe-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_a_test_file_in_no_tier_folder_is_a_collection_error_naming_it(probe: Path) -> None:
    stray = write(probe / "tests" / "test_stray.py", "def test_x() -> None:\n    pass\n")
    write(probe / "tests" / "unit" / "test_ok.py", "def test_ok() -> None:\n    pass\n")
    run = pytest_run("-m", "unit", str(probe))
    assert run.returncode != 0, run.stdout
    assert "a test file must live in a tier folder" in run.stdout
    assert str(stray) in run.stdout


def test_a_unit_test_that_starts_a_server_fails(probe: Path) -> None:
    write(
        probe / "tests" / "unit" / "test_server.py",
        "import subprocess, sys\n\n"
        "def test_starts() -> None:\n"
        "    subprocess.run([sys.executable, '-c', 'pass'])\n",
    )
    run = pytest_run("-m", "unit", str(probe))
    assert run.returncode == 1, run.stdout
    assert "a unit test may not start a subprocess" in run.stdout


def test_a_unit_fixture_that_starts_a_server_fails_too(probe: Path) -> None:
    """The guard covers fixture setup, so a session fixture cannot start a server for a unit test."""
    write(
        probe / "tests" / "unit" / "test_fixture.py",
        "import socket, pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        "def listener() -> socket.socket:\n"
        "    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); return s\n\n"
        "def test_uses(listener: socket.socket) -> None:\n"
        "    pass\n",
    )
    run = pytest_run("-m", "unit", str(probe))
    assert run.returncode == 1, run.stdout
    assert "a unit test may not listen on a socket" in run.stdout


def test_each_tier_runs_only_its_folder_and_an_empty_tier_exits_5(probe: Path) -> None:
    for tier in ("unit", "process", "cluster", "node"):
        write(probe / "tests" / tier / f"test_{tier}.py", f"def test_in_{tier}() -> None:\n    pass\n")
    for tier in ("unit", "process", "cluster", "node"):
        run = pytest_run("-m", tier, str(probe))
        assert run.returncode == 0, run.stdout
        assert "1 passed, 3 deselected" in run.stdout
    only_unit = probe / "tests" / "unit"
    run = pytest_run("-m", "process", str(only_unit))
    assert run.returncode == 5, run.stdout  # `make test` counts this as a failure (tests/run.sh)
