"""``python -m ferry_generate [--check]``: write (or check) every generated file of the repository.

``--check`` writes nothing and exits 1 naming each file that is missing, differs, or is left over
in a generated directory (``make verify``). The files and their sources: see ferry_generate.files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferry_generate.files import NAMES, stale, write


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
        print(f"generated files up to date ({', '.join(only)})")
        return 0
    for rel in write(args.root, only, args.helm):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
