"""A promotion under steady traffic: responses switch colour once and never mix back, nothing
fails, and the old colour's keep-alive connections are closed before its pods go away.

The two colours' predictor Services are two loopback predictor stand-ins; the gateway runs
exactly as in a cluster (stable-Service convention + catalog), only the Service URLs are mapped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from ferry_devcluster.procs import wait_for
from ferry_testing.gateway_colours import Setup, make_setup, md


@pytest.fixture
def setup() -> Iterator[Setup]:
    s = make_setup()
    yield s
    s.gw.close()
    s.blue.close()
    s.green.close()


@dataclass
class Sample:
    worker: int
    started: float
    ended: float
    status: int
    upstream: str | None


def test_promotion_under_steady_traffic(setup: Setup) -> None:
    samples: list[Sample] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=10) as client:  # keep-alive to the gateway, like a load generator
            while not stop.is_set():
                started = time.monotonic()
                try:
                    resp = setup.call(client)
                    status, upstream = resp.status_code, resp.json().get("upstream")
                except httpx.HTTPError as exc:
                    status, upstream = 0, type(exc).__name__
                with lock:
                    samples.append(Sample(n, started, time.monotonic(), status, upstream))

    def count(colour: str, after: float = 0.0) -> int:
        with lock:
            return sum(1 for s in samples if s.upstream == colour and s.started > after)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for("traffic on blue", lambda: count("blue") >= 60 and setup.blue.connections > 0, timeout=30)
        before = time.monotonic()
        switched = setup.publish(md(("green", "2")))  # the promotion, as the watch delivers it
        # blue's pooled connections are closed while traffic goes on ...
        wait_for("blue's connections closed", lambda: setup.blue.connections == 0, timeout=10)
        # ... so its pods can go away without a single request failing
        setup.blue.stop_listening()
        gone = time.monotonic()
        wait_for(
            "traffic on green after blue went away", lambda: count("green", after=gone) >= 60, timeout=30
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)

    failed = [s for s in samples if s.status != 200]
    assert not failed, f"{len(failed)} of {len(samples)} requests failed, e.g. {failed[:3]}"
    assert all(s.upstream == "green" for s in samples if s.started > switched)
    assert all(s.upstream == "blue" for s in samples if s.ended < before)
    for n in range(6):  # each client sees blue, then green, and never blue again
        seen = [s.upstream for s in sorted(samples, key=lambda s: s.started) if s.worker == n]
        first_green = seen.index("green")
        assert set(seen[first_green:]) == {"green"}, seen
    assert setup.blue.connections == 0


def test_a_request_in_flight_on_the_old_colour_completes() -> None:
    s = make_setup(blue_delay=1.0)
    try:
        result: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: result.append(s.call()), daemon=True)
        slow.start()
        wait_for("request held by blue", lambda: s.blue.opts.pending == 1, timeout=10)
        s.publish(md(("green", "2")))
        assert s.blue.connections == 1  # the busy connection is left to finish
        assert s.call().json()["upstream"] == "green"
        slow.join(timeout=10)
        assert result[0].status_code == 200 and result[0].json()["upstream"] == "blue"
        # and then closed rather than pooled: blue is not routed to any more
        wait_for("blue's last connection closed", lambda: s.blue.connections == 0, timeout=10)
        assert s.gw.app.pool.idle_connections(s.blue.url) == 0
        assert s.gw.app.pool.idle_connections(s.green.url) == 1
    finally:
        s.gw.close()
        s.blue.close()
        s.green.close()


def test_preview_traffic_follows_the_preview_colour(setup: Setup) -> None:
    setup.publish(md(("blue", "1"), ("green", "2", False)))
    deploying = setup.call(preview=True)
    assert deploying.status_code == 503 and deploying.json()["error_code"] == "MODEL_NOT_READY"
    assert "version 2" in deploying.json()["message"] and deploying.headers["retry-after"] == "5"
    assert setup.call().json()["upstream"] == "blue"
    setup.publish(md(("blue", "1"), ("green", "2", True)))
    assert setup.call(preview=True).json()["upstream"] == "green"
    assert setup.call().json()["upstream"] == "blue"
    # an abort: the preview is gone, green's connections with it
    setup.publish(md(("blue", "1")))
    assert setup.call(preview=True).status_code == 404
    wait_for("green's connections closed", lambda: setup.green.connections == 0, timeout=10)
    assert setup.call().json()["upstream"] == "blue"
