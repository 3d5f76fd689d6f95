"""REDIS_URL schemes the gateway does not know are refused with a message saying which it does (pure)."""

from __future__ import annotations

import pytest
from ferry_gateway.limits.redis_conn import make_redis


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel"):
        make_redis("memcached://127.0.0.1:11211")
    with pytest.raises(ValueError, match="MASTER"):
        make_redis("redis+sentinel://127.0.0.1:26379")
