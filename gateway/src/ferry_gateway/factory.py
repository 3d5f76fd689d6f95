"""Build a Gateway from Settings: the one place where configuration becomes objects."""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from ferry_gateway.auth.apikeys import dev_dir, load_pepper
from ferry_gateway.app import Gateway
from ferry_gateway.auth.authenticator import Authenticator, KeySource
from ferry_gateway.upstream.catalog import MD_GROUP, MD_PLURAL, MD_VERSION, ModelCatalog
from ferry_gateway.consumers.registry import ConsumerRegistry, dev_index
from ferry_gateway.auth.devkeys import DEV_AUDIENCE, DEV_ISSUER, dev_jwks
from ferry_gateway.auth.jwks import StaticKeys, UrlKeys
from ferry_gateway.auth.jwt_verify import ASYMMETRIC_ALGORITHMS, JwtSettings
from ferry_gateway.consumers.k8s_source import KubeAccess, KubeConsumerSource, KubeWatches, ResourceWatch
from ferry_gateway.limits.ratelimit import RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.upstream.routing import Upstreams, parse_upstream
from ferry_gateway.config import Settings
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.pool import UpstreamPool

log = logging.getLogger("ferry_gateway")


def build_gateway(s: Settings) -> Gateway:
    """Raises ValueError with a message naming the setting when the configuration is unusable."""
    try:
        pepper = load_pepper(dev=s.dev)
    except RuntimeError:
        if s.consumers_file:
            raise  # the file's hashes were made with some pepper; without it no key can match
        # JWT-only, or keys that arrive in clear from Secrets: a per-process pepper does the job
        pepper = secrets.token_bytes(32)
    startup: list[Callable[[], Awaitable[None]]] = []
    shutdown: list[Callable[[], Awaitable[None]]] = []
    watches: list[ResourceWatch] = []
    source: KubeConsumerSource | None = None
    if s.consumer_namespace:
        consumers = ConsumerRegistry(pepper)
        source = KubeConsumerSource(_kube_access(), s.consumer_namespace, consumers, s.key_secret_selector)
        watches += source.watches
    elif s.consumers_file:
        consumers = ConsumerRegistry(pepper, path=Path(s.consumers_file))
    elif s.dev:
        consumers = ConsumerRegistry(pepper, dev_index(pepper))
    else:
        consumers = ConsumerRegistry(pepper)

    keys: KeySource | None = None
    if s.jwks_url:
        keys = UrlKeys(s.jwks_url)
    elif s.jwks_file:
        keys = StaticKeys.from_file(Path(s.jwks_file))
    elif s.dev:
        keys = StaticKeys(dev_jwks())
    jwt_settings = None
    if (keys is not None or s.jwt_hmac_secret) and not s.dev and not (s.jwt_issuer and s.jwt_audience):
        # a token minted for another service of the same identity provider must not work here
        raise ValueError("JWT verification needs FERRY_JWT_ISSUER and FERRY_JWT_AUDIENCE")
    if keys is not None or s.jwt_hmac_secret:
        jwt_settings = JwtSettings(
            issuer=s.jwt_issuer or (DEV_ISSUER if s.dev else None),
            audience=s.jwt_audience or (DEV_AUDIENCE if s.dev else None),
            algorithms=ASYMMETRIC_ALGORITHMS,
            hmac_secret=s.jwt_hmac_secret.encode() if s.jwt_hmac_secret else None,
            consumer_claim=s.jwt_consumer_claim,
            tier_claim=s.jwt_tier_claim,
            scopes_claim=s.jwt_scopes_claim,
        )
        if keys is None:
            keys = StaticKeys({"keys": []})
    if source is None and not consumers.all() and jwt_settings is None:
        raise ValueError(
            "no way to authenticate anyone: give --consumers, a JWKS (FERRY_JWKS_URL/FILE), or --dev"
        )

    limits_raw = None
    if s.limits_file:
        try:
            limits_raw = yaml.safe_load(Path(s.limits_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{s.limits_file}: {exc}") from None
    limits = parse_limits(limits_raw)

    redis_url = s.redis_url or ("redis://127.0.0.1:6379/0" if s.dev else None)
    redis = make_redis(redis_url) if redis_url else None
    if redis is None:
        log.warning(
            "no REDIS_URL: rate limits are not enforced (fail-%s)", "open" if s.fail_open else "closed"
        )
    limiter = RateLimiter(redis, limits, fail_open=s.fail_open)

    active = dict(parse_upstream(u) for u in s.upstreams)
    preview = dict(parse_upstream(u) for u in s.preview_upstreams)
    if not active and not s.namespace:
        raise ValueError("no routes: give --upstream NAME=URL or FERRY_MODEL_NAMESPACE")
    upstreams = Upstreams(active, preview, s.namespace)
    catalog: ModelCatalog | None = None
    if s.namespace and not active and _kube_reachable():
        catalog = ModelCatalog()
        path = f"/apis/{MD_GROUP}/{MD_VERSION}/namespaces/{s.namespace}/{MD_PLURAL}"
        watches.append(ResourceWatch(_kube_access(), path, catalog.update))
    kube: KubeWatches | None = None
    if watches:
        kube = KubeWatches(watches[0].access, watches)

        async def start_watches() -> None:
            assert kube is not None
            kube.start()

        startup.append(start_watches)
        shutdown.append(kube.stop)

    if redis is not None:
        shutdown.append(redis.aclose)
    if isinstance(keys, UrlKeys):
        shutdown.append(keys.close)
    return Gateway(
        Authenticator(consumers, keys, jwt_settings),
        limiter,
        upstreams,
        UpstreamPool(timeout=s.upstream_timeout),
        max_body_bytes=s.max_body_bytes,
        access_log=s.access_log,
        on_startup=startup,
        on_shutdown=shutdown,
        consumers_ready=kube.synced if kube is not None else None,
        catalog=catalog,
    )


def _kube_reachable() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG"))


@functools.cache
def _kube_access() -> KubeAccess:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubeAccess.in_cluster()
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        raise ValueError("FERRY_CONSUMER_NAMESPACE needs in-cluster credentials or KUBECONFIG")
    return KubeAccess.from_kubeconfig(Path(kubeconfig), dev_dir() / "kube")
