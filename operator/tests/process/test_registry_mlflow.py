"""The resolver against a real MLflow server: versions, aliases, missing things, an unreachable one.

(Server errors and credentials, with the transport faked: unit/test_registry_transport.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ferry_common import digest
from ferry_devcluster.procs import free_port
from ferry_operator.registry import Registry, RegistryConfig, RegistryError
from ferry_operator.resource import ModelRef
from ferry_testing.operator import RegisteredModel


@pytest.fixture
async def registry(registered_model: RegisteredModel) -> AsyncIterator[Registry]:
    reg = Registry(RegistryConfig(registered_model.tracking_uri))
    yield reg
    await reg.aclose()


async def test_resolves_a_pinned_version(registry: Registry, registered_model: RegisteredModel) -> None:
    got = await registry.resolve(ModelRef(name=registered_model.name, version="2"))
    assert (got.version, got.status, got.uri) == ("2", "READY", f"models:/{registered_model.name}/2")
    assert got.run_id and got.source


async def test_resolves_an_alias_to_its_version(
    registry: Registry, registered_model: RegisteredModel
) -> None:
    got = await registry.resolve(ModelRef(name=registered_model.name, alias="champion"))
    assert got.version == registered_model.versions[0]


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        (ModelRef(name="no-such-model", alias="champion"), "ModelNotFound"),
        (ModelRef(name="no-such-model", version="1"), "ModelNotFound"),
        (ModelRef(name="ferry-echo", version="99"), "VersionNotFound"),
        (ModelRef(name="ferry-echo", alias="nobody"), "AliasNotFound"),
    ],
)
async def test_missing_things_are_named_and_not_retryable(
    registry: Registry, ref: ModelRef, reason: str
) -> None:
    with pytest.raises(RegistryError) as err:
        await registry.resolve(ref)
    assert err.value.reason == reason and not err.value.retryable
    assert ref.name in err.value.message


async def test_unreachable_registry_is_retryable() -> None:
    reg = Registry(RegistryConfig(f"http://127.0.0.1:{free_port()}", timeout_seconds=2))
    with pytest.raises(RegistryError) as err:
        await reg.resolve(ModelRef(name="m", alias="a"))
    await reg.aclose()
    assert err.value.reason == "RegistryUnavailable" and err.value.retryable
    assert "unreachable" in err.value.message


async def test_reads_the_logged_input_example(registry: Registry, registered_model: RegisteredModel) -> None:
    resolved = await registry.resolve(ModelRef(name=registered_model.name, version="1"))
    example = await registry.input_example(resolved)
    assert example is not None
    assert "pclass" in str(example)


async def test_the_artifact_digest_is_the_one_a_predictor_computes_from_its_download(
    registry: Registry, registered_model: RegisteredModel, tmp_path: Path
) -> None:
    """The operator reads the artifact proxy file by file; the predictor lets MLflow download the
    version (which adds ``registered_model_meta``): both must arrive at the same digest."""
    import mlflow.artifacts

    version = registered_model.versions[1]
    got = await registry.artifact_digest(registered_model.name, version)
    assert digest.valid(got)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{registered_model.name}/{version}",
        dst_path=str(tmp_path),
        tracking_uri=registered_model.tracking_uri,
    )
    assert (Path(local) / "registered_model_meta").is_file()  # MLflow's own marker, left out
    assert digest.directory_digest(Path(local)) == got
    other = await registry.artifact_digest(registered_model.name, registered_model.versions[0])
    assert other != got  # another run's artifacts
