"""A real browser for the tests: Debian's headless Chromium driven by selenium, and a tiny static
web server that puts a page on an origin of its own (a loopback port of its own)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ferry_devcluster.procs import free_port, port_open, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium (``.ci/deps.sh`` installs it); never downloads a driver or a browser.
    Fails, naming what to install, when Debian's chromium or chromium-driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(
            f"no {' or '.join(missing)}: install Debian's chromium and chromium-driver (.ci/deps.sh)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class _Quiet(http.server.BaseHTTPRequestHandler):
    pages: Mapping[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?", 1)[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's signature
        pass


@contextmanager
def static_site(pages: Mapping[str, str], host: str = "127.0.0.1") -> Iterator[int]:
    """Serve ``pages`` (path -> HTML) on a free loopback port; yields the port."""
    handler = type("Pages", (_Quiet,), {"pages": {p: html.encode() for p, html in pages.items()}})
    port = free_port()
    server = http.server.ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait_for(f"static site on :{port}", lambda: port_open(port), timeout=10)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
