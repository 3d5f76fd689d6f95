"""Every setting of the predictor: KServe's command-line flags and one table of environment variables.

``load(argv, environ)`` reads and validates them all before the server starts; a bad value raises
``ConfigError`` naming the flag or variable (``__main__`` turns it into exit status 2), and
``--help`` prints ``ENV`` itself, so the documentation cannot drift from the code. Nothing else
in the package reads the environment.

The operator sets the variables named in ``ferry_common.contract.PredictorEnv`` (see
``ferry_common.runtime`` and ``ferry_operator.builders``); the others are the predictor's own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry_common import contract, digest, envconfig, runtime
from ferry_common.contract import PredictorEnv
from ferry_common.envconfig import ConfigError, Var, positive_int

PROG = "ferry-predictor"
# the gateway's default too: it refuses larger bodies before spending any quota on them
DEFAULT_MAX_BODY_BYTES = contract.MAX_BODY_BYTES
DEFAULT_MAX_BATCH_ROWS = 1000
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
DEFAULT_HTTP_PORT = 8080
DEFAULT_METRICS_PORT = runtime.METRICS_PORT
LOG_LEVELS = ("debug", "info", "warning", "error")

MAX_BODY_BYTES = "FERRY_MAX_BODY_BYTES"
MAX_BATCH_ROWS = "FERRY_MAX_BATCH_ROWS"
BODY_TIMEOUT_SECONDS = "FERRY_BODY_TIMEOUT_SECONDS"
SHUTDOWN_TIMEOUT_SECONDS = "FERRY_SHUTDOWN_TIMEOUT_SECONDS"
LOG_LEVEL = "FERRY_LOG_LEVEL"
# MLflow's client reads its credentials from the environment itself (the operator passes them on
# from the ModelDeployment's credentials Secret); they are listed here so --help names them, and
# read so their values can be scrubbed from load errors.
CREDENTIALS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def _digest(raw: str) -> str:
    if not digest.valid(raw):
        raise ValueError("must be sha256: and 64 lower-case hex digits (ferry_common.digest)")
    return raw


ENV: tuple[Var, ...] = (
    Var(
        PredictorEnv.MODEL_URI,
        "required: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/... or any artifact URI MLflow "
        "can download",
    ),
    Var(
        PredictorEnv.TRACKING_URI,
        "MLflow registry and artifact proxy (credentials in it are never logged)",
    ),
    Var(PredictorEnv.COLOR, "reported in every response (color, header x-ferry-color)", ""),
    Var(
        PredictorEnv.MODEL_VERSION,
        "reported version; default: from MODEL_URI, or the alias resolved in the registry",
    ),
    Var(
        PredictorEnv.MODEL_NAME,
        "the name clients use; overrides --model_name, so every colour of a ModelDeployment "
        "answers to its name",
    ),
    Var(PredictorEnv.MODEL_DIR, "where the model is downloaded (default: a new temporary directory)"),
    Var(
        PredictorEnv.ARTIFACT_DIGEST,
        "sha256:<hex> the downloaded artifacts must match before anything is loaded; on a mismatch "
        "the model is refused and the server stays not ready (the operator sets it per version)",
        None,
        _digest,
    ),
    Var(
        MAX_BODY_BYTES,
        "larger request bodies get 413 (--max_body_bytes wins)",
        str(DEFAULT_MAX_BODY_BYTES),
        positive_int,
    ),
    Var(
        MAX_BATCH_ROWS,
        "larger batches get 422 (--max_batch_rows wins)",
        str(DEFAULT_MAX_BATCH_ROWS),
        positive_int,
    ),
    Var(
        BODY_TIMEOUT_SECONDS,
        "seconds a client has to send its whole request body, else 408",
        f"{DEFAULT_BODY_TIMEOUT_SECONDS:g}",
        envconfig.positive_float,
    ),
    Var(
        SHUTDOWN_TIMEOUT_SECONDS,
        "on SIGTERM: seconds to finish the requests in flight (no new ones are accepted) before"
        " exiting; within the pod's grace period (ferry_common.runtime)",
        str(runtime.DRAIN_SECONDS),
        envconfig.positive_int,
    ),
    Var(LOG_LEVEL, "debug, info, warning or error (--log_level wins)", "info", envconfig.choice(*LOG_LEVELS)),
    Var(CREDENTIALS[0], "registry token, read by MLflow's client", secret=True),
    Var(CREDENTIALS[1], "registry user (with the password), read by MLflow's client", secret=True),
    Var(CREDENTIALS[2], "registry password, read by MLflow's client", secret=True),
)


@dataclass(frozen=True)
class Config:
    """What the predictor serves and how; built once by ``load`` (tests build it directly)."""

    model_name: str
    # Either URI may carry credentials (user:password@, signed query strings): kept out of repr.
    model_uri: str = field(repr=False)
    tracking_uri: str | None = field(default=None, repr=False)
    color: str = ""
    version_override: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    workdir: Path = Path("/tmp/ferry-model")
    # Backoff between failed load attempts grows to this: a registry outage should heal by itself.
    retry_max_seconds: float = 60.0
    # A client trickling its body gets 408 after this, instead of holding a connection for ever.
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    shutdown_timeout_seconds: int = runtime.DRAIN_SECONDS
    host: str = "0.0.0.0"
    http_port: int = DEFAULT_HTTP_PORT
    # 0: no metrics port. Never the traffic port: whatever reaches predictions could read them.
    metrics_port: int = DEFAULT_METRICS_PORT
    log_level: str = "info"
    # Credential values MLflow's client reads: scrubbed from any error text the predictor shows.
    credentials: tuple[str, ...] = field(default=(), repr=False)
    # When set, the download must have this digest (ferry_common.digest) or nothing is loaded.
    artifact_digest: str | None = None


def parser() -> argparse.ArgumentParser:
    """KServe's model-server flags (the ServingRuntime passes ``--model_name`` and ``--http_port``)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve one MLflow model over KServe v1 (/v1/models/NAME:predict) and the Open\n"
        "Inference Protocol v2 (/v2/models/NAME/infer), with health and metadata, on one HTTP\n"
        "port, and Prometheus /metrics on a port of its own.",
        epilog=envconfig.help_text(ENV),
    )
    p.add_argument("--model_name", required=True, help="name the model is served under (the URL's NAME)")
    p.add_argument("--http_port", default=None, help=f"HTTP port (default: {DEFAULT_HTTP_PORT})")
    p.add_argument(
        "--metrics_port",
        default=None,
        help=f"Prometheus /metrics port, never the HTTP port; 0 for none (default: {DEFAULT_METRICS_PORT})",
    )
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
        default=None,
        help=f"larger request bodies get 413 (default: ${MAX_BODY_BYTES} or {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--max_batch_rows",
        default=None,
        help=f"larger batches get 422 (default: ${MAX_BATCH_ROWS} or {DEFAULT_MAX_BATCH_ROWS})",
    )
    p.add_argument(
        "--log_level",
        default=None,
        choices=LOG_LEVELS,
        help=f"(default: ${LOG_LEVEL} or info)",
    )
    return p


