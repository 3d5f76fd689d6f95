"""`python -m localcluster tools|up|down|status`: the Makefile's cluster targets."""

from __future__ import annotations

import argparse

from . import tools


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_tools = sub.add_parser("tools", help="build the cluster's binaries from Go modules (cached by version)")
    p_tools.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    if args.cmd == "tools":
        tools.ensure_tools(force=args.force)
