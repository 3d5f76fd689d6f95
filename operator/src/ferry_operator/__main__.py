"""``ferry-operator``: run the Ferry operator (kopf) against the current kubeconfig or in-cluster."""

from __future__ import annotations

import argparse
import os
import socket
import sys

import kopf
from ferry_common import envconfig
from kopf._core.engines.peering import Identity  # kopf does not re-export the NewType

from ferry_operator import config, logsetup

PROG = "ferry-operator"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Reconcile ModelDeployments into KServe InferenceServices with blue-green rollouts.",
        epilog=config.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    peering = p.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no leader election (a single local run)")
    peering.add_argument(
        "--peering", default=None, help="kopf peering name for leader election (ClusterKopfPeering)"
    )
    p.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Every variable is validated here, before kopf starts: a bad one ends the process (status 2).
    with envconfig.or_exit(PROG):
        settings = config.load()
    logsetup.configure(args.verbose)
    from ferry_operator import app, handlers  # noqa: F401  (importing handlers registers them)

    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=True if args.standalone else None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        # kopf's default identity asks getpass for the user name, which fails for a uid without a
        # passwd entry (the image runs as 65532); the pod's host name is unique among peers anyway.
        identity=Identity(f"{socket.gethostname()}/{os.getpid()}"),
        memo=app.Memo(settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
