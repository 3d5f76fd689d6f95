"""`ferry token`, `ferry jwks`, `ferry keys` and `ferry-gateway`'s configuration checks, in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from ferry_gateway import cli
from ferry_gateway.auth.devkeys import DEV_AUDIENCE, DEV_ISSUER
from ferry_gateway.auth.jwt_verify import JwtSettings, parse_jwks, verify_token


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
def gateway_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``ferry-gateway``'s main() in-process (configuration errors never reach uvicorn)."""
    from ferry_common import logs
    from ferry_gateway import __main__ as entry

    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)  # keep pytest's log capture
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
    jwks.write_text(json.dumps(dev_jwks(tmp_path / "dev")))
    monkeypatch.setenv("FERRY_JWKS_FILE", str(jwks))
    assert gateway_main(["--upstream", "m=http://127.0.0.1:1"]) == 2
    assert "FERRY_JWT_ISSUER and FERRY_JWT_AUDIENCE" in capsys.readouterr().err


def test_keys_secret_stores_only_the_hash_and_shows_the_key_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 8 (issue 13): the Secret carries the keyed hash; the key reaches the terminal once."""
    import base64

    import yaml
    from ferry_gateway.auth.apikeys import is_hash, key_id
    from ferry_gateway.consumers.k8s_source import build_index
    from ferry_gateway.consumers.registry import ConsumerRegistry

    monkeypatch.setenv("FERRY_API_KEY_PEPPER", "pepper")
    argv = ["keys", "secret", "--consumer", "acme", "--secret", "acme-key-2", "--namespace", "ml"]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    secret = yaml.safe_load(out.out)
    assert secret["metadata"]["labels"]["ferry.dev/api-key"] == "true"
    stored = secret["stringData"]["apiKey"]
    assert is_hash(stored), "the Secret must hold the keyed hash, never the key"
    assert "kubectl -n ml patch consumer acme" in out.err and key_id(stored) in out.err
    key = out.err.strip().splitlines()[-1]
    assert key.startswith("fry_") and key not in out.out  # the pipe into kubectl never carries it
    data = {"acme-key-2": {"apiKey": base64.b64encode(stored.encode()).decode()}}
    index, problems = build_index(
        [{"metadata": {"name": "acme"}, "spec": {"apiKeys": [{"name": "acme-key-2"}]}}], data, b"pepper"
    )
    assert problems == []
    assert ConsumerRegistry(b"pepper", index).authenticate_key(key).name == "acme"


def test_keys_patch_puts_the_hash_in_the_consumer_and_shows_the_key_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 8 (issue 13): a key the gateway checks without reading any Secret."""
    from ferry_gateway.consumers.k8s_source import build_index
    from ferry_gateway.consumers.registry import ConsumerRegistry

    monkeypatch.setenv("FERRY_API_KEY_PEPPER", "pepper")
    assert cli.main(["keys", "patch", "--consumer", "acme", "--namespace", "ml", "--expires-in", "60"]) == 0
    out = capsys.readouterr()
    [op] = json.loads(out.out)
    assert (op["op"], op["path"]) == ("add", "/spec/apiKeys/-")
    assert set(op["value"]) == {"hash", "expiresAt"}
    key = out.err.strip().splitlines()[-1]
    assert key.startswith("fry_") and key not in out.out and "ml/acme" in out.err
    spec = {"apiKeys": [op["value"]]}
    index, problems = build_index([{"metadata": {"name": "acme"}, "spec": spec}], None, b"pepper")
    assert problems == []
    assert ConsumerRegistry(b"pepper", index).authenticate_key(key).name == "acme"


def test_keys_secret_without_pepper_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hashing needs the gateway's pepper: without one nothing is printed that could not match."""
    monkeypatch.delenv("FERRY_API_KEY_PEPPER", raising=False)
    monkeypatch.delenv("FERRY_API_KEY_PEPPER_FILE", raising=False)
    for argv in (
        ["keys", "secret", "--consumer", "acme", "--secret", "k"],
        ["keys", "patch", "--consumer", "a"],
    ):
        assert cli.main(argv) == 2
        out = capsys.readouterr()
        assert out.out == "" and "FERRY_API_KEY_PEPPER" in out.err


def test_consumers_file_without_pepper_is_refused(
    gateway_main: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FERRY_CONSUMERS_FILE", str(tmp_path / "consumers.yaml"))
    assert gateway_main(["--upstream", "m=http://127.0.0.1:1"]) == 2
    assert "FERRY_API_KEY_PEPPER" in capsys.readouterr().err
