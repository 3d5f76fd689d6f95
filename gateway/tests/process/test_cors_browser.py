"""A page on another origin calls the gateway with fetch in headless Chromium, as a web front end
would: allowed from an allowed origin (prediction and headers readable, the error envelope too),
failing as browsers fail from any other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import wait_for
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.edge.cors import parse_policy
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing import browser
from ferry_testing.gateway import PEPPER, FakeClock, GatewayServer, Keys, Upstream, build_app, consumer_index
from selenium import webdriver

pytestmark = pytest.mark.skipif(not browser.available(), reason="needs Debian's chromium and chromium-driver")

KEYS = Keys()
CONSUMERS = [Consumer("web", "small", frozenset({"predict"}))]
LIMITS = parse_limits({"tiers": {"small": {"perMinute": 60, "burst": 10, "perDay": 100}}})

# The page's own script: one fetch with an API key (a non-safelisted header, so the browser sends
# a preflight first), then what a page can read of the answer, or the error fetch rejects with.
PAGE = """<!doctype html>
<html><head><title>ferry client</title></head><body>
<script>
const gateway = new URLSearchParams(location.search).get("gateway");
const key = new URLSearchParams(location.search).get("key");
window.result = null;
fetch(gateway + "/v1/models/titanic:predict", {
  method: "POST",
  headers: {"X-API-Key": key, "Content-Type": "application/json"},
  body: JSON.stringify({instances: [[3, 1, 22.0]]}),
}).then(async (resp) => {
  window.result = {
    status: resp.status,
    body: await resp.json(),
    remaining: resp.headers.get("X-RateLimit-Remaining"),
    requestId: resp.headers.get("X-Request-Id"),
  };
}).catch((err) => { window.result = {error: err.name + ": " + err.message}; });
</script></body></html>
"""


@dataclass
class Site:
    gateway: str
    port: int


@pytest.fixture(scope="module")
def site(redis_url: str) -> Iterator[Site]:
    upstream = Upstream(mode="static", name="active")  # answers {"predictions": [0.42]}
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, KEYS)),
        limits=LIMITS,
        clock=FakeClock(),
        upstreams=Upstreams({"titanic": upstream.url}),
        cors=parse_policy(["http://localhost:*"]),  # pages from localhost, not from 127.0.0.1
    )
    server = GatewayServer(app)
    with browser.static_site({"/": PAGE}) as port:
        yield Site(server.url, port)
    server.close()
    upstream.close()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    with browser.chromium() as d:
        yield d


def open_page(driver: webdriver.Chrome, site: Site, host: str, key: str) -> dict[str, Any]:
    driver.get(f"http://{host}:{site.port}/?gateway={site.gateway}&key={key}")
    wait_for("the page's fetch to settle", lambda: driver.execute_script("return window.result") is not None)
    result: dict[str, Any] = driver.execute_script("return window.result")
    return result


def quota_left(site: Site) -> int:
    # the daily counter, not the rate bucket: its Redis key expires in real time while the
    # gateway's clock stands still
    doc: dict[str, Any] = httpx.get(
        site.gateway + "/v1/usage", headers={"X-API-Key": KEYS.by_consumer["web"]}, timeout=10
    ).json()
    return int(doc["quota"]["remaining"])


def test_a_page_on_an_allowed_origin_gets_the_prediction_and_the_headers(
    driver: webdriver.Chrome, site: Site
) -> None:
    result = open_page(driver, site, "localhost", KEYS.by_consumer["web"])
    assert result.get("status") == 200, result
    assert result["body"] == {"predictions": [0.42]}
    assert result["remaining"] == "9"  # exposed: the page can pace itself
    assert result["requestId"]
    # the preflight before it cost nothing: exactly one call was counted
    assert quota_left(site) == 99


def test_a_page_on_an_allowed_origin_reads_the_error_envelope(driver: webdriver.Chrome, site: Site) -> None:
    result = open_page(driver, site, "localhost", "fry_not_a_key")
    assert result.get("status") == 401, result
    assert result["body"]["error_code"] == "UNAUTHENTICATED" and result["body"]["request_id"]


def test_a_page_on_another_origin_fails_as_browsers_fail(driver: webdriver.Chrome, site: Site) -> None:
    before = quota_left(site)
    result = open_page(driver, site, "127.0.0.1", KEYS.by_consumer["web"])
    # the preflight was refused (403): the browser never sends the call, the page sees only this
    assert result == {"error": "TypeError: Failed to fetch"}, json.dumps(result)
    assert quota_left(site) == before
