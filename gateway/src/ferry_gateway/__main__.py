"""``ferry-gateway``: run the gateway (in a cluster from environment variables, or ``--dev``)."""

from __future__ import annotations

import argparse
import logging
import sys

from ferry_common import logs

from ferry_gateway import config
from ferry_gateway.config import ConfigError, Settings
from ferry_gateway.consumers.registry import DEV_KEYS

# uvicorn's own access lines would duplicate ours (FERRY_ACCESS_LOG) in another format
QUIET_LOGGERS = ("uvicorn.access",)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferry-gateway",
        description="Ferry's gateway: authenticates callers, applies Redis rate limits and quotas, "
        "and routes model calls to predictors. Flags override the environment variables below.",
        epilog=config.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="development mode: dev JWKS (see `ferry token`), built-in consumers dev-free and dev-pro, "
        "REDIS_URL defaulting to redis://127.0.0.1:6379/0",
    )
    p.add_argument("--host", help="listen address (default 0.0.0.0; 127.0.0.1 with --dev)")
    p.add_argument("--port", type=int, help="listen port (default $PORT or 8080)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus /metrics port (default $FERRY_METRICS_PORT or 9091; 0: none)",
    )
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="serve model NAME from the predictor at URL (repeatable)",
    )
    p.add_argument(
        "--preview-upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="preview colour of model NAME (repeatable)",
    )
    p.add_argument("--consumers", metavar="FILE", help="consumers YAML (replaces the dev consumers)")
    p.add_argument("--limits", metavar="FILE", help="tiers and per-model overrides YAML")
    p.add_argument("--fail-closed", action="store_true", help="refuse requests (503) while Redis is down")
    p.add_argument("--access-log", action="store_true", help="log one JSON line per request")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        s = config.load(args)
    except ConfigError as exc:
        print(f"ferry-gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure("gateway", s.log_level, quiet=QUIET_LOGGERS)

    import uvicorn
    from ferry_common import metricsport

    from ferry_gateway import metrics
    from ferry_gateway.factory import build_gateway
    from ferry_gateway.server import uvicorn_options

    try:
        app = build_gateway(s)
    except (ValueError, RuntimeError) as exc:
        print(f"ferry-gateway: {exc}", file=sys.stderr)
        return 2
    if s.dev:
        _print_dev_banner(s, app.upstreams.known_models())
    logging.getLogger("ferry_gateway").info(
        "starting", extra={"fields": {"port": s.port, "metrics_port": s.metrics_port, "dev": s.dev}}
    )
    main_server = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",
        server_header=False,
        date_header=False,
        **uvicorn_options(s),  # httptools with header limits, connection limits
    )
    metrics_server = (
        metricsport.config(metricsport.exposition_app(metrics.exposition), host=s.host, port=s.metrics_port)
        if s.metrics_port
        else None
    )
    metricsport.run(main_server, metrics_server)
    return 0


def _print_dev_banner(s: Settings, models: list[str]) -> None:
    lines = [
        f"ferry-gateway (dev) on http://{s.host}:{s.port}  docs: /docs",
        f"  models: {', '.join(models) or '-'}",
        f"  metrics: http://{s.host}:{s.metrics_port}/metrics" if s.metrics_port else "  metrics: off",
    ]
    if not s.consumers_file:
        lines += [f"  dev API key for {name}: {key}" for name, key in DEV_KEYS.items()]
    lines.append("  or a token: TOKEN=$(uv run ferry token --consumer dev-pro)")
    print("\n".join(lines), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
