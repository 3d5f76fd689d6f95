"""Gateway configuration: one table of documented environment variables, overridden by flags.

``load`` reads the whole table (the only place the gateway reads its environment), applies the
command-line flags over it and returns a frozen ``Settings``; a bad value raises
``ConfigError`` naming the variable, which ``ferry-gateway`` turns into exit status 2 before any
server starts. ``ferry-gateway --help`` and ``ferry --help`` print this same table.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry_common import envconfig
from ferry_common.contract import API_KEY_SELECTOR, MAX_BODY_BYTES
from ferry_common.envconfig import ConfigError, Var

from ferry_gateway.edge import cors as edge_cors
from ferry_gateway.edge.cors import CorsPolicy

__all__ = ["CLI_ENVIRONMENT", "ENVIRONMENT", "ConfigError", "Settings", "load"]

# the predictors' own limit (ferry_common.contract): a larger one would bill bodies they refuse
DEFAULT_MAX_BODY_BYTES = MAX_BODY_BYTES
# Connection limits (issue 13, finding 7): see ferry_gateway.server for what each bounds.
DEFAULT_LIMIT_CONCURRENCY = 1000
# longer than an Ingress controller keeps idle upstream connections (ingress-nginx: 60 s), so the
# proxy never reuses one the gateway has just closed (a 502 for a prediction it will not retry)
DEFAULT_KEEP_ALIVE_SECONDS = 75.0
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 20
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_DEV_DIR = ".local/gateway"
DEFAULT_DEV_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CONSUMERS_FILE = "consumers.yaml"  # what `ferry keys` edits when neither --file nor the variable says


def _https_url(raw: str) -> str:
    """The JWKS URL: https only. Keys fetched in clear could be swapped by anyone on the path,
    and whoever holds a key mints any token. (Tests serving a JWKS on loopback build UrlKeys
    directly; nothing in --dev fetches one.)"""
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() != "https" or not rest:
        raise ValueError("must be an https:// URL (keys fetched over plain http can be swapped in transit)")
    return raw


def _failure_mode(raw: str) -> bool:
    """True for fail-open."""
    return envconfig.choice("open", "closed")(raw) == "open"


# 9090 is the operator's.
DEFAULT_METRICS_PORT = 9091

# Every variable the gateway (and the `ferry` CLI) reads, once: printed by `--help`.
ENVIRONMENT: tuple[Var, ...] = (
    Var(
        "REDIS_URL",
        "redis://, rediss://, redis+sentinel://H:P[,H:P]/MASTER[/DB] or redis+cluster://H:P "
        f"(--dev: {DEFAULT_DEV_REDIS_URL})",
    ),
    Var(
        "FERRY_RATE_LIMIT_FAILURE_MODE",
        "open (admit when Redis is down) or closed (refuse with 503)",
        "open",
        _failure_mode,
    ),
    Var("FERRY_CONSUMERS_FILE", "YAML file of consumers (see `ferry keys create`)"),
    Var("FERRY_CONSUMER_NAMESPACE", "watch Consumer resources (and their key Secrets) in this namespace"),
    Var(
        "FERRY_KEY_SECRETS",
        "also read keys from labelled Secrets (needs list/watch on every Secret of the namespace); "
        "false: only hashes inline in the Consumers",
        "true",
        envconfig.boolean,
    ),
    Var("FERRY_KEY_SECRET_SELECTOR", "label selector of API-key Secrets", API_KEY_SELECTOR),
    Var("FERRY_LIMITS_FILE", "YAML file of tiers and per-model overrides"),
    Var(
        "FERRY_JWKS_URL",
        "https:// JWKS URL (cached, refreshed every FERRY_JWKS_REFRESH_SECONDS and on unknown kid)",
        parse=_https_url,
    ),
    Var(
        "FERRY_JWKS_REFRESH_SECONDS",
        "how often the JWKS URL is refetched: a key removed there stops its tokens within this",
        "300",
        envconfig.positive_float,
    ),
    Var("FERRY_JWKS_FILE", "static JWKS file"),
    Var("FERRY_JWT_ISSUER", "required iss claim (mandatory with a JWKS outside --dev)"),
    Var("FERRY_JWT_AUDIENCE", "required aud claim (mandatory with a JWKS outside --dev)"),
    Var("FERRY_JWT_HMAC_SECRET", "enables HS256 with this shared secret (off unless set)", secret=True),
    Var("FERRY_JWT_CONSUMER_CLAIM", "claim naming the consumer", "sub"),
    Var("FERRY_JWT_TIER_CLAIM", "claim naming the tier", "tier"),
    Var("FERRY_JWT_SCOPES_CLAIM", "claim holding scopes", "scope"),
    Var(
        "FERRY_API_KEY_PEPPER",
        "secret keying API-key hashes; needed with FERRY_CONSUMERS_FILE (--dev: generated in FERRY_DEV_DIR)",
        secret=True,
    ),
    Var("FERRY_API_KEY_PEPPER_FILE", "file holding FERRY_API_KEY_PEPPER (a mounted Secret)"),
    Var("FERRY_DEV_DIR", "dev key pair and pepper, created on first use", DEFAULT_DEV_DIR),
    Var("FERRY_UPSTREAMS", "comma-separated NAME=URL (active colour)", parse=envconfig.csv),
    Var("FERRY_PREVIEW_UPSTREAMS", "comma-separated NAME=URL (preview colour)", parse=envconfig.csv),
    Var(
        "FERRY_MODEL_NAMESPACE",
        "route NAME to http://NAME[-preview].NS.svc.cluster.local; in a cluster (or with KUBECONFIG) "
        "also watch ModelDeployments there for GET /v1/models and 404s",
    ),
    Var("FERRY_UPSTREAM_TIMEOUT", "seconds before 504", "30", envconfig.positive_float),
    Var(
        "FERRY_MAX_BODY_BYTES",
        "request body limit, checked before any quota is spent (keep it at most the predictors' "
        f"{MAX_BODY_BYTES})",
        str(DEFAULT_MAX_BODY_BYTES),
        envconfig.positive_int,
    ),
    Var(
        "FERRY_BODY_TIMEOUT_SECONDS",
        "seconds a client has to send its whole request body, else 408 (no quota spent)",
        f"{DEFAULT_BODY_TIMEOUT_SECONDS:g}",
        envconfig.positive_float,
    ),
    Var(
        "FERRY_HEADER_TIMEOUT_SECONDS",
        "seconds a client has, from connecting or from its next request's first byte, to send the "
        "request line and headers; then 408 and the connection is closed",
        f"{DEFAULT_HEADER_TIMEOUT_SECONDS:g}",
        envconfig.positive_float,
    ),
    Var(
        "FERRY_MAX_HEADER_BYTES",
        "largest request line plus headers; larger: 413 and the connection is closed",
        str(DEFAULT_MAX_HEADER_BYTES),
        envconfig.positive_int,
    ),
    Var(
        "FERRY_LIMIT_CONCURRENCY",
        "open connections (idle ones included) plus requests in flight one gateway process takes; "
        "past it a request gets 503 (SERVICE_UNAVAILABLE, Retry-After: 1) at once",
        str(DEFAULT_LIMIT_CONCURRENCY),
        envconfig.positive_int,
    ),
    Var(
        "FERRY_KEEP_ALIVE_SECONDS",
        "seconds an idle keep-alive connection is kept between requests",
        f"{DEFAULT_KEEP_ALIVE_SECONDS:g}",
        envconfig.positive_float,
    ),
    Var(
        "FERRY_SHUTDOWN_TIMEOUT_SECONDS",
        "on SIGTERM: seconds to finish the requests in flight (no new ones are accepted, idle "
        "keep-alive connections are closed) before exiting",
        str(DEFAULT_SHUTDOWN_TIMEOUT_SECONDS),
        envconfig.positive_int,
    ),
    Var("FERRY_ACCESS_LOG", "true: one JSON line per request", "false", envconfig.boolean),
    Var(
        "FERRY_LOG_LEVEL",
        "debug, info, warning or error",
        "info",
        envconfig.choice("debug", "info", "warning", "error"),
    ),
    Var(
        "FERRY_CORS_ALLOW_ORIGINS",
        "comma-separated origins browser pages may call from: scheme://host[:port], scheme://host:* "
        f"(any port) or * (none when unset; --dev: {','.join(edge_cors.DEV_ORIGINS)})",
        parse=edge_cors.parse_origins,
    ),
    Var(
        "FERRY_CORS_ALLOW_METHODS",
        "methods a page may use",
        ",".join(edge_cors.DEFAULT_METHODS),
        edge_cors.parse_tokens,
    ),
    Var(
        "FERRY_CORS_ALLOW_HEADERS",
        "request headers a page may send",
        ",".join(edge_cors.DEFAULT_ALLOW_HEADERS),
        edge_cors.parse_tokens,
    ),
    Var(
        "FERRY_CORS_EXPOSE_HEADERS",
        "response headers a page may read",
        ",".join(edge_cors.DEFAULT_EXPOSE_HEADERS),
        edge_cors.parse_tokens,
    ),
    Var(
        "FERRY_CORS_ALLOW_CREDENTIALS",
        "true: pages may send cookies/HTTP auth (origins echoed; refused with *)",
        "false",
        envconfig.boolean,
    ),
    Var(
        "FERRY_CORS_MAX_AGE",
        "seconds a browser may cache a preflight answer",
        str(edge_cors.DEFAULT_MAX_AGE),
        envconfig.non_negative_int,
    ),
    Var("PORT", "listen port", "8080", envconfig.port),
    Var(
        "FERRY_METRICS_PORT",
        "Prometheus /metrics port, never the listen port (consumer names, upstream URLs); 0: none",
        str(DEFAULT_METRICS_PORT),
        envconfig.port,
    ),
    Var("KUBERNETES_SERVICE_HOST", "set by Kubernetes in a pod: use the pod's service account"),
    Var("KUBERNETES_SERVICE_PORT", "set by Kubernetes in a pod", "443", envconfig.port),
    Var("KUBECONFIG", "outside a pod: the cluster to watch Consumers and ModelDeployments in"),
)

# The part of the table the `ferry` CLI reads (keys and dev tokens), for its --help.
CLI_ENVIRONMENT: tuple[Var, ...] = tuple(
    v
    for v in ENVIRONMENT
    if v.name
    in ("FERRY_CONSUMERS_FILE", "FERRY_API_KEY_PEPPER", "FERRY_API_KEY_PEPPER_FILE", "FERRY_DEV_DIR")
)


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = DEFAULT_METRICS_PORT
    dev: bool = False
    redis_url: str | None = None
    fail_open: bool = True
    consumers_file: str | None = None
    consumer_namespace: str | None = None
    key_secret_selector: str = API_KEY_SELECTOR
    key_secrets: bool = True
    limits_file: str | None = None
    jwks_url: str | None = None
    jwks_refresh_seconds: float = 300.0
    jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_hmac_secret: str | None = None
    jwt_consumer_claim: str = "sub"
    jwt_tier_claim: str = "tier"
    jwt_scopes_claim: str = "scope"
    api_key_pepper: str | None = None
    api_key_pepper_file: str | None = None
    dev_dir: Path = Path(DEFAULT_DEV_DIR)
    upstreams: tuple[str, ...] = ()
    preview_upstreams: tuple[str, ...] = ()
    namespace: str | None = None
    upstream_timeout: float = 30.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY
    keep_alive_seconds: float = DEFAULT_KEEP_ALIVE_SECONDS
    shutdown_timeout_seconds: int = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
    access_log: bool = False
    log_level: str = "info"
    kubernetes_service_host: str | None = None
    kubernetes_service_port: int = 443
    kubeconfig: str | None = None
    cors: CorsPolicy = field(default_factory=CorsPolicy)

    @property
    def in_cluster(self) -> bool:
        return bool(self.kubernetes_service_host)

    @property
    def kube_reachable(self) -> bool:
        """In a pod, or pointed at a cluster with KUBECONFIG."""
        return self.in_cluster or bool(self.kubeconfig)


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The environment (``environ``, else the process's) with ``ferry-gateway``'s flags over it.

    Raises ConfigError naming the variable for a bad value.
    """
    env = envconfig.load(ENVIRONMENT, envconfig.environment() if environ is None else environ)
    flags = args if args is not None else argparse.Namespace()
    dev = bool(getattr(flags, "dev", False))
    port = getattr(flags, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError("--port", f"{port}: must be a port number, 0-65535")
    host = getattr(flags, "host", None) or ("127.0.0.1" if dev else "0.0.0.0")
    metrics_port = getattr(flags, "metrics_port", None)
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise ConfigError("--metrics-port", f"{metrics_port}: must be a port number, 0-65535")
    named = "--metrics-port" if metrics_port is not None else "FERRY_METRICS_PORT"
    if metrics_port is None:
        metrics_port = env["FERRY_METRICS_PORT"]
    if metrics_port and metrics_port == (port or env["PORT"]):
        raise ConfigError(
            named,
            f"{metrics_port}: must differ from the listen port (metrics are not for callers)",
        )
    return Settings(
        host=host,
        port=port or env["PORT"],
        metrics_port=metrics_port,
        dev=dev,
        redis_url=env["REDIS_URL"],
        fail_open=env["FERRY_RATE_LIMIT_FAILURE_MODE"] and not getattr(flags, "fail_closed", False),
        consumers_file=getattr(flags, "consumers", None) or env["FERRY_CONSUMERS_FILE"],
        consumer_namespace=env["FERRY_CONSUMER_NAMESPACE"],
        key_secret_selector=env["FERRY_KEY_SECRET_SELECTOR"],
        key_secrets=env["FERRY_KEY_SECRETS"],
        limits_file=getattr(flags, "limits", None) or env["FERRY_LIMITS_FILE"],
        jwks_url=env["FERRY_JWKS_URL"],
        jwks_refresh_seconds=env["FERRY_JWKS_REFRESH_SECONDS"],
        jwks_file=env["FERRY_JWKS_FILE"],
        jwt_issuer=env["FERRY_JWT_ISSUER"],
        jwt_audience=env["FERRY_JWT_AUDIENCE"],
        jwt_hmac_secret=env["FERRY_JWT_HMAC_SECRET"],
        jwt_consumer_claim=env["FERRY_JWT_CONSUMER_CLAIM"],
        jwt_tier_claim=env["FERRY_JWT_TIER_CLAIM"],
        jwt_scopes_claim=env["FERRY_JWT_SCOPES_CLAIM"],
        api_key_pepper=env["FERRY_API_KEY_PEPPER"],
        api_key_pepper_file=env["FERRY_API_KEY_PEPPER_FILE"],
        dev_dir=Path(env["FERRY_DEV_DIR"]),
        # the flags add routes to the environment's rather than replacing them
        upstreams=(*(env["FERRY_UPSTREAMS"] or ()), *getattr(flags, "upstream", [])),
        preview_upstreams=(*(env["FERRY_PREVIEW_UPSTREAMS"] or ()), *getattr(flags, "preview_upstream", [])),
        namespace=env["FERRY_MODEL_NAMESPACE"],
        upstream_timeout=env["FERRY_UPSTREAM_TIMEOUT"],
        max_body_bytes=env["FERRY_MAX_BODY_BYTES"],
        body_timeout_seconds=env["FERRY_BODY_TIMEOUT_SECONDS"],
        header_timeout_seconds=env["FERRY_HEADER_TIMEOUT_SECONDS"],
        max_header_bytes=env["FERRY_MAX_HEADER_BYTES"],
        limit_concurrency=env["FERRY_LIMIT_CONCURRENCY"],
        keep_alive_seconds=env["FERRY_KEEP_ALIVE_SECONDS"],
        shutdown_timeout_seconds=env["FERRY_SHUTDOWN_TIMEOUT_SECONDS"],
        access_log=env["FERRY_ACCESS_LOG"] or bool(getattr(flags, "access_log", False)),
        log_level=env["FERRY_LOG_LEVEL"],
        kubernetes_service_host=env["KUBERNETES_SERVICE_HOST"],
        kubernetes_service_port=env["KUBERNETES_SERVICE_PORT"],
        kubeconfig=env["KUBECONFIG"],
        cors=_cors(env, dev),
    )


def _cors(env: Mapping[str, Any], dev: bool) -> CorsPolicy:
    """The CORS policy; `*` with credentials is refused here, naming the variable."""
    origins = env["FERRY_CORS_ALLOW_ORIGINS"]
    if origins is None:
        origins = edge_cors.DEV_ORIGINS if dev else ()
    try:
        return edge_cors.parse_policy(
            origins,
            methods=env["FERRY_CORS_ALLOW_METHODS"],
            allow_headers=env["FERRY_CORS_ALLOW_HEADERS"],
            expose_headers=env["FERRY_CORS_EXPOSE_HEADERS"],
            credentials=bool(env["FERRY_CORS_ALLOW_CREDENTIALS"]),
            max_age=env["FERRY_CORS_MAX_AGE"],
        )
    except edge_cors.CredentialsWithWildcard:
        raise ConfigError(
            "FERRY_CORS_ALLOW_CREDENTIALS",
            "true cannot be combined with FERRY_CORS_ALLOW_ORIGINS='*' (browsers refuse a wildcard "
            "with credentials); list the origins instead",
        ) from None


def help_text(table: tuple[Var, ...] = ENVIRONMENT) -> str:
    return envconfig.help_text(table, "environment variables")
