"""``ferry-predictor --model_name NAME --http_port PORT``: the container entry point.

The model comes from the environment the operator sets: MODEL_URI, MLFLOW_TRACKING_URI,
FERRY_COLOR and FERRY_MODEL_VERSION.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from ferry_common.runtime import SERVED_NAME_ENV

from ferry_predictor.config import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BODY_BYTES, Config
from ferry_predictor.secrets import redact


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"ferry-predictor: {name} must be an integer, got {raw!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferry-predictor",
        description="Serve one MLflow model over KServe v1 (/v1/models/NAME:predict) and the Open "
        "Inference Protocol v2 (/v2/models/NAME/infer), with health, metadata and Prometheus /metrics "
        "on one HTTP port.",
        epilog="Environment: MODEL_URI (required; models:/NAME/VERSION, models:/NAME@ALIAS, runs:/ or any "
        "artifact URI), MLFLOW_TRACKING_URI (registry and artifact proxy), FERRY_COLOR (reported in every "
        "response), FERRY_MODEL_VERSION (reported version; default: resolved from MODEL_URI), "
        "FERRY_MODEL_NAME (the name clients use; overrides --model_name, so that every colour of a "
        "ModelDeployment answers to its name), FERRY_MAX_BODY_BYTES, FERRY_MAX_BATCH_ROWS, FERRY_MODEL_DIR "
        "(download directory).",
    )
    p.add_argument("--model_name", required=True, help="name the model is served under (the URL's NAME)")
    p.add_argument("--http_port", type=int, default=8080, help="HTTP port (default: %(default)s)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    p.add_argument(
        "--grpc_port",
        type=int,
        default=None,
        help="accepted for compatibility with KServe's flags; gRPC is not served",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=[1],
        help="accepted for compatibility with KServe's flags; one process per container (scale with "
        "replicas)",
    )
    p.add_argument(
        "--max_body_bytes",
        type=int,
        default=_env_int("FERRY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        help="larger request bodies get 413 (default: $FERRY_MAX_BODY_BYTES or %(default)s)",
    )
    p.add_argument(
        "--max_batch_rows",
        type=int,
        default=_env_int("FERRY_MAX_BATCH_ROWS", DEFAULT_MAX_BATCH_ROWS),
        help="larger batches get 422 (default: $FERRY_MAX_BATCH_ROWS or %(default)s)",
    )
    p.add_argument(
        "--log_level",
        default=os.environ.get("FERRY_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="(default: %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    model_uri = os.environ.get("MODEL_URI", "")
    if not model_uri:
        print("ferry-predictor: MODEL_URI is not set (e.g. models:/titanic-survival/1)", file=sys.stderr)
        return 2
    if args.max_body_bytes <= 0 or args.max_batch_rows <= 0:
        print("ferry-predictor: --max_body_bytes and --max_batch_rows must be positive", file=sys.stderr)
        return 2
    workdir = Path(os.environ.get("FERRY_MODEL_DIR") or tempfile.mkdtemp(prefix="ferry-model-"))
    config = Config(
        # The operator sets the public name, so both colours answer to it (ferry_common.runtime).
        model_name=os.environ.get(SERVED_NAME_ENV) or args.model_name,
        model_uri=model_uri,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
        color=os.environ.get("FERRY_COLOR", ""),
        version_override=os.environ.get("FERRY_MODEL_VERSION") or None,
        max_body_bytes=args.max_body_bytes,
        max_batch_rows=args.max_batch_rows,
        workdir=workdir,
    )
    # Imported after argument parsing so that --help answers without loading the serving stack.
    import uvicorn

    from ferry_predictor.app import PredictorApp

    app = PredictorApp(config)
    logging.getLogger("ferry_predictor").info(
        "serving %r on %s:%d (model %s, tracking %s, colour %r)",
        config.model_name,
        args.host,
        args.http_port,
        redact(model_uri),
        redact(config.tracking_uri or "-"),
        config.color,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.http_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=args.log_level,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
