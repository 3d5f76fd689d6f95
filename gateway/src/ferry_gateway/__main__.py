"""``ferry-gateway``: run the gateway (in a cluster from environment variables, or ``--dev``)."""

from __future__ import annotations

import argparse
import logging
import sys

from ferry_gateway.edge import logs
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_gateway.config import ENVIRONMENT, from_env


def parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {k:<30} {v}" for k, v in ENVIRONMENT.items())
    p = argparse.ArgumentParser(
        prog="ferry-gateway",
        description="Ferry's gateway: authenticates callers, applies Redis rate limits and quotas, "
        "and routes model calls to predictors. Flags override the environment variables below.",
        epilog="environment variables:\n" + env_help,
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
        s = from_env()
    except ValueError as exc:
        print(f"ferry-gateway: {exc}", file=sys.stderr)
        return 2
    s.dev = args.dev
    if args.host:
        s.host = args.host
    elif args.dev:
        s.host = "127.0.0.1"
    if args.port:
        s.port = args.port
    s.upstreams += args.upstream
    s.preview_upstreams += args.preview_upstream
    s.consumers_file = args.consumers or s.consumers_file
    s.limits_file = args.limits or s.limits_file
    s.fail_open = s.fail_open and not args.fail_closed
    s.access_log = s.access_log or args.access_log
    logs.configure(s.log_level)

    import uvicorn

    from ferry_gateway.factory import build_gateway

    try:
        app = build_gateway(s)
    except (ValueError, RuntimeError) as exc:
        print(f"ferry-gateway: {exc}", file=sys.stderr)
        return 2
    if s.dev:
        lines = [
            f"ferry-gateway (dev) on http://{s.host}:{s.port}  docs: /docs",
            f"  models: {', '.join(app.upstreams.known_models()) or '-'}",
        ]
        if not s.consumers_file:
            lines += [f"  dev API key for {name}: {key}" for name, key in DEV_KEYS.items()]
        lines.append("  or a token: TOKEN=$(uv run ferry token --consumer dev-pro)")
        print("\n".join(lines), file=sys.stderr, flush=True)
    logging.getLogger("ferry_gateway").info("starting", extra={"fields": {"port": s.port, "dev": s.dev}})
    uvicorn.run(
        app,
        host=s.host,
        port=s.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        server_header=False,
        date_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
