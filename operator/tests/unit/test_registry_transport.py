"""The resolver's answers to what an MLflow server says, with the HTTP transport faked."""

from __future__ import annotations

import httpx
import pytest
from ferry_operator.registry import Registry, RegistryConfig, RegistryError
from ferry_operator.resource import ModelRef


async def test_server_errors_are_retryable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json={"message": "overloaded"}))
    reg = Registry(RegistryConfig("http://registry"), transport=transport)
    with pytest.raises(RegistryError) as err:
        await reg.resolve(ModelRef(name="m", version="1"))
    assert err.value.retryable and "overloaded" in err.value.message


async def test_sends_the_configured_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"model_version": {"name": "m", "version": "1", "status": "READY"}})

    reg = Registry(RegistryConfig("http://registry", token="s3cret"), transport=httpx.MockTransport(handler))
    assert (await reg.resolve(ModelRef(name="m", version="1"))).version == "1"
    assert seen == ["Bearer s3cret"]
