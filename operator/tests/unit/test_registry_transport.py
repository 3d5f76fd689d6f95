"""The resolver's answers to what an MLflow server says, with the HTTP transport faked."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from ferry_common.digest import Entry, digest
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


# ---- artifact digests over the artifact proxy (issue 13, finding 4) ----------------------------

STORE = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04.", "code/util.py": b"x = 1\n"}
ROOT = "0/models/m-1/artifacts"


def proxy(
    files: dict[str, bytes], listing_extra: list[dict[str, object]] | None = None
) -> httpx.MockTransport:
    """MLflow's get-download-uri and its artifact proxy (list: base names; get: the bytes)."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/model-versions/get-download-uri"):
            return httpx.Response(200, json={"artifact_uri": f"mlflow-artifacts:/{ROOT}"})
        prefix = "/api/2.0/mlflow-artifacts/artifacts"
        if path == prefix:
            where = request.url.params["path"].removeprefix(ROOT).strip("/")
            names = {k[len(where) :].lstrip("/").split("/")[0] for k in files if k.startswith(where)}
            listed: list[dict[str, object]] = [
                {"path": n, "is_dir": f"{where}/{n}".strip("/") not in files} for n in sorted(names)
            ]
            return httpx.Response(200, json={"files": listed + (listing_extra or [])})
        rel = path.removeprefix(f"{prefix}/{ROOT}/")
        return httpx.Response(200, content=files[rel]) if rel in files else httpx.Response(404)

    return httpx.MockTransport(handler)


async def test_the_digest_covers_every_file_of_the_tree() -> None:
    reg = Registry(RegistryConfig("http://registry"), transport=proxy(STORE))
    expected = digest(Entry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in STORE.items())
    assert await reg.artifact_digest("m", "1") == expected
    tampered = Registry(
        RegistryConfig("http://registry"), transport=proxy({**STORE, "code/util.py": b"x = 2\n"})
    )
    assert await tampered.artifact_digest("m", "1") != expected


@pytest.mark.parametrize("bad", ["../../etc", "a/b", ".."])
async def test_a_listing_that_points_outside_the_model_is_refused(bad: str) -> None:
    reg = Registry(
        RegistryConfig("http://registry"), transport=proxy(STORE, [{"path": bad, "is_dir": False}])
    )
    with pytest.raises(RegistryError) as err:
        await reg.artifact_digest("m", "1")
    assert err.value.reason == "ArtifactsNotVerifiable" and not err.value.retryable


async def test_artifacts_outside_the_proxy_cannot_be_verified() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"artifact_uri": "s3://bucket/m"}))
    with pytest.raises(RegistryError) as err:
        await Registry(RegistryConfig("http://registry"), transport=transport).artifact_digest("m", "1")
    assert err.value.reason == "ArtifactsNotVerifiable" and "proxy" in err.value.message


def counting(transport: httpx.MockTransport, seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return transport.handle_request(request)

    return httpx.MockTransport(handler)


async def test_many_deployments_of_one_version_read_its_artifacts_once() -> None:
    # 500 ModelDeployments following one alias each asked for the digest: 500 downloads of the
    # model saturated the registry (make bench-operator, 44 of 500 Ready after 8 minutes).
    seen: list[str] = []
    reg = Registry(RegistryConfig("http://registry"), transport=counting(proxy(STORE), seen))
    digests = await asyncio.gather(*(reg.artifact_digest("m", "1") for _ in range(50)))
    assert len(set(digests)) == 1
    assert sum(p.endswith("model.pkl") for p in seen) == 1
    assert await reg.artifact_digest("m", "1") == digests[0]
    assert sum(p.endswith("model.pkl") for p in seen) == 1


async def test_a_failed_digest_is_not_remembered() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, json={"message": "overloaded"})
        return proxy(STORE).handle_request(request)

    reg = Registry(RegistryConfig("http://registry"), transport=httpx.MockTransport(flaky))
    with pytest.raises(RegistryError) as err:
        await reg.artifact_digest("m", "1")
    assert err.value.retryable
    assert await reg.artifact_digest("m", "1") == await reg.artifact_digest("m", "1")
