"""``python -m ferry_generate [--check]``: write (or check) every generated file of the repository.

The files and their one source each:

- ``manifests/crds/``, ``charts/ferry/crds/``: the CRDs (ferry_generate.crds, from
  ferry_operator.resource and ferry_gateway.consumer_crd through ferry_common.crdschema);
- ``manifests/runtime/``, ``charts/ferry/files/predictor-runtime-spec.yaml``: the ferry-mlflow
  ClusterServingRuntime (ferry_common.runtime);
- ``charts/ferry/files/dashboards/``, ``charts/ferry/files/rules/``: Grafana dashboards and alert
  rules (ferry_generate.dashboards, .alerts, from the components' metric modules);
- ``charts/ferry/values.schema.json``: the values schema (ferry_generate.values);
- ``manifests/install/``: the chart rendered by ``helm template`` (ferry_generate.install), last,
  because it renders the files above.

``--check`` writes nothing and exits 1 naming each file that is missing, differs, or is left over
in a generated directory (``make verify``).
"""

from __future__ import annotations

import argparse
import sys
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ferry_generate",
        description="Write every generated file (CRDs, runtime, dashboards, alert rules, values schema, "
        "plain install manifests) from its one source; --check only reports stale files.",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale file")
    p.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    p.add_argument(
        "--only", action="append", choices=NAMES, help="only this group (repeatable; default: all)"
    )
    p.add_argument("--helm", help="helm binary for the install manifests (default: PATH, then make tools')")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    only = tuple(args.only or NAMES)
    if args.check:
        problems = stale(args.root, only, args.helm)
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print("generated files are stale: run `make generate` and commit the result", file=sys.stderr)
            return 1
        return 0
    for rel in write(args.root, only, args.helm):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
