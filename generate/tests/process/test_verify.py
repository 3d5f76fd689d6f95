"""`make verify` passes on the committed tree and fails, naming the file, once one is edited by hand.

It runs the real target (make, the generator, helm for manifests/install) against a copy of the
generated trees (charts/ferry and manifests/), so the checkout itself is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RENDERED_FROM_THE_CHART = {"manifests/install/ferry.yaml", "manifests/install/ferry-dev.yaml"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for part in ("charts/ferry", "manifests"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "verify", f"GENERATE_ROOT={root}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_verify_passes_on_the_committed_files(tree: Path) -> None:
    result = verify(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("rel", "old", "new"),
    [
        ("manifests/crds/modeldeployments.ferry.dev.yaml", "maximum: 100", "maximum: 1000"),
        ("charts/ferry/crds/consumers.ferry.dev.yaml", "shortNames:", "shortNames: []\n    x:"),
        ("charts/ferry/values.schema.json", '"maximum": 65535', '"maximum": 65536'),
        ("charts/ferry/files/dashboards/ferry-overview.json", '"title"', '"title "'),
        ("charts/ferry/files/rules/ferry.rules.yaml", "severity: critical", "severity: page"),
        ("manifests/runtime/ferry-mlflow.yaml", "ferry-mlflow", "ferry-mlflow2"),
        ("manifests/install/ferry.yaml", "namespace: ferry", "namespace: other"),
    ],
)
def test_verify_fails_naming_a_file_edited_by_hand(tree: Path, rel: str, old: str, new: str) -> None:
    path = tree / rel
    text = path.read_text()
    assert old in text, f"{rel} no longer contains {old!r}: pick another edit"
    path.write_text(text.replace(old, new, 1))
    result = verify(tree)
    assert result.returncode != 0
    named = {
        line.removeprefix("stale: ") for line in result.stderr.splitlines() if line.startswith("stale: ")
    }
    assert rel in named, result.stderr
    # The chart's own files also reach the install manifests helm renders from them.
    assert named - {rel} <= RENDERED_FROM_THE_CHART, result.stderr
    assert "run `make generate`" in result.stderr


def test_verify_names_missing_and_left_over_files(tree: Path) -> None:
    (tree / "charts/ferry/files/dashboards/ferry-model.json").unlink()
    (tree / "manifests/crds/old.ferry.dev.yaml").write_text("kind: CustomResourceDefinition\n")
    result = verify(tree)
    assert result.returncode != 0
    assert "stale: charts/ferry/files/dashboards/ferry-model.json (missing)" in result.stderr, result.stderr
    assert "stale: manifests/crds/old.ferry.dev.yaml (no longer generated)" in result.stderr, result.stderr
