"""/livez and /readyz as kube-apiserver answers them (pure): which checks a mode has, and the text."""

from __future__ import annotations

import pytest
from ferry_gateway.health import (
    CATALOGUE_SYNCED,
    CONSUMERS_SYNCED,
    REDIS,
    Check,
    Observed,
    Query,
    Report,
    liveness_checks,
    parse_query,
    readiness_checks,
    report,
    single,
)
from hypothesis import given
from hypothesis import strategies as st


def names(o: Observed) -> list[str]:
    return [c.name for c in readiness_checks(o)]


def test_only_the_checks_of_the_mode() -> None:
    assert names(Observed()) == [REDIS]  # static upstreams, consumers from a file
    assert names(Observed(catalogue_synced=True)) == [REDIS, CATALOGUE_SYNCED]
    assert names(Observed(consumers_synced=False, catalogue_synced=True)) == [
        REDIS,
        CONSUMERS_SYNCED,
        CATALOGUE_SYNCED,
    ]


@pytest.mark.parametrize(
    ("observed", "ok", "reason"),
    [
        (Observed(redis_up=True), True, ""),
        (
            Observed(redis_up=False, fail_open=True),
            True,
            "unreachable, admitting without rate limits (fail-open)",
        ),
        (Observed(redis_up=False, fail_open=False), False, "unreachable and the rate limiter fails closed"),
        (
            Observed(redis_up=False, redis_configured=False, fail_open=True),
            True,
            "not configured (no REDIS_URL), admitting without rate limits (fail-open)",
        ),
        (
            Observed(redis_up=False, redis_configured=False, fail_open=False),
            False,
            "not configured (no REDIS_URL) and the rate limiter fails closed",
        ),
    ],
)
def test_a_down_redis_fails_readiness_only_when_failing_closed(
    observed: Observed, ok: bool, reason: str
) -> None:
    assert readiness_checks(observed)[0] == Check(REDIS, ok, reason)


def test_passing_answers_ok_or_the_verbose_list() -> None:
    checks = readiness_checks(Observed(consumers_synced=True, catalogue_synced=True))
    assert report("readyz", checks, Query()) == Report(200, "ok")
    verbose = report("readyz", checks, Query(verbose=True))
    assert verbose.status == 200
    assert verbose.text == (
        "[+]redis ok\n[+]consumers-synced ok\n[+]catalogue-synced ok\nreadyz check passed\n"
    )


def test_failing_is_always_verbose_with_the_reason() -> None:
    checks = readiness_checks(Observed(redis_up=False, fail_open=False, catalogue_synced=False))
    failed = report("readyz", checks, Query())
    assert failed.status == 503
    assert failed.text == (
        "[-]redis failed: unreachable and the rate limiter fails closed\n"
        "[-]catalogue-synced failed: first list of ModelDeployments pending\n"
        "readyz check failed\n"
    )


def test_exclude_skips_a_check_and_warns_about_unknown_names() -> None:
    checks = readiness_checks(Observed(redis_up=False, fail_open=False, catalogue_synced=True))
    excluded = report("readyz", checks, parse_query(b"verbose&exclude=redis&exclude=etcd"))
    assert excluded.status == 200
    assert excluded.text == (
        "[+]redis excluded: ok\n[+]catalogue-synced ok\n"
        'warn: some health checks cannot be excluded: no matches for "etcd"\n'
        "readyz check passed\n"
    )


def test_livez_depends_on_nothing() -> None:
    assert report("livez", liveness_checks(), Query()).text == "ok"
    assert report("livez", liveness_checks(), Query(verbose=True)).text == "[+]ping ok\nlivez check passed\n"


def test_one_check_by_name() -> None:
    checks = readiness_checks(Observed(redis_up=False, fail_open=False, consumers_synced=True))
    assert single(checks, CONSUMERS_SYNCED) == Report(200, "ok")
    down = single(checks, REDIS)
    assert down is not None and down.status == 503 and "redis failed: unreachable" in down.text
    assert single(checks, CATALOGUE_SYNCED) is None  # not a check of this mode


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", Query()),
        (b"verbose", Query(verbose=True)),
        (b"verbose=1", Query(verbose=True)),
        (b"exclude=redis", Query(exclude=frozenset({"redis"}))),
        (
            b"exclude=redis&exclude=consumers-synced&verbose",
            Query(True, frozenset({"redis", "consumers-synced"})),
        ),
    ],
)
def test_query(query: bytes, expected: Query) -> None:
    assert parse_query(query) == expected


@given(
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.booleans()),
    st.sets(st.sampled_from([REDIS, CONSUMERS_SYNCED, CATALOGUE_SYNCED, "other"])),
    st.booleans(),
)
def test_ready_exactly_when_every_check_not_excluded_passes(
    redis_up: bool,
    fail_open: bool,
    consumers: bool | None,
    catalogue: bool | None,
    exclude: set[str],
    verbose: bool,
) -> None:
    checks = readiness_checks(Observed(redis_up, fail_open, True, consumers, catalogue))
    r = report("readyz", checks, Query(verbose, frozenset(exclude)))
    ready = all(c.ok for c in checks if c.name not in exclude)
    assert r.status == (200 if ready else 503)
    lines = r.text.splitlines()
    if ready and not verbose:
        assert r.text == "ok"
    else:
        assert lines[-1] == f"readyz check {'passed' if ready else 'failed'}"
        assert [ln[3:].split()[0] for ln in lines if ln.startswith("[")] == [c.name for c in checks]
