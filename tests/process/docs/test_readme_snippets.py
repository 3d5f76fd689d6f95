"""The README blocks made of ``make`` lines that no test can run as written (``make up`` takes
40 minutes and root, ``make test`` is the whole suite, ``make deps`` installs system packages):
each ``make`` command in them is run as ``make -n`` with the same targets and variables, so a
renamed or removed target, or a variable a recipe no longer takes, fails here. What the targets
then do is exercised by the tests the unit suite's ties name (tests/unit/docs/test_snippets.py)."""

from __future__ import annotations

import os
import shlex
import subprocess

from ferry_testing import snippets

ROOT = snippets.claim("README.md", "two-commands", "try-it", "local-clusters")
CHART = snippets.claim("charts/ferry/README.md", "deploy")
OPERATOR = snippets.claim("operator/README.md", "run-it")


def make_commands(block: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each ``[VAR=value ...] make ARGS`` in a shell block: its environment and its arguments."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part.strip().rstrip("&"))
            env = {}
            while words and "=" in words[0] and not words[0].startswith("-"):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            if words and words[0] == "make":
                found.append((env, words[1:]))
    return found


def dry_run(block: str, expected: list[list[str]]) -> None:
    commands = make_commands(block)
    assert [args for _, args in commands] == expected  # the parser saw what the block says
    for env, args in commands:
        ran = subprocess.run(
            ["make", "-n", *args],
            cwd=snippets.REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, f"make -n {' '.join(args)}:\n{ran.stdout}\n{ran.stderr}"
        assert ran.stdout.strip(), f"make -n {' '.join(args)} would do nothing"


def test_the_two_commands() -> None:
    dry_run(ROOT.text("two-commands"), [["up"], ["demo"], ["test"]])


def test_try_it_on_one_machine() -> None:
    upstreams = "GATEWAY_UPSTREAMS=titanic=http://127.0.0.1:8081"
    dry_run(ROOT.text("try-it"), [["deps"], ["start-mlflow"], ["train"], ["run-gateway", upstreams]])


def test_the_local_clusters() -> None:
    dry_run(ROOT.text("local-clusters"), [["tools"], ["start-cluster"], ["stop-cluster"]])


def test_chart_deploy() -> None:
    dry_run(CHART.text("deploy"), [["deploy", "ENV=dev"], ["deploy", "ENV=staging", "NAMESPACE=ferry"]])


def test_operator_run_it() -> None:
    dry_run(OPERATOR.text("run-it"), [["start-cluster", "start-mlflow"], ["run-operator"]])
