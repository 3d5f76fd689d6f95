"""Gateway settings: from documented environment variables, overridden by command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# name -> what it does; printed by `ferry-gateway --help` so the documentation cannot drift.
ENVIRONMENT: dict[str, str] = {
    "REDIS_URL": "redis://, rediss://, redis+sentinel://H:P[,H:P]/MASTER[/DB] or redis+cluster://H:P",
    "FERRY_RATE_LIMIT_FAILURE_MODE": "open (default: admit when Redis is down) or closed (refuse with 503)",
    "FERRY_CONSUMERS_FILE": "YAML file of consumers (see `ferry keys create`)",
    "FERRY_CONSUMER_NAMESPACE": "watch Consumer resources + labelled key Secrets in this namespace",
    "FERRY_KEY_SECRET_SELECTOR": "label selector of API-key Secrets (default ferry.dev/api-key=true)",
    "FERRY_LIMITS_FILE": "YAML file of tiers and per-model overrides",
    "FERRY_JWKS_URL": "JWKS URL (cached, refreshed on unknown kid)",
    "FERRY_JWKS_FILE": "static JWKS file",
    "FERRY_JWT_ISSUER": "required iss claim (mandatory with a JWKS outside --dev)",
    "FERRY_JWT_AUDIENCE": "required aud claim (mandatory with a JWKS outside --dev)",
    "FERRY_JWT_HMAC_SECRET": "enables HS256 with this shared secret (off unless set)",
    "FERRY_JWT_CONSUMER_CLAIM": "claim naming the consumer (default sub)",
    "FERRY_JWT_TIER_CLAIM": "claim naming the tier (default tier)",
    "FERRY_JWT_SCOPES_CLAIM": "claim holding scopes (default scope)",
    "FERRY_API_KEY_PEPPER / _FILE": "secret keying API-key hashes; needed with FERRY_CONSUMERS_FILE "
    "(--dev: generated in FERRY_DEV_DIR)",
    "FERRY_DEV_DIR": "dev key pair and pepper, created on first use (default .local/gateway)",
    "FERRY_UPSTREAMS": "comma-separated NAME=URL (active colour)",
    "FERRY_PREVIEW_UPSTREAMS": "comma-separated NAME=URL (preview colour)",
    "FERRY_MODEL_NAMESPACE": "route NAME to http://NAME[-preview].NS.svc.cluster.local; in a cluster (or "
    "with KUBECONFIG) also watch ModelDeployments there for GET /v1/models and 404s",
    "FERRY_UPSTREAM_TIMEOUT": "seconds before 504 (default 30)",
    "FERRY_MAX_BODY_BYTES": "request body limit (default 10485760)",
    "FERRY_ACCESS_LOG": "true: one JSON line per request",
    "FERRY_LOG_LEVEL": "debug, info (default), warning",
    "PORT": "listen port (default 8080)",
}


@dataclass
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    dev: bool = False
    redis_url: str | None = None
    fail_open: bool = True
    consumers_file: str | None = None
    consumer_namespace: str | None = None
    key_secret_selector: str = "ferry.dev/api-key=true"
    limits_file: str | None = None
    jwks_url: str | None = None
    jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_hmac_secret: str | None = None
    jwt_consumer_claim: str = "sub"
    jwt_tier_claim: str = "tier"
    jwt_scopes_claim: str = "scope"
    upstreams: list[str] = field(default_factory=list)
    preview_upstreams: list[str] = field(default_factory=list)
    namespace: str | None = None
    upstream_timeout: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    access_log: bool = False
    log_level: str = "info"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def from_env(env: Mapping[str, str] = os.environ) -> Settings:
    mode = env.get("FERRY_RATE_LIMIT_FAILURE_MODE", "open").lower()
    if mode not in ("open", "closed"):
        raise ValueError(f"FERRY_RATE_LIMIT_FAILURE_MODE={mode!r}: must be open or closed")
    try:
        return Settings(
            port=int(env.get("PORT", "8080")),
            redis_url=env.get("REDIS_URL"),
            fail_open=mode == "open",
            consumers_file=env.get("FERRY_CONSUMERS_FILE"),
            consumer_namespace=env.get("FERRY_CONSUMER_NAMESPACE"),
            key_secret_selector=env.get("FERRY_KEY_SECRET_SELECTOR", "ferry.dev/api-key=true"),
            limits_file=env.get("FERRY_LIMITS_FILE"),
            jwks_url=env.get("FERRY_JWKS_URL"),
            jwks_file=env.get("FERRY_JWKS_FILE"),
            jwt_issuer=env.get("FERRY_JWT_ISSUER"),
            jwt_audience=env.get("FERRY_JWT_AUDIENCE"),
            jwt_hmac_secret=env.get("FERRY_JWT_HMAC_SECRET"),
            jwt_consumer_claim=env.get("FERRY_JWT_CONSUMER_CLAIM", "sub"),
            jwt_tier_claim=env.get("FERRY_JWT_TIER_CLAIM", "tier"),
            jwt_scopes_claim=env.get("FERRY_JWT_SCOPES_CLAIM", "scope"),
            upstreams=_split(env.get("FERRY_UPSTREAMS")),
            preview_upstreams=_split(env.get("FERRY_PREVIEW_UPSTREAMS")),
            namespace=env.get("FERRY_MODEL_NAMESPACE"),
            upstream_timeout=float(env.get("FERRY_UPSTREAM_TIMEOUT", "30")),
            max_body_bytes=int(env.get("FERRY_MAX_BODY_BYTES", str(10 * 1024 * 1024))),
            access_log=env.get("FERRY_ACCESS_LOG", "").lower() in ("1", "true", "yes"),
            log_level=env.get("FERRY_LOG_LEVEL", "info"),
        )
    except ValueError as exc:
        raise ValueError(f"invalid environment: {exc}") from None
