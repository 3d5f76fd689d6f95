"""The four test tiers, by folder, and the guard that keeps the unit tier free of servers.

The root ``conftest.py`` wires these into pytest's hooks: every test file lives below a
``tests/<tier>/`` folder (anywhere in the repository) and gets that tier's marker; a test file in
no tier folder is a collection error naming it.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import pytest

TIERS = ("unit", "process", "cluster", "node")


def tier_of(path: Path) -> str | None:
    """The tier of a test file: the folder right below a ``tests`` folder, if it names one."""
    parts = path.parts
    for i, part in enumerate(parts[:-2]):
        if part == "tests" and parts[i + 1] in TIERS:
            return parts[i + 1]
    return None


class UntieredModule(pytest.Module):
    """A test file outside every tier folder: reported as a collection error, never run."""

    def collect(self) -> NoReturn:
        raise self.CollectError(
            f"{self.path}: a test file must live in a tier folder, tests/{{{','.join(TIERS)}}}/ "
            "(see the root conftest.py)"
        )


def _refuse(what: str) -> object:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(f"a unit test may not {what}: move the test to a process/ (or later) tier folder")

    return refuse


class UnitGuard:
    """While active: no child process starts and no socket listens (each raises RuntimeError).

    Patched on the classes, so ``from subprocess import Popen``, ``subprocess.run`` and asyncio's
    subprocesses and servers are caught too.
    """

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self._patch = pytest.MonkeyPatch()

    def __enter__(self) -> None:
        if self.active:
            self._patch.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
            self._patch.setattr(socket.socket, "listen", _refuse("listen on a socket"))

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._patch.undo()
