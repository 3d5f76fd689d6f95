"""How much they may call: tiers and per-model overrides (``tiers``), the GCRA rate limit and daily
quota in one Redis round trip (``ratelimit``), its response headers, the Redis connections
(``redis_conn``, ``resp``) and the circuit breaker that decides fail-open or fail-closed."""
