"""The chart's gateway.cors values per environment become the gateway's FERRY_CORS_* settings."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from ferry_gateway.config import load as load_gateway_config
from ferry_gateway.edge.cors import origin_allowed
from ferry_testing.chart import CHART, run_helm, template

ALL_ENVS = (None, "dev", "staging", "prod")


def _gateway(env: str | None, *extra: str) -> dict[str, Any]:
    docs = template(env, *extra)
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway")]
    container: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "from-secret") for e in container.get("env", [])}


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_cors_env_per_environment(env: str | None) -> None:
    container = _gateway(env)
    variables = _env(container)
    cors = {k: v for k, v in variables.items() if k.startswith("FERRY_CORS_")}
    if env == "dev":
        assert cors["FERRY_CORS_ALLOW_ORIGINS"] == "http://localhost:*,http://127.0.0.1:*"
    else:  # prod, staging and the defaults: no page may call
        assert "FERRY_CORS_ALLOW_ORIGINS" not in cors
    assert cors["FERRY_CORS_ALLOW_CREDENTIALS"] == "false"
    assert cors["FERRY_CORS_MAX_AGE"] == "600"
    # what the gateway makes of it, with the flags the Deployment passes
    flags = argparse.Namespace(dev="--dev" in container.get("args", []))
    policy = load_gateway_config(flags, variables).cors
    assert origin_allowed(policy, "http://localhost:5173") is (env == "dev")
    assert not origin_allowed(policy, "https://evil.test")


def test_listed_origins_methods_and_headers_reach_the_gateway() -> None:
    container = _gateway(
        "prod",
        "--set-json",
        'gateway.cors={"allowOrigins":["https://app.example.com"],"allowMethods":["POST"],'
        '"allowHeaders":["X-API-Key"],"exposeHeaders":["X-Request-Id"],"allowCredentials":true,'
        '"maxAgeSeconds":60}',
    )
    policy = load_gateway_config(argparse.Namespace(), _env(container)).cors
    assert origin_allowed(policy, "https://app.example.com")
    assert policy.methods == ("POST",) and policy.allow_headers == ("X-API-Key",)
    assert policy.expose_headers == ("X-Request-Id",)
    assert policy.credentials and policy.max_age == 60


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('gateway.cors={"allowOrigins":["*"],"allowCredentials":true}', "at '/gateway/cors/allowOrigins'"),
        ('gateway.cors={"allowOrigins":["https://app.example.com/"]}', "at '/gateway/cors/allowOrigins/0'"),
        ('gateway.cors={"allowOrigins":["localhost:3000"]}', "at '/gateway/cors/allowOrigins/0'"),
        ('gateway.cors={"maxAgeSeconds":-1}', "at '/gateway/cors/maxAgeSeconds'"),
        ('gateway.cors={"allowOrigin":[]}', "additional properties 'allowOrigin' not allowed"),
    ],
)
def test_schema_refuses_what_the_gateway_would(setting: str, message: str) -> None:
    result = run_helm("template", "t", str(CHART), "--set-json", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
