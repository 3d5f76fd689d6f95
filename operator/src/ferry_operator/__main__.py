"""``ferry-operator``: run the Ferry operator (kopf) against the current kubeconfig or in-cluster."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import kopf
from kopf._core.engines.peering import Identity  # kopf does not re-export the NewType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferry-operator",
        description="Reconcile ModelDeployments into KServe InferenceServices with blue-green rollouts.",
        epilog=(
            "Environment: MLFLOW_TRACKING_URI (default http://127.0.0.1:5000), MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME/PASSWORD, FERRY_REGISTRY_POLL_SECONDS (alias poll, default 30), "
            "FERRY_PREDICTOR_TRACKING_URI (the URI predictors use, default MLFLOW_TRACKING_URI), "
            "FERRY_REGISTRY_SECRET (Secret with registry credentials for predictors), "
            "FERRY_PREDICTOR_IMAGE (the ferry-mlflow runtime's image, default the release's), "
            "FERRY_SMOKE_TESTER ('http' or module:factory), FERRY_METRICS_PORT (default 9090, 0 = off), "
            "KUBECONFIG."
        ),
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no leader election (a single local run)")
    peering.add_argument(
        "--peering", default=None, help="kopf peering name for leader election (ClusterKopfPeering)"
    )
    parser.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kopf.configure(verbose=args.verbose)
    import ferry_operator.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=True if args.standalone else None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        # kopf's default identity asks getpass for the user name, which fails for a uid without a
        # passwd entry (the image runs as 65532); the pod's host name is unique among peers anyway.
        identity=Identity(f"{socket.gethostname()}/{os.getpid()}"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
