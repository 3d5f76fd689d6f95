"""One Redis client from one URL: plain, TLS, Sentinel or Cluster.

Plain and TLS URLs get the pipelined client in resp.py (the hot path); Sentinel and Cluster get
redis-py, which follows their topology.

Timeouts are short on purpose: the limiter sits on every request, and a Redis that does not
answer within them is treated as down (the breaker then stops trying for a while).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from ferry_gateway.limits.resp import PipelinedRedis

SOCKET_TIMEOUT = 0.25
CONNECT_TIMEOUT = 0.25


def _hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":")
        hosts.append((host or part, int(port) if host else 26379))
    return hosts


def make_redis(url: str) -> Any:
    opts: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}
    parts = urlsplit(url)
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        # redis+sentinel://[:PASSWORD@]H1:P1,H2:P2/MASTER[/DB]
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError(f"REDIS_URL {parts.scheme}://...: the path must name the master: /MASTER[/DB]")
        master = segments[0]
        db = int(segments[1]) if len(segments) > 1 else 0
        sentinel = Sentinel(
            _hosts(parts.netloc),
            sentinel_kwargs={"password": parts.password, **opts},
            password=parts.password,
            db=db,
            ssl=parts.scheme.startswith("rediss"),
            **opts,
        )
        return sentinel.master_for(master)
    if parts.scheme in ("redis+cluster", "rediss+cluster"):
        plain = url.replace("+cluster", "", 1)
        return RedisCluster.from_url(plain, **opts)
    if parts.scheme in ("redis", "rediss"):
        return PipelinedRedis(url, SOCKET_TIMEOUT, CONNECT_TIMEOUT)
    if parts.scheme == "unix":
        return aioredis.from_url(url, **opts)
    raise ValueError(f"REDIS_URL scheme {parts.scheme!r}: use redis, rediss, redis+sentinel or redis+cluster")
