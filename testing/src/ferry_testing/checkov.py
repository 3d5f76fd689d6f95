"""checkov (PyPI) over Kubernetes manifests, and the allow-list of the checks Ferry knowingly fails.

checkov runs as a uv tool at a pinned version (``uv tool run --from checkov==VERSION``): it is
installed into uv's cache on first use, on any machine ``make test`` runs on, and never enters the
workspace's lock (its ~100 dependencies would constrain Ferry's own). ``--skip-download`` keeps a
scan offline once installed (no Bridgecrew guideline download).

The allow-list (charts/ferry/checkov-allowlist.yaml) names, per check, the kinds and object names
(shell-style patterns) it may fail on, which scans it applies to (``chart``: the rendered chart;
``predictor``: the Deployments KServe makes for a ModelDeployment), and why it is accepted. The
tests require both directions: no failure outside the list, and no entry that nothing fails.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferry_testing.chart import CHART

VERSION = "3.3.30"
ALLOWLIST = CHART / "checkov-allowlist.yaml"
SCANS = ("chart", "predictor")
JSON = dict[str, Any]


@dataclass(frozen=True, order=True)
class Failure:
    """One failed check on one object, as checkov names it (``Kind.namespace.name``)."""

    check: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.check} on {self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Allowed:
    check: str
    kinds: tuple[str, ...]
    names: tuple[str, ...]
    scans: tuple[str, ...]
    reason: str

    def covers(self, f: Failure) -> bool:
        return (
            f.check == self.check
            and f.kind in self.kinds
            and any(fnmatch.fnmatchcase(f.name, pattern) for pattern in self.names)
        )


def load_allowlist(scan: str, path: Path = ALLOWLIST) -> list[Allowed]:
    """The entries that apply to ``scan``; a malformed entry fails loudly, naming it."""
    assert scan in SCANS, scan
    out = []
    for i, e in enumerate(yaml.safe_load(path.read_text()) or []):
        assert set(e) == {"check", "kinds", "names", "scans", "reason"}, f"{path.name} entry {i}: {e}"
        assert set(e["scans"]) <= set(SCANS) and str(e["reason"]).strip(), f"{path.name} entry {i}"
        entry = Allowed(e["check"], tuple(e["kinds"]), tuple(e["names"]), tuple(e["scans"]), e["reason"])
        if scan in entry.scans:
            out.append(entry)
    return out


def _command(path: Path) -> list[str]:
    return [
        "uv",
        "tool",
        "run",
        "--from",
        f"checkov=={VERSION}",
        "checkov",
        "-f",
        str(path),
        "--framework",
        "kubernetes",
        "--skip-download",
        "--quiet",  # failed checks only
        "-o",
        "json",
    ]


def scan(docs: list[JSON]) -> list[Failure]:
    """Every failed check on ``docs``, scanned together (so the graph checks, e.g. CKV2_K8S_6's
    pod-to-NetworkPolicy, see every object)."""
    with tempfile.TemporaryDirectory(prefix="ferry-checkov-") as tmp:
        path = Path(tmp) / "manifests.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        proc = subprocess.run(_command(path), capture_output=True, text=True, check=False, timeout=600)
    # Exit status 1 means failed checks; anything else but 0 is checkov itself failing.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"checkov wrote no JSON report:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    failures = set()
    for r in reports:
        for c in (r.get("results") or {}).get("failed_checks", []):
            kind, namespace, name = c["resource"].split(".", 2)
            failures.add(Failure(c["check_id"], kind, namespace, name))
    return sorted(failures)


def unexpected(failures: list[Failure], allowed: list[Allowed]) -> list[Failure]:
    return [f for f in failures if not any(a.covers(f) for a in allowed)]


def unused(failures: list[Failure], allowed: list[Allowed]) -> list[Allowed]:
    return [a for a in allowed if not any(a.covers(f) for f in failures)]
