"""Build, start and stop Ferry's local Kubernetes control plane (the Makefile's cluster targets)."""

from __future__ import annotations

import argparse
import sys

from . import cluster, images, tools


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ferry_devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_tools = sub.add_parser(
        "tools", help="build etcd, Kubernetes, kwok, helm and KServe from Go modules (cached)"
    )
    p_tools.add_argument("--force", action="store_true", help="rebuild even when cached")
    sub.add_parser("up", help="start the cluster (reuses a healthy one) and write .local/kubeconfig")
    sub.add_parser("down", help="stop every process the cluster started and remove its state")
    sub.add_parser("status", help="exit 0 when the cluster is up, 1 otherwise")
    sub.add_parser("bin", help="print the directories holding the built binaries (for PATH)")
    p_images = sub.add_parser(
        "images",
        help="build the pause, base and Ferry images (cached) and, with --node real, import them "
        "into the real node when it is up",
    )
    p_images.add_argument("--force", action="store_true", help="rebuild Ferry's images even when cached")
    parser.add_argument(
        "--node",
        choices=cluster.NODE_KINDS,
        default=cluster.default_node(),
        help="kwok: fake nodes under .local/ (fast suites); real: kubelet + containerd under .local/e2e/ "
        "(default from FERRY_NODE, else kwok)",
    )
    args = parser.parse_args(argv)
    local = cluster.Cluster(args.node)
    if args.cmd == "tools":
        tools.ensure_tools(force=args.force)
    elif args.cmd == "up":
        local.up()
    elif args.cmd == "down":
        local.down()
    elif args.cmd == "status":
        up = local.is_up()
        print("up" if up else "down")
        sys.exit(0 if up else 1)
    elif args.cmd == "images":
        archives = {**images.ensure_images(), **images.ferry_images(force=args.force)}
        ctr = images.real_node_ctr() if args.node == "real" else None
        if ctr is not None:
            images.import_all(ctr, archives)
        elif args.node == "real":
            print(
                "the real node is not up: images are cached and get imported by "
                "`make start-cluster NODE=real`"
            )
        print(
            "helm --set for these images: "
            + ",".join(f"{k}={v}" for k, v in images.chart_overrides().items())
        )
    elif args.cmd == "bin":
        print(":".join(str(t.bindir) for t in tools.ALL))