def _flag(name: str, raw: str | None, parse: Callable[[str], Any], fallback: Any) -> Any:
    """A flag's value through the same parser as its variable; the variable's when not given."""
    if raw is None:
        return fallback
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(name, f"{raw!r}: {exc}") from None


def _metrics_port(raw: str | None, http_raw: str | None) -> int:
    port: int = _flag("--metrics_port", raw, envconfig.port, DEFAULT_METRICS_PORT)
    http: int = _flag("--http_port", http_raw, envconfig.port, DEFAULT_HTTP_PORT)
    if port and port == http:
        raise ConfigError(
            "--metrics_port", f"{port}: must differ from --http_port (metrics are not served to clients)"
        )
    return port


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The whole configuration, validated; raises ConfigError naming the first bad flag or variable.

    ``argv`` and ``environ`` default to the process's own (tests pass their own). ``--help`` and
    argparse's own errors (a missing ``--model_name``) exit here with status 0 and 2, as argparse does.
    """
    args = parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    env = envconfig.load(ENV, envconfig.environment() if environ is None else environ)
    model_uri = env[PredictorEnv.MODEL_URI]
    if not model_uri:
        raise ConfigError(PredictorEnv.MODEL_URI, "not set; required (e.g. models:/titanic-survival/1)")
    workdir = env[PredictorEnv.MODEL_DIR]
    return Config(
        # The operator sets the public name, so both colours answer to it (ferry_common.runtime).
        model_name=env[PredictorEnv.MODEL_NAME] or args.model_name,
        model_uri=model_uri,
        tracking_uri=env[PredictorEnv.TRACKING_URI],
        color=env[PredictorEnv.COLOR],
        version_override=env[PredictorEnv.MODEL_VERSION],
        max_body_bytes=_flag("--max_body_bytes", args.max_body_bytes, positive_int, env[MAX_BODY_BYTES]),
        max_batch_rows=_flag("--max_batch_rows", args.max_batch_rows, positive_int, env[MAX_BATCH_ROWS]),
        workdir=Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ferry-model-")),
        body_timeout_seconds=env[BODY_TIMEOUT_SECONDS],
        shutdown_timeout_seconds=env[SHUTDOWN_TIMEOUT_SECONDS],
        host=args.host,
        http_port=_flag("--http_port", args.http_port, envconfig.port, DEFAULT_HTTP_PORT),
        metrics_port=_metrics_port(args.metrics_port, args.http_port),
        log_level=args.log_level or env[LOG_LEVEL],
        credentials=tuple(env[name] for name in CREDENTIALS if env[name]),
        artifact_digest=env[PredictorEnv.ARTIFACT_DIGEST] or None,
    )
