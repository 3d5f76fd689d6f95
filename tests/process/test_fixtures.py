"""The shared Redis and MLflow fixtures answer real requests."""

from __future__ import annotations

import httpx
import redis


def test_redis_fixture_is_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.set("ferry:probe", "1", ex=5)
    assert client.incr("ferry:probe") == 2
    assert "redis_version" in client.info("server")


def test_mlflow_fixture_has_a_working_registry(mlflow_uri: str) -> None:
    api = f"{mlflow_uri}/api/2.0/mlflow"
    created = httpx.post(f"{api}/registered-models/create", json={"name": "fixture-probe"}, timeout=10)
    assert created.status_code == 200, created.text
    got = httpx.get(f"{api}/registered-models/get", params={"name": "fixture-probe"}, timeout=10)
    assert got.json()["registered_model"]["name"] == "fixture-probe"
    missing = httpx.get(f"{api}/registered-models/get", params={"name": "no-such-model"}, timeout=10)
    assert missing.status_code == 404
