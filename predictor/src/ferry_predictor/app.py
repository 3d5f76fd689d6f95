"""The HTTP surface: KServe v1, Open Inference Protocol v2, health and metadata; /metrics is served
from ``exposition`` on a port of its own (``ferry_common.metricsport``).

A bare ASGI application rather than FastAPI: on the fast path the model answers in tens of
microseconds, so routing, body parsing and validation layers would be most of a request's cost.
The model loads in a background thread; until it has loaded, the server is live but not ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from ferry_common.asgi import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    declared_length,
    header,
    lifespan,
    read_body,
)
from ferry_common.contract import PredictorEnv
from ferry_common.errors import ErrorCode, FerryError, FieldError, envelope, new_request_id
from ferry_common.logs import bind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ferry_predictor import __version__, binary
from ferry_predictor.codec import (
    COLUMN_DATATYPES,
    Identity,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
    v1_from_mlflow_example,
    v2_datatype,
    v2_from_mlflow_example,
)
from ferry_predictor.config import Config
from ferry_predictor.metrics import Metrics
from ferry_predictor.model import ArtifactMismatch, LoadedModel, load
from ferry_predictor.secrets import redact

log = logging.getLogger("ferry_predictor")

Loader = Callable[[Config], LoadedModel]

_JSON = b"application/json"
_OCTETS = b"application/octet-stream"
_OUTPUTS = ("predictions", "probabilities")
# Triton's name for the binary tensor extension, as /v2 (server metadata) lists extensions.
_EXTENSIONS = ["binary_tensor_data"]
_DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY


def default_loader(config: Config) -> LoadedModel:
    return load(
        config.model_uri,
        config.tracking_uri,
        config.workdir,
        config.version_override,
        config.artifact_digest,
    )


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


class PredictorApp:
    def __init__(
        self, config: Config, metrics: Metrics | None = None, loader: Loader = default_loader
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.loader = loader
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        # Set when the artifacts did not match FERRY_ARTIFACT_DIGEST: refused for good (see below).
        self.refused: ArtifactMismatch | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        name = config.model_name
        self._v1_predict = f"/v1/models/{name}:predict"
        self._v2_prefix = f"/v2/models/{name}"

    # -- model loading -------------------------------------------------------------------------

    def start_loading(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._load_until_loaded, name="model-loader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _load_until_loaded(self) -> None:
        cfg = self.config
        delay, attempt = 2.0, 1
        log.info("loading model %r from %s", cfg.model_name, redact(cfg.model_uri))
        while not self._stop.is_set():
            try:
                model = self.loader(cfg)
            except ArtifactMismatch as exc:
                # Not retried: the store holds something other than what was verified, and
                # downloading it again will not make it trustworthy. Live but never ready; once
                # the artifacts are restored (or the version replaced), a new pod loads.
                self.refused = exc
                self.load_error = str(exc)
                self.metrics.artifact_mismatch.labels(cfg.model_name, self.version).set(1)
                log.error(
                    "model %r version %s refused: its artifacts differ from the recorded digest "
                    "(expected %s, got %s); not loading them, not ready",
                    cfg.model_name,
                    self.version,
                    exc.expected,
                    exc.got,
                )
                return
            except Exception as exc:
                self.load_error = self._scrub(f"{type(exc).__name__}: {exc}")
                self.metrics.load_failures.labels(cfg.model_name).inc()
                log.error(
                    "model %r failed to load (attempt %d) from %s: %s; not ready, retrying in %.0fs",
                    cfg.model_name,
                    attempt,
                    redact(cfg.model_uri),
                    self.load_error,
                    delay,
                )
                self._stop.wait(delay)
                delay, attempt = min(delay * 2, cfg.retry_max_seconds), attempt + 1
                continue
            # Everything loaded so far lives as long as the process: freezing it keeps the collector's
            # full passes (the long pauses behind p99 spikes) from walking MLflow's and sklearn's objects.
            gc.collect()
            gc.freeze()
            self.model, self.load_error = model, None
            m, v = cfg.model_name, self.version
            self.metrics.ready.labels(m, v).set(1)
            self.metrics.load_seconds.labels(m, v).set(model.load_seconds)
            self.metrics.fast_path.labels(m, v).set(1 if model.fast else 0)
            self.metrics.artifact_mismatch.labels(m, v).set(0)
            log.info("model %r version %s ready (fast path %s)", m, v, "on" if model.fast else "off")
            return

    def _scrub(self, text: str) -> str:
        for uri in (self.config.tracking_uri, self.config.model_uri):
            if uri and redact(uri) != uri:
                text = text.replace(uri, redact(uri))
        for secret in self.config.credentials:
            text = text.replace(secret, "***")
        return text

    @property
    def version(self) -> str:
        if self.model is not None:
            return self.model.version
        return self.config.version_override or "unknown"

    def identity(self) -> Identity:
        return Identity(self.config.model_name, self.version, self.config.color)

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send, self._startup, self._shutdown)

    async def _startup(self) -> None:
        self.start_loading()

    async def _shutdown(self) -> None:
        self.stop()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = header(scope, b"x-request-id") or new_request_id()
        with bind(request_id=request_id):
            await self._answer(scope, receive, send, request_id)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        method, path = scope["method"], scope["path"]
        try:
            if method == "POST":
                if path == self._v1_predict:
                    response = await self._infer(scope, receive, request_id, "v1")
                elif (
                    path.startswith(self._v2_prefix)
                    and path.endswith("/infer")
                    and self._v2_model_path(path[:-6])
                ):
                    response = await self._infer(scope, receive, request_id, "v2")
                else:
                    response = self._not_found_or_method(path, "POST")
            elif method in ("GET", "HEAD"):
                response = self._get(path)
            else:
                raise FerryError(ErrorCode.METHOD_NOT_ALLOWED, f"{method} is not supported here")
        except ClientDisconnected:
            log.debug("client went away before sending its whole body: %s %s", method, path)
            return  # nobody is left to answer
        except FerryError as err:
            extra = tuple((k.lower().encode(), v.encode()) for k, v in err.headers.items())
            response = Response(err.status, orjson.dumps(err.envelope(request_id)), headers=extra)
        except Exception:
            log.exception("unexpected error on %s %s (request %s)", method, path, request_id)
            response = Response(
                500, orjson.dumps(envelope(ErrorCode.INTERNAL, "internal error", None, request_id))
            )
        await self._send(send, response, request_id, head=method == "HEAD")

    def _v2_model_path(self, path: str) -> bool:
        """``/v2/models/NAME`` or ``/v2/models/NAME/versions/V`` (any version: one model per server)."""
        rest = path[len(self._v2_prefix) :]
        return rest == "" or (rest.startswith("/versions/") and "/" not in rest[10:] and len(rest) > 10)

    async def _send(self, send: Send, r: Response, request_id: str, head: bool = False) -> None:
        headers = [(b"content-type", r.content_type), (b"x-request-id", request_id.encode()), *r.headers]
        if self.model is not None:
            headers.append((b"x-ferry-model-version", self.model.version.encode()))
        if self.config.color:
            headers.append((b"x-ferry-color", self.config.color.encode()))
        await send({"type": "http.response.start", "status": r.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else r.body})

    def exposition(self) -> tuple[bytes, str]:
        """What the metrics port answers to GET /metrics."""
        return generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST

    def _refusal(self) -> FerryError:
        """What readiness and inference answer once the artifacts were refused (503, the envelope)."""
        assert self.refused is not None
        return FerryError(
            ErrorCode.MODEL_NOT_READY,
            f"model {self.config.model_name!r} version {self.version} was refused: its artifacts "
            "differ from the digest recorded for this version",
            [
                FieldError(
                    PredictorEnv.ARTIFACT_DIGEST,
                    f"expected {self.refused.expected}, got {self.refused.got}",
                )
            ],
        )

    def _get(self, path: str) -> Response:
        name = self.config.model_name
        ready = self.model is not None
        if path in ("/", "/v2/health/live"):
            return _json(200, {"status": "alive", "live": True})
        readiness = path in ("/v2/health/ready", f"/v1/models/{name}", f"{self._v2_prefix}/ready") or (
            path.endswith("/ready") and self._v2_model_path(path[:-6])
        )
        if readiness and self.refused is not None:
            raise self._refusal()
        if path == "/v2/health/ready":
            return _json(200 if ready else 503, {"ready": ready})
        if path == "/v2":
            return _json(200, {"name": "ferry-predictor", "version": __version__, "extensions": _EXTENSIONS})
        if path == "/v1/models":
            return _json(200, {"models": [name]})
        if path == f"/v1/models/{name}":
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        if path == f"{self._v2_prefix}/ready" or (path.endswith("/ready") and self._v2_model_path(path[:-6])):
            return _json(200 if ready else 503, {"name": name, "ready": ready})
        if path.startswith(self._v2_prefix) and self._v2_model_path(path):
            return _json(200, self._metadata())
        return self._not_found_or_method(path, "GET")

    def _not_found_or_method(self, path: str, method: str) -> Response:
        if path.startswith(("/v1/models/", "/v2/models/")):
            known = path.startswith((f"/v1/models/{self.config.model_name}", self._v2_prefix))
            if not known:
                raise FerryError(
                    ErrorCode.MODEL_NOT_FOUND,
                    f"no model named in {path!r}; this server serves {self.config.model_name!r}",
                )
            if method == "GET" and (path.endswith(":predict") or path.endswith("/infer")):
                raise FerryError(ErrorCode.METHOD_NOT_ALLOWED, f"{path} takes POST")
        raise FerryError(ErrorCode.NOT_FOUND, f"no route {method} {path}")

    def _metadata(self) -> dict[str, Any]:
        m = self.model
        inputs: list[dict[str, Any]] = []
        if m is not None and m.schema is not None:
            inputs = [
                {
                    "name": c.name,
                    "datatype": COLUMN_DATATYPES.get(c.type, "BYTES"),
                    "shape": [-1],
                    "parameters": {"required": c.required},
                }
                for c in m.schema.columns
            ]
        classes = m.classes if m is not None else None
        outputs: list[dict[str, Any]] = [
            {"name": "predictions", "datatype": v2_datatype(classes) if classes else "BYTES", "shape": [-1]}
        ]
        if classes:
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP64",
                    "shape": [-1, len(classes)],
                    "parameters": {"classes": ",".join(str(c) for c in classes)},
                }
            )
        parameters: dict[str, Any] = {
            "color": self.config.color,
            "ready": m is not None,
            "fast_path": bool(m and m.fast),
            "model_uri": redact(self.config.model_uri),
        }
        if m is not None and m.example is not None:
            parameters["examples"] = {
                "v1": v1_from_mlflow_example(m.example),
                "v2": v2_from_mlflow_example(m.example, m.schema),
            }
        return {
            "name": self.config.model_name,
            "versions": [self.version],
            "platform": f"mlflow-{m.flavor}" if m else "mlflow",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": parameters,
        }

    async def _infer(self, scope: Scope, receive: Receive, request_id: str, protocol: str) -> Response:
        started = time.perf_counter()
        status: int | None = 500
        try:
            response = await self._infer_inner(scope, receive, request_id, protocol)
            status = response.status
            return response
        except FerryError as err:
            status = err.status
            raise
        except ClientDisconnected:
            status = None  # not answered, so not counted under any status
            raise
        finally:
            if status is not None:
                self.metrics.observe_request(
                    self.config.model_name, self.version, protocol, status, time.perf_counter() - started
                )

    async def _infer_inner(self, scope: Scope, receive: Receive, request_id: str, protocol: str) -> Response:
        body = await self._read_body(scope, receive)
        model = self.model
        if model is None and self.refused is not None:
            raise self._refusal()
        if model is None:
            raise FerryError(
                ErrorCode.MODEL_NOT_READY,
                f"model {self.config.model_name!r} is not loaded yet",
                headers={"retry-after": "5"},
            )
        framed = header(scope, binary.HEADER_KEY) if protocol == "v2" else None
        if framed is not None:
            payload = binary.decode_request(body, framed)
        else:
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise FerryError(ErrorCode.INVALID_JSON, f"request body is not valid JSON: {exc}") from None
        wanted: binary.Requested | None = None  # None: the answer is plain JSON
        if protocol == "v1":
            batch = decode_v1(payload, model.schema, self.config.max_batch_rows)
        else:
            batch = decode_v2(payload, model.schema, self.config.max_batch_rows)
            if "outputs" in payload or "parameters" in payload:
                wanted = binary.requested(payload, _OUTPUTS if model.classes else _OUTPUTS[:1])
        if model.blocking:
            prediction = await asyncio.to_thread(model.predict, batch)
        else:
            prediction = model.predict(batch)
        self.metrics.observe_batch(
            self.config.model_name, model.version, batch, model.schema, prediction.labels
        )
        who = self.identity()
        if protocol == "v1":
            return Response(200, orjson.dumps(encode_v1(prediction, who), option=_DUMP_OPTS))
        out = encode_v2(prediction, who, request_id)
        if wanted is None:
            return Response(200, orjson.dumps(out, option=_DUMP_OPTS))
        content, header_length = binary.render(out, wanted)
        if header_length is None:
            return Response(200, content)
        framing = ((binary.HEADER_KEY, str(header_length).encode()),)
        return Response(200, content, _OCTETS, framing)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        body = await read_body(
            receive,
            limit=self.config.max_body_bytes,
            declared=declared_length(scope),
            deadline_seconds=self.config.body_timeout_seconds,
        )
        if not body:
            raise FerryError(ErrorCode.INVALID_JSON, "request body is empty; send a JSON object")
        return body


def _json(status: int, obj: Any) -> Response:
    return Response(status, orjson.dumps(obj))
