"""``ferry-gateway`` and ``ferry`` as processes: dev mode in a minute, production from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_testing.gateway import Upstream

BIN = Path(sys.executable).parent


@pytest.fixture
def dev_gateway(tmp_path: Path, redis_url: str, active_upstream: Upstream) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "FERRY_DEV_DIR": str(tmp_path / "dev")}
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "ferry-gateway"),
            "--dev",
            "--port",
            str(port),
            "--upstream",
            f"titanic={active_upstream.url}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("ferry-gateway --dev", lambda: proc.poll() is None and port_open(port), timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        output = (tmp_path / "gateway.log").read_text()
        for line in output.splitlines():  # every log line is JSON, apart from the dev banner
            if line.startswith("{"):
                json.loads(line)


def test_dev_mode_in_a_minute(dev_gateway: str, tmp_path: Path) -> None:
    env = {**os.environ, "FERRY_DEV_DIR": str(tmp_path / "dev")}
    token = subprocess.run(
        [str(BIN / "ferry"), "token", "--consumer", "dev-pro"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    by_token = httpx.post(
        dev_gateway + "/v2/models/titanic/infer",
        content=b'{"inputs": []}',
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert by_token.status_code == 200
    assert by_token.headers["x-ratelimit-limit"] == "2000"  # dev-pro is on the pro tier (its burst)
    by_key = httpx.post(
        dev_gateway + "/v1/models/titanic:predict",
        content=b"{}",
        headers={"X-API-Key": DEV_KEYS["dev-free"]},
        timeout=10,
    )
    assert by_key.status_code == 200 and by_key.headers["x-ratelimit-limit"] == "100"  # free: burst 100
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_production_config_from_environment_only(
    tmp_path: Path, redis_url: str, active_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # configured the way the Deployment does it: environment variables, no flags, no dev mode
    from ferry_gateway.auth.devkeys import dev_jwks, mint_token

    monkeypatch.setenv("FERRY_DEV_DIR", str(tmp_path / "idp"))  # the dev key pair plays the identity provider
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(dev_jwks(tmp_path / "idp")))
    token = mint_token(tmp_path / "idp", "svc-a", audience="ferry", issuer="https://idp")
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        {
            "PORT": str(port),
            "FERRY_METRICS_PORT": str(metrics_port),
            "REDIS_URL": redis_url,
            "FERRY_JWKS_FILE": str(jwks),
            "FERRY_JWT_ISSUER": "https://idp",
            "FERRY_JWT_AUDIENCE": "ferry",
            "FERRY_UPSTREAMS": f"titanic={active_upstream.url}",
            "FERRY_DEV_DIR": str(tmp_path / "none"),
        }
    )
    with (tmp_path / "gw.log").open("wb") as log:
        proc = subprocess.Popen([str(BIN / "ferry-gateway")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("ferry-gateway from env", lambda: proc.poll() is None and port_open(port), timeout=30)
        ok = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/titanic:predict",
            content=b"{}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert ok.status_code == 200 and ok.json()["headers"]["x-ferry-consumer"] == "jwt:svc-a"
        # issue 13, finding 2: the traffic port has no /metrics (consumer names, upstream URLs);
        # Prometheus scrapes them from a port of their own, served by the same process
        hidden = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert hidden.status_code == 404 and hidden.json()["error_code"] == "NOT_FOUND"
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert (
            'ferry_gateway_requests_total{consumer="jwt:svc-a",model="titanic",status="200"}' in scraped.text
        )
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/v1/models/titanic:predict").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not (tmp_path / "none").exists()  # nothing written to a dev directory outside --dev
