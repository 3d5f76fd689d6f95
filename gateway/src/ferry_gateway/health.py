"""Health the way the Kubernetes API server reports it (pure: the checks' results come in as data).

``/livez`` says the process serves at all (no dependency is consulted: restarting a pod because
Redis is down would not bring Redis back). ``/readyz`` runs the named checks that apply in this
gateway's mode and answers like kube-apiserver: ``ok`` (200), or with ``?verbose`` one line per
check (``[+]redis ok`` / ``[-]redis failed: reason``) and ``readyz check passed``; on failure
always verbose, ``readyz check failed``, 503. ``?exclude=NAME`` (repeatable) skips a check, shown
as ``[+]NAME excluded: ok``; ``/readyz/NAME`` runs one check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

REDIS = "redis"
CONSUMERS_SYNCED = "consumers-synced"
CATALOGUE_SYNCED = "catalogue-synced"
PING = "ping"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str = ""  # why it failed, or a note on a check that passes degraded


@dataclass(frozen=True)
class Observed:
    """What the gateway knows about its dependencies; None: that dependency is not used in this mode."""

    redis_up: bool = True
    fail_open: bool = True
    redis_configured: bool = True  # False: no REDIS_URL, so limits can never be enforced
    consumers_synced: bool | None = None  # None: consumers do not come from the cluster
    catalogue_synced: bool | None = None  # None: no ModelDeployment watch (static upstreams)
    redis_why: str = ""  # why limits cannot be enforced now (e.g. the limiter's breaker is open)


def readiness_checks(observed: Observed) -> list[Check]:
    """The readiness checks of this mode. A down Redis fails only a fail-closed gateway: failing
    open means serving without limits, which is ready (the line says so)."""
    checks = [_redis(observed)]
    if observed.consumers_synced is not None:
        pending = "" if observed.consumers_synced else "first list of Consumers and key Secrets pending"
        checks.append(Check(CONSUMERS_SYNCED, observed.consumers_synced, pending))
    if observed.catalogue_synced is not None:
        pending = "" if observed.catalogue_synced else "first list of ModelDeployments pending"
        checks.append(Check(CATALOGUE_SYNCED, observed.catalogue_synced, pending))
    return checks


def _redis(observed: Observed) -> Check:
    if observed.redis_configured and observed.redis_up:
        return Check(REDIS, True)
    why = observed.redis_why or (
        "unreachable" if observed.redis_configured else "not configured (no REDIS_URL)"
    )
    if observed.fail_open:
        return Check(REDIS, True, f"{why}, admitting without rate limits (fail-open)")
    return Check(REDIS, False, f"{why} and the rate limiter fails closed")


def liveness_checks() -> list[Check]:
    return [Check(PING, True)]


@dataclass(frozen=True)
class Query:
    verbose: bool = False
    exclude: frozenset[str] = field(default_factory=frozenset)


def parse_query(query_string: bytes) -> Query:
    """``verbose`` (any value, or none) and ``exclude=NAME`` (repeatable), as kube-apiserver reads them."""
    params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    return Query("verbose" in params, frozenset(params.get("exclude", ())))


@dataclass(frozen=True)
class Report:
    status: int
    text: str


def report(endpoint: str, checks: Sequence[Check], query: Query) -> Report:
    """The whole answer of ``/livez`` or ``/readyz`` (``endpoint`` is "livez" or "readyz")."""
    lines: list[str] = []
    failed = False
    excluded = set(query.exclude)
    for check in checks:
        if check.name in excluded:
            excluded.discard(check.name)
            lines.append(f"[+]{check.name} excluded: ok")
        elif check.ok:
            lines.append(f"[+]{check.name} ok" + (f": {check.reason}" if check.reason else ""))
        else:
            failed = True
            lines.append(f"[-]{check.name} failed: {check.reason or 'reason unknown'}")
    if excluded:
        names = ",".join(f'"{n}"' for n in sorted(excluded))
        lines.append(f"warn: some health checks cannot be excluded: no matches for {names}")
    if failed:
        return Report(503, "\n".join([*lines, f"{endpoint} check failed"]) + "\n")
    if not query.verbose:
        return Report(200, "ok")
    return Report(200, "\n".join([*lines, f"{endpoint} check passed"]) + "\n")


def single(checks: Iterable[Check], name: str) -> Report | None:
    """``/readyz/NAME``: one check; None when there is no check of that name."""
    for check in checks:
        if check.name == name:
            if check.ok:
                return Report(200, "ok")
            return Report(503, f"internal server error: {check.name} failed: {check.reason}")
    return None


def failures(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]
