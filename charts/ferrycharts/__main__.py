"""``python -m ferrycharts dashboards|install-manifests [--check]``: write or check generated files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferrycharts import alerts, dashboards, install


def generated(what: str) -> dict[Path, str]:
    if what == "dashboards":
        files = {dashboards.OUTPUT_DIR / name: text for name, text in dashboards.outputs().items()}
        files[alerts.OUTPUT] = alerts.render()
        return files
    return {install.OUTPUT_DIR / name: text for name, text in install.outputs().items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ferrycharts",
        description="Write the chart's generated files: 'dashboards' (Grafana dashboards and alert rules "
        "under charts/ferry/files/) or 'install-manifests' (manifests/install/, rendered with helm).",
    )
    p.add_argument("what", choices=["dashboards", "install-manifests"])
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a committed file is stale"
    )
    args = p.parse_args(argv)
    stale = []
    for path, text in generated(args.what).items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run `make " + args.what + "`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
