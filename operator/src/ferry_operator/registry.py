"""Resolve ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` through MLflow's REST API.

httpx rather than the mlflow client: the operator image must not carry mlflow (and its
scikit-learn/pandas tree), and the REST API is small and stable. Every failure becomes a
``RegistryError`` whose ``reason`` is a condition reason and whose ``retryable`` says whether
waiting can fix it (an outage) or a human must (a missing model).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
from ferry_common import digest

from ferry_operator.metrics import REGISTRY_ERRORS, REGISTRY_SECONDS
from ferry_operator.resource import ModelRef

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PROXY = "mlflow-artifacts:/"
# A model's artifact tree is a handful of directories; deeper means a loop or a hostile listing.
MAX_DEPTH = 32


@dataclass(frozen=True)
class ResolvedVersion:
    name: str
    version: str
    run_id: str | None
    source: str | None
    status: str

    @property
    def uri(self) -> str:
        """The pinned URI the predictor loads: an alias could move while a colour is running."""
        return f"models:/{self.name}/{self.version}"


class RegistryError(Exception):
    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class RegistryConfig:
    tracking_uri: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10.0


class Registry:
    def __init__(self, config: RegistryConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        auth = (config.username, config.password or "") if config.username else None
        self._client = httpx.AsyncClient(
            base_url=config.tracking_uri.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=config.timeout_seconds,
            transport=transport,
        )
        # (name, version) -> its digest, being computed or done: shared by every ModelDeployment.
        self._digests: dict[tuple[str, str], asyncio.Task[str]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, operation: str, path: str, params: dict[str, str]) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._client.get(path, params=params)
        except httpx.TransportError as exc:
            REGISTRY_ERRORS.labels(operation, "RegistryUnavailable").inc()
            raise RegistryError(
                "RegistryUnavailable",
                f"MLflow registry at {self.config.tracking_uri} unreachable: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        finally:
            REGISTRY_SECONDS.labels(operation).observe(time.perf_counter() - started)
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            reason = "RegistryUnauthorized" if response.status_code in (401, 403) else "RegistryUnavailable"
            REGISTRY_ERRORS.labels(operation, reason).inc()
            raise RegistryError(
                reason,
                f"MLflow registry answered {response.status_code} to {operation}: {_message(response)}",
                retryable=True,
            )
        return response

    async def resolve(self, ref: ModelRef) -> ResolvedVersion:
        if ref.version is not None:
            response = await self._get(
                "get_model_version", f"{API}/model-versions/get", {"name": ref.name, "version": ref.version}
            )
            if response.status_code == 404 or _does_not_exist(response):
                await self._require_model(ref.name)
                raise self._not_found(
                    "VersionNotFound", f"registered model {ref.name!r} has no version {ref.version}"
                )
        else:
            assert ref.alias is not None
            response = await self._get(
                "get_model_version_by_alias",
                f"{API}/registered-models/alias",
                {"name": ref.name, "alias": ref.alias},
            )
            # MLflow 3 answers a missing alias with 400 INVALID_PARAMETER_VALUE "... not found".
            missing_alias = response.status_code == 400 and "not found" in _message(response).lower()
            if response.status_code == 404 or _does_not_exist(response) or missing_alias:
                await self._require_model(ref.name)
                raise self._not_found(
                    "AliasNotFound", f"registered model {ref.name!r} has no alias {ref.alias!r}"
                )
        if response.status_code != 200:
            raise self._not_found("RegistryRejected", f"MLflow refused {ref.uri}: {_message(response)}")
        mv: dict[str, Any] = response.json()["model_version"]
        resolved = ResolvedVersion(
            name=mv["name"],
            version=str(mv["version"]),
            run_id=mv.get("run_id") or None,
            source=mv.get("source"),
            status=mv.get("status", "READY"),
        )
        if resolved.status == "PENDING_REGISTRATION":
            raise RegistryError(
                "VersionNotReady", f"{resolved.uri} is still being registered in MLflow", retryable=True
            )
        if resolved.status == "FAILED_REGISTRATION":
            raise self._not_found("VersionFailed", f"{resolved.uri} failed registration in MLflow")
        return resolved

    async def _require_model(self, name: str) -> None:
        response = await self._get("get_registered_model", f"{API}/registered-models/get", {"name": name})
        if response.status_code == 404 or _does_not_exist(response):
            raise self._not_found("ModelNotFound", f"no registered model named {name!r} in MLflow")

    def _not_found(self, reason: str, message: str) -> RegistryError:
        REGISTRY_ERRORS.labels("resolve", reason).inc()
        return RegistryError(reason, message, retryable=False)

    async def _artifact_path(self, name: str, version: str) -> str | None:
        """The version's artifacts as a path under the tracking server's artifact proxy, or None
        when they are not served by the proxy (or MLflow does not say where they are)."""
        response = await self._get(
            "get_download_uri",
            f"{API}/model-versions/get-download-uri",
            {"name": name, "version": version},
        )
        if response.status_code != 200:
            return None
        artifact_uri: str = response.json().get("artifact_uri", "")
        if not artifact_uri.startswith(PROXY):
            return None
        return artifact_uri[len(PROXY) :].strip("/")

    async def artifact_digest(self, name: str, version: str) -> str:
        """``ferry_common.digest`` of the version's artifacts, read file by file through the
        tracking server's artifact proxy (``--serve-artifacts``), as a predictor downloads them.

        Every byte of the model crosses the network once per operator process, streamed and
        hashed in constant memory: for a model of gigabytes this is the price of pinning what was
        deployed. Each ModelDeployment asks once per version (the result is kept in its status);
        the ModelDeployments that ask for the same version share one computation (500 of them
        following one alias read the model once, not 500 times), and they all pin what the first
        read saw. A failure is not remembered: the next pass asks again. Raises RegistryError:
        retryable for an outage, not for artifacts the proxy does not serve (a predictor reading
        them from elsewhere could not be held to the digest).
        """
        key = (name, version)
        task = self._digests.get(key)
        if task is None:
            task = self._digests[key] = asyncio.ensure_future(self._digest(name, version))
        try:
            # Shielded: one caller giving up (its reconcile cancelled) does not cancel the others'.
            return await asyncio.shield(task)
        finally:
            failed = task.done() and (task.cancelled() or task.exception() is not None)
            if failed and self._digests.get(key) is task:
                del self._digests[key]

    async def _digest(self, name: str, version: str) -> str:
        root = await self._artifact_path(name, version)
        if root is None:
            raise self._failed(
                "ArtifactsNotVerifiable",
                f"models:/{name}/{version}: its artifacts are not served through the tracking "
                f"server's artifact proxy ({PROXY}), so Ferry cannot record their digest",
            )
        entries: list[digest.Entry] = []
        await self._walk(root, "", entries, 0)
        return digest.digest(entries)

    async def _walk(self, root: str, rel: str, out: list[digest.Entry], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self._failed("ArtifactsNotVerifiable", f"artifact tree deeper than {MAX_DEPTH} levels")
        listing = await self._get("list_artifacts", ARTIFACTS, {"path": f"{root}/{rel}".rstrip("/")})
        if listing.status_code != 200:
            raise self._failed(
                "ArtifactsNotVerifiable",
                f"listing artifacts {rel or '/'} answered {listing.status_code}: {_message(listing)}",
            )
        for f in listing.json().get("files") or []:
            # The proxy lists base names; anything else would let a listing point outside the model.
            base = str(f.get("path", ""))
            if not base or "/" in base or base in (".", ".."):
                raise self._failed("ArtifactsNotVerifiable", f"artifact listing holds a bad name {base!r}")
            path = f"{rel}/{base}" if rel else base
            if f.get("is_dir"):
                await self._walk(root, path, out, depth + 1)
            else:
                out.append(await self._hash(root, path))

    async def _hash(self, root: str, path: str) -> digest.Entry:
        started = time.perf_counter()
        h, size = hashlib.sha256(), 0
        try:
            async with self._client.stream("GET", f"{ARTIFACTS}/{root}/{path}") as response:
                if response.status_code != 200:
                    await response.aread()
                    code = response.status_code
                    retryable = code >= 500 or code in (401, 403, 429)
                    reason = (
                        "RegistryUnauthorized"
                        if code in (401, 403)
                        else "RegistryUnavailable"
                        if retryable
                        else "ArtifactsNotVerifiable"
                    )
                    REGISTRY_ERRORS.labels("download_artifact", reason).inc()
                    raise RegistryError(
                        reason,
                        f"downloading artifact {path} answered {response.status_code}: {_message(response)}",
                        retryable=retryable,
                    )
                async for chunk in response.aiter_bytes(digest.CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        except httpx.TransportError as exc:
            REGISTRY_ERRORS.labels("download_artifact", "RegistryUnavailable").inc()
            raise RegistryError(
                "RegistryUnavailable",
                f"downloading artifact {path} from {self.config.tracking_uri} failed: "
                f"{type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        finally:
            REGISTRY_SECONDS.labels("download_artifact").observe(time.perf_counter() - started)
        return digest.Entry(path, size, h.hexdigest())

    def _failed(self, reason: str, message: str) -> RegistryError:
        REGISTRY_ERRORS.labels("artifact_digest", reason).inc()
        return RegistryError(reason, message, retryable=False)

    async def input_example(self, resolved: ResolvedVersion) -> Any | None:
        """The model's logged input example (JSON), or None when it has none or it cannot be read.

        Fetched through the tracking server's artifact proxy (``--serve-artifacts``), the same
        path a predictor in the cluster uses, so no storage credentials are needed here.
        """
        path = await self._artifact_path(resolved.name, resolved.version)
        if path is None:
            return None
        example = await self._get("get_input_example", f"{ARTIFACTS}/{path}/input_example.json", {})
        if example.status_code != 200:
            return None
        try:
            return example.json()
        except ValueError:
            return None


def _does_not_exist(response: httpx.Response) -> bool:
    try:
        return bool(response.json().get("error_code") == "RESOURCE_DOES_NOT_EXIST")
    except ValueError:
        return False


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))[:300]
    except ValueError:
        return response.text[:300]
