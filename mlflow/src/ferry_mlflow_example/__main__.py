"""``python -m ferry_mlflow_example``: train and register both Titanic versions."""

from __future__ import annotations

import argparse
import os
import sys

from ferry_mlflow_example.train import CHAMPION, MODEL_NAME, train_all

DEFAULT_URI = "http://127.0.0.1:5000"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferry-train",
        description=f"Train the Titanic pipelines and register them as two new versions of {MODEL_NAME!r}; "
        f"alias {CHAMPION!r} moves to the first (baseline) one.",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
        help="MLflow tracking/registry server (default: $MLFLOW_TRACKING_URI, else %(default)s)",
    )
    args = parser.parse_args(argv)
    print(f"MLflow: {args.tracking_uri}")
    train_all(args.tracking_uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
