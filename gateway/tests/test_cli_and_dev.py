"""`ferry token`, `ferry jwks`, and `ferry-gateway --dev` started the way a newcomer would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from ferry_gateway import cli
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_gateway.auth.devkeys import DEV_AUDIENCE, DEV_ISSUER
from ferry_gateway.auth.jwt_verify import JwtSettings, parse_jwks, verify_token
from gw_harness import Upstream
from localcluster.procs import free_port, port_open, wait_for

BIN = Path(sys.executable).parent


@pytest.fixture
def dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FERRY_DEV_DIR", str(tmp_path / "dev"))
    return tmp_path / "dev"


def test_token_verifies_against_the_dev_jwks(dev_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["token", "--consumer", "alice", "--scopes", "predict,preview", "--expires-in", "60"]) == 0
    )
    token = capsys.readouterr().out.strip()
    assert cli.main(["jwks"]) == 0
    keys = parse_jwks(json.loads(capsys.readouterr().out))
    claims = verify_token(token, keys, JwtSettings(DEV_ISSUER, DEV_AUDIENCE))
    assert claims["sub"] == "alice" and claims["scope"] == "predict preview"
    assert claims["exp"] - claims["iat"] == 60
    assert (dev_dir / "dev-jwt-key.pem").stat().st_mode & 0o077 == 0  # private key not world-readable


def test_cli_refuses_bad_input_clearly(dev_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["token", "--consumer", "a", "--scopes", "predict,root"])
    assert "unknown scope(s) root" in capsys.readouterr().err
    os.environ.pop("FERRY_API_KEY_PEPPER", None)
    assert cli.main(["keys", "create", "--consumer", "x", "--file", str(dev_dir / "c.yaml")]) == 2
    assert "FERRY_API_KEY_PEPPER" in capsys.readouterr().err
    bad = dev_dir / "bad.yaml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("consumers:\n  - name: Bad Name\n    tier: free\n")
    assert cli.main(["keys", "list", "--file", str(bad)]) == 2
    assert "consumers.0.name" in capsys.readouterr().err


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
    assert by_token.headers["x-ratelimit-limit"] == "1000"  # dev-pro is on the pro tier
    by_key = httpx.post(
        dev_gateway + "/v1/models/titanic:predict",
        content=b"{}",
        headers={"X-API-Key": DEV_KEYS["dev-free"]},
        timeout=10,
    )
    assert by_key.status_code == 200 and by_key.headers["x-ratelimit-limit"] == "60"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


@pytest.fixture
def gateway_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``ferry-gateway``'s main() in-process (configuration errors never reach uvicorn)."""
    from ferry_gateway import __main__ as entry
    from ferry_gateway.edge import logs

    monkeypatch.setattr(logs, "configure", lambda level: None)  # keep pytest's log capture
    for name in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FERRY_DEV_DIR", str(tmp_path / "dev"))
    return entry.main


def test_gateway_help_and_config_errors(
    gateway_main: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        gateway_main(["--help"])
    help_text = capsys.readouterr().out
    for documented in ("--dev", "--upstream", "--consumers", "REDIS_URL", "FERRY_RATE_LIMIT_FAILURE_MODE"):
        assert documented in help_text
    monkeypatch.setenv("FERRY_RATE_LIMIT_FAILURE_MODE", "sometimes")
    assert gateway_main(["--dev"]) == 2
    assert "FERRY_RATE_LIMIT_FAILURE_MODE" in capsys.readouterr().err
    monkeypatch.delenv("FERRY_RATE_LIMIT_FAILURE_MODE")
    assert gateway_main(["--dev"]) == 2
    assert "--upstream" in capsys.readouterr().err
    assert gateway_main(["--dev", "--upstream", "titanic"]) == 2
    assert "expected NAME=URL" in capsys.readouterr().err


def test_jwks_without_issuer_and_audience_is_refused(
    gateway_main: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ferry_gateway.auth.devkeys import dev_jwks

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(dev_jwks()))
    monkeypatch.setenv("FERRY_JWKS_FILE", str(jwks))
    assert gateway_main(["--upstream", "m=http://127.0.0.1:1"]) == 2
    assert "FERRY_JWT_ISSUER and FERRY_JWT_AUDIENCE" in capsys.readouterr().err


def test_keys_secret_makes_a_secret_the_cluster_source_reads(capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    import yaml
    from ferry_gateway.consumers.registry import ConsumerRegistry
    from ferry_gateway.consumers.k8s_source import build_index

    assert (
        cli.main(["keys", "secret", "--consumer", "acme", "--secret", "acme-key-2", "--namespace", "ml"]) == 0
    )
    out = capsys.readouterr()
    secret = yaml.safe_load(out.out)
    assert secret["metadata"]["labels"]["ferry.dev/api-key"] == "true"
    key = secret["stringData"]["apiKey"]
    assert "kubectl -n ml patch consumer acme" in out.err and key not in out.err
    data = {"acme-key-2": {"apiKey": base64.b64encode(key.encode()).decode()}}
    index, _ = build_index(
        [{"metadata": {"name": "acme"}, "spec": {"apiKeys": [{"name": "acme-key-2"}]}}], data, b"pepper"
    )
    assert ConsumerRegistry(b"pepper", index).authenticate_key(key).name == "acme"


def test_production_config_from_environment_only(
    tmp_path: Path, redis_url: str, active_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # configured the way the Deployment does it: environment variables, no flags, no dev mode
    from ferry_gateway.auth.devkeys import dev_jwks, mint_token

    monkeypatch.setenv("FERRY_DEV_DIR", str(tmp_path / "idp"))  # the dev key pair plays the identity provider
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(dev_jwks()))
    token = mint_token("svc-a", audience="ferry", issuer="https://idp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        {
            "PORT": str(port),
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
        assert ok.status_code == 200 and ok.json()["headers"]["x-ferry-consumer"] == "svc-a"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not (tmp_path / "none").exists()  # nothing written to a dev directory outside --dev


def test_consumers_file_without_pepper_is_refused(
    gateway_main: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FERRY_CONSUMERS_FILE", str(tmp_path / "consumers.yaml"))
    assert gateway_main(["--upstream", "m=http://127.0.0.1:1"]) == 2
    assert "FERRY_API_KEY_PEPPER" in capsys.readouterr().err
