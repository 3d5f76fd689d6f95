"""``ferry-gateway`` as a process: the CORS policy comes from --dev and the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_testing.gateway import Upstream

BIN = Path(sys.executable).parent


@contextmanager
def _gateway(tmp_path: Path, redis_url: str, upstream: Upstream, *args: str, **env: str) -> Iterator[str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_CORS_")}
    environ.update({"REDIS_URL": redis_url, "FERRY_DEV_DIR": str(tmp_path / "dev"), **env})
    with (tmp_path / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "ferry-gateway"), *args, "--port", str(port), "--upstream", f"titanic={upstream.url}"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("ferry-gateway", lambda: proc.poll() is not None or port_open(port), timeout=30)
        assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        url + "/v1/models/titanic:predict",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
        timeout=10,
    )


def test_dev_mode_lets_local_pages_call(tmp_path: Path, redis_url: str, active_upstream: Upstream) -> None:
    with _gateway(tmp_path, redis_url, active_upstream, "--dev") as url:
        ok = _preflight(url, "http://localhost:5173")
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert _preflight(url, "http://127.0.0.1:8000").status_code == 204
        assert _preflight(url, "https://example.com").status_code == 403


def test_the_environment_sets_the_origins(tmp_path: Path, redis_url: str, active_upstream: Upstream) -> None:
    origins = {"FERRY_CORS_ALLOW_ORIGINS": "https://app.example.com", "FERRY_CORS_MAX_AGE": "30"}
    with _gateway(tmp_path, redis_url, active_upstream, "--dev", **origins) as url:
        ok = _preflight(url, "https://app.example.com")
        assert ok.status_code == 204 and ok.headers["access-control-max-age"] == "30"
        assert (
            _preflight(url, "http://localhost:5173").status_code == 403
        )  # the list replaces the dev default


def test_wildcard_with_credentials_stops_the_gateway_naming_the_variable(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FERRY_")},
        "FERRY_CORS_ALLOW_ORIGINS": "*",
        "FERRY_CORS_ALLOW_CREDENTIALS": "true",
        "FERRY_DEV_DIR": str(tmp_path / "dev"),
    }
    result = subprocess.run(
        [str(BIN / "ferry-gateway"), "--dev", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FERRY_CORS_ALLOW_CREDENTIALS" in result.stderr and "'*'" in result.stderr


def test_help_prints_the_cors_variables() -> None:
    out = subprocess.run(
        [str(BIN / "ferry-gateway"), "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for name in ("FERRY_CORS_ALLOW_ORIGINS", "FERRY_CORS_ALLOW_CREDENTIALS", "FERRY_CORS_MAX_AGE"):
        assert name in out
