"""Build a Gateway from Settings: the one place where configuration becomes objects.

``build_gateway`` reads as its steps: the pepper, who may call (consumers), how tokens are
checked (JWT), that someone can authenticate at all, the limits, the routes and the cluster
watches, then the gateway with its start-up and shutdown hooks. Each step raises ValueError
naming the setting when the configuration is unusable, in that order.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ferry_common.contract import MODEL_DEPLOYMENT

from ferry_gateway.apidocs import fetch_metadata
from ferry_gateway.app import Gateway
from ferry_gateway.auth.apikeys import load_pepper
from ferry_gateway.auth.authenticator import Authenticator, KeySource
from ferry_gateway.auth.devkeys import DEV_AUDIENCE, DEV_ISSUER, dev_jwks
from ferry_gateway.auth.jwks import StaticKeys, UrlKeys
from ferry_gateway.auth.jwt_verify import ASYMMETRIC_ALGORITHMS, JwtSettings
from ferry_gateway.config import DEFAULT_DEV_REDIS_URL, Settings
from ferry_gateway.consumers.k8s_source import KubeAccess, KubeConsumerSource, KubeWatches, ResourceWatch
from ferry_gateway.consumers.registry import ConsumerRegistry, dev_index
from ferry_gateway.limits.ratelimit import RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.pool import UpstreamPool
from ferry_gateway.upstream.routing import Upstreams, parse_upstream

log = logging.getLogger("ferry_gateway")

Hook = Callable[[], Awaitable[None]]


@dataclass
class _Parts:
    """What the steps collect along the way: the cluster watches and the lifecycle hooks."""

    watches: list[ResourceWatch] = field(default_factory=list)
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)


def build_gateway(s: Settings) -> Gateway:
    """Raises ValueError with a message naming the setting when the configuration is unusable."""
    parts = _Parts()
    pepper = _pepper(s)
    consumers, source = _consumers(s, pepper, parts)
    keys, jwt_settings = _jwt(s)
    _require_a_way_to_authenticate(source, consumers, jwt_settings)
    limiter = _limiter(s, parts)
    upstreams, catalog = _routes(s, parts)
    _start_watches(parts)
    if isinstance(keys, UrlKeys):
        parts.shutdown.append(keys.close)
    return Gateway(
        Authenticator(consumers, keys, jwt_settings),
        limiter,
        upstreams,
        UpstreamPool(timeout=s.upstream_timeout),
        max_body_bytes=s.max_body_bytes,
        body_timeout_seconds=s.body_timeout_seconds,
        access_log=s.access_log,
        on_startup=parts.startup,
        on_shutdown=parts.shutdown,
        consumers_ready=source.synced if source is not None else None,  # the catalogue has its own check
        catalog=catalog,
        cors=s.cors,
        docs_fetch=fetch_metadata,
    )


def _pepper(s: Settings) -> bytes:
    try:
        return load_pepper(s.api_key_pepper, s.api_key_pepper_file, s.dev_dir, dev=s.dev)
    except RuntimeError:
        if s.consumers_file:
            raise  # the file's hashes were made with some pepper; without it no key can match
        # JWT-only, or keys that arrive in clear from Secrets: a per-process pepper does the job
        return secrets.token_bytes(32)


def _consumers(
    s: Settings, pepper: bytes, parts: _Parts
) -> tuple[ConsumerRegistry, KubeConsumerSource | None]:
    """The registry, from the cluster, a file, the dev consumers or empty (JWT only)."""
    if s.consumer_namespace:
        consumers = ConsumerRegistry(pepper)
        source = KubeConsumerSource(
            _kube_access(s), s.consumer_namespace, consumers, s.key_secret_selector, s.key_secrets
        )
        parts.watches += source.watches
        return consumers, source
    if s.consumers_file:
        return ConsumerRegistry(pepper, path=Path(s.consumers_file)), None
    if s.dev:
        return ConsumerRegistry(pepper, dev_index(pepper)), None
    return ConsumerRegistry(pepper), None


def _jwt(s: Settings) -> tuple[KeySource | None, JwtSettings | None]:
    """Where signing keys come from and what a token must say; (None, None) without JWTs."""
    keys: KeySource | None = None
    if s.jwks_url:
        keys = UrlKeys(s.jwks_url, ttl=s.jwks_refresh_seconds)
    elif s.jwks_file:
        keys = StaticKeys.from_file(Path(s.jwks_file))
    elif s.dev:
        keys = StaticKeys(dev_jwks(s.dev_dir))
    if keys is None and not s.jwt_hmac_secret:
        return None, None
    if not s.dev and not (s.jwt_issuer and s.jwt_audience):
        # a token minted for another service of the same identity provider must not work here
        raise ValueError("JWT verification needs FERRY_JWT_ISSUER and FERRY_JWT_AUDIENCE")
    jwt_settings = JwtSettings(
        issuer=s.jwt_issuer or (DEV_ISSUER if s.dev else None),
        audience=s.jwt_audience or (DEV_AUDIENCE if s.dev else None),
        algorithms=ASYMMETRIC_ALGORITHMS,
        hmac_secret=s.jwt_hmac_secret.encode() if s.jwt_hmac_secret else None,
        consumer_claim=s.jwt_consumer_claim,
        tier_claim=s.jwt_tier_claim,
        scopes_claim=s.jwt_scopes_claim,
    )
    return keys if keys is not None else StaticKeys({"keys": []}), jwt_settings


def _require_a_way_to_authenticate(
    source: KubeConsumerSource | None, consumers: ConsumerRegistry, jwt_settings: JwtSettings | None
) -> None:
    if source is None and not consumers.all() and jwt_settings is None:
        raise ValueError(
            "no way to authenticate anyone: give --consumers, a JWKS (FERRY_JWKS_URL/FILE), or --dev"
        )


def _limiter(s: Settings, parts: _Parts) -> RateLimiter:
    """Tiers from the limits file, enforced in Redis (or not at all without a REDIS_URL)."""
    limits_raw: Any = None
    if s.limits_file:
        try:
            limits_raw = yaml.safe_load(Path(s.limits_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{s.limits_file}: {exc}") from None
    limits = parse_limits(limits_raw)
    redis_url = s.redis_url or (DEFAULT_DEV_REDIS_URL if s.dev else None)
    redis = make_redis(redis_url) if redis_url else None
    if redis is None:
        log.warning(
            "no REDIS_URL: rate limits are not enforced (fail-%s)", "open" if s.fail_open else "closed"
        )
    else:
        parts.shutdown.append(redis.aclose)
    return RateLimiter(
        redis, limits, fail_open=s.fail_open, redis_time=True
    )  # gateways may disagree on the time


def _routes(s: Settings, parts: _Parts) -> tuple[Upstreams, ModelCatalog | None]:
    """Static NAME=URL routes, or the model namespace's Services steered by ModelDeployment status."""
    active = dict(parse_upstream(u) for u in s.upstreams)
    preview = dict(parse_upstream(u) for u in s.preview_upstreams)
    if not active and not s.namespace:
        raise ValueError("no routes: give --upstream NAME=URL or FERRY_MODEL_NAMESPACE")
    upstreams = Upstreams(active, preview, s.namespace)
    catalog: ModelCatalog | None = None
    if s.namespace and not active and s.kube_reachable:
        catalog = ModelCatalog()
        parts.watches.append(
            ResourceWatch(_kube_access(s), MODEL_DEPLOYMENT.path(s.namespace), catalog.update)
        )
    return upstreams, catalog


def _start_watches(parts: _Parts) -> KubeWatches | None:
    """All cluster watches on one session, started with the server and stopped with it."""
    if not parts.watches:
        return None
    kube = KubeWatches(parts.watches[0].access, parts.watches)

    async def start_watches() -> None:
        kube.start()

    parts.startup.append(start_watches)
    # stop the watches before Redis closes, as before: the shutdown hooks run in this order
    parts.shutdown.insert(0, kube.stop)
    return kube


@functools.cache
def _kube_access(s: Settings) -> KubeAccess:
    """One KubeAccess per configuration, shared by the Consumer and ModelDeployment watches."""
    if s.in_cluster:
        return KubeAccess.in_cluster(s.kubernetes_service_host, s.kubernetes_service_port)
    if not s.kubeconfig:
        raise ValueError("FERRY_CONSUMER_NAMESPACE needs in-cluster credentials or KUBECONFIG")
    return KubeAccess.from_kubeconfig(Path(s.kubeconfig), s.dev_dir / "kube")
