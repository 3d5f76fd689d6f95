"""Every generated file of the repository, grouped by source, and the write / stale check over them.

The groups, in the order they are written:

- ``crds``: ``manifests/crds/``, ``charts/ferry/crds/`` (ferry_generate.crds, from
  ferry_operator.resource and ferry_gateway.consumers.crd through ferry_common.crdschema), and the
  ferry-mlflow ClusterServingRuntime ``manifests/runtime/``,
  ``charts/ferry/files/predictor-runtime-spec.yaml`` (ferry_common.runtime);
- ``dashboards``: ``charts/ferry/files/dashboards/``, ``charts/ferry/files/rules/`` (Grafana
  dashboards and alert rules: ferry_generate.dashboards, .alerts, from the metric modules);
- ``values-schema``: ``charts/ferry/values.schema.json`` (ferry_generate.values);
- ``install``: ``manifests/install/``, the chart rendered by ``helm template``
  (ferry_generate.install), last because it renders the files above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry_generate import alerts, crds, dashboards, install, values


@dataclass(frozen=True)
class Group:
    name: str
    files: Callable[[Path, str | None], dict[Path, str]]
    # Directories that hold only this group's files: anything else there is left over.
    owned: tuple[tuple[Path, str], ...] = ()


def _dashboards(root: Path, helm: str | None) -> dict[Path, str]:
    files = {dashboards.OUTPUT_DIR / name: text for name, text in dashboards.outputs().items()}
    files[alerts.OUTPUT] = alerts.render()
    return files


def _install(root: Path, helm: str | None) -> dict[Path, str]:
    return {install.OUTPUT_DIR / name: text for name, text in install.outputs(root, helm).items()}


GROUPS = (
    Group("crds", lambda root, helm: crds.outputs(), tuple((d, "*.yaml") for d in crds.CRD_DIRS)),
    Group("dashboards", _dashboards, ((dashboards.OUTPUT_DIR, "*.json"),)),
    Group("values-schema", lambda root, helm: {values.OUTPUT: values.render()}),
    Group("install", _install, ((install.OUTPUT_DIR, "*.yaml"),)),
)
NAMES = tuple(g.name for g in GROUPS)


def stale(root: Path, only: Sequence[str] = NAMES, helm: str | None = None) -> list[str]:
    """Each generated file that is missing or differs, and each left over in a generated directory."""
    problems: list[str] = []
    for group in (g for g in GROUPS if g.name in only):
        expected = group.files(root, helm)
        for rel, text in expected.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"{rel} (missing)")
            elif path.read_text() != text:
                problems.append(str(rel))
        for directory, pattern in group.owned:
            for path in sorted((root / directory).glob(pattern)):
                if path.relative_to(root) not in expected:
                    problems.append(f"{path.relative_to(root)} (no longer generated)")
    return problems


def write(root: Path, only: Sequence[str] = NAMES, helm: str | None = None) -> list[Path]:
    """Write every group in order (install last: it renders the chart the others write into)."""
    written: list[Path] = []
    for group in (g for g in GROUPS if g.name in only):
        expected = group.files(root, helm)
        for directory, pattern in group.owned:
            for path in (root / directory).glob(pattern):
                if path.relative_to(root) not in expected:
                    path.unlink()
        for rel, text in expected.items():
            path = root / rel
            if path.is_file() and path.read_text() == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(rel)
    return written
