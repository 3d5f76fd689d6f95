"""Load an MLflow model through MLflow's own clients and turn validated batches into predictions.

The URI may be ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/...`` or any artifact
URI MLflow can download (its artifact proxy, S3-compatible stores, local paths). Scikit-learn
models are compiled to the fast path when it reproduces their probabilities within
``TOLERANCE`` on probe rows; otherwise, and for every other flavour, the model itself predicts.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ferry_common import digest
from ferry_common.errors import ErrorCode, FerryError

from ferry_predictor.codec import Prediction
from ferry_predictor.fastpath import CompiledLinear, Unsupported, compile_pipeline
from ferry_predictor.schema import FLOAT_TYPES, INTEGER_TYPES, Batch, InputSchema, from_mlflow
from ferry_predictor.secrets import redact

log = logging.getLogger("ferry_predictor.model")

TOLERANCE = 1e-6
CONSTRAINTS_FILE = "ferry_constraints.json"
_MODELS_URI = re.compile(r"models:/(?P<name>[^/@\s]+)(?:/(?P<version>[^/\s]+)|@(?P<alias>[^/\s]+))/?")


class ArtifactMismatch(Exception):
    """The downloaded artifacts are not the ones the operator recorded for this version.

    Raised before anything is read from them: the model's pickle could run any code on load.
    """

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"artifact digest mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


@dataclass
class LoadedModel:
    uri: str
    version: str
    flavor: str
    schema: InputSchema | None
    example: dict[str, Any] | None
    fast: CompiledLinear | None = None
    fast_path_note: str = ""
    estimator: Any = None  # a scikit-learn model, used when the fast path is off
    pyfunc: Any = None
    load_seconds: float = 0.0

    @property
    def classes(self) -> list[Any] | None:
        """The class labels, in the order of the probability columns; None when there are none."""
        if self.fast is not None:
            return self.fast.classes
        if self.estimator is not None and hasattr(self.estimator, "predict_proba"):
            return [_py(c) for c in self.estimator.classes_]
        return None

    @property
    def blocking(self) -> bool:
        """True when predicting takes milliseconds, so the server should not run it on its event loop."""
        return self.fast is None

    def predict(self, batch: Batch) -> Prediction:
        if self.fast is not None:
            labels, proba = self.fast.predict(batch.columns, batch.rows)
            if np.isnan(proba).any():
                raise FerryError(
                    ErrorCode.INVALID_INPUT, "the model cannot handle a missing value in this input"
                )
            return Prediction(labels, proba, self.fast.classes)
        frame = to_frame(batch, self.schema)
        if self.estimator is not None and hasattr(self.estimator, "predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)
            classes = [_py(c) for c in self.estimator.classes_]
            return Prediction([classes[i] for i in proba.argmax(axis=1).tolist()], proba, classes)
        model = self.estimator if self.estimator is not None else self.pyfunc
        out = model.predict(frame)
        if isinstance(out, pd.DataFrame):
            out = out.iloc[:, 0] if out.shape[1] == 1 else out.to_numpy().tolist()
        values = out.tolist() if hasattr(out, "tolist") else list(out)
        return Prediction([_py(v) for v in values])


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def to_frame(batch: Batch, schema: InputSchema | None) -> pd.DataFrame:
    """The DataFrame an MLflow model expects: signature dtypes, NaN for missing values."""
    data: dict[str, Any] = {}
    for name, values in batch.columns.items():
        col = schema.by_name.get(name) if schema else None
        missing = any(v is None for v in values)
        if col is not None and (col.type in FLOAT_TYPES or (col.type in INTEGER_TYPES and missing)):
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif col is not None and col.type in INTEGER_TYPES:
            data[name] = np.array(values, dtype=np.int64)
        else:
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data)


def resolve_version(uri: str, tracking_uri: str | None, override: str | None) -> str:
    """The registry version this URI serves: the operator's FERRY_MODEL_VERSION, the URI's, or the alias'."""
    if override:
        return override
    m = _MODELS_URI.fullmatch(uri)
    if m is None:
        return "unregistered"
    if m["version"] is not None and m["version"].isdigit():
        return str(m["version"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if m["alias"] is not None:
        return str(client.get_model_version_by_alias(m["name"], m["alias"]).version)
    return m["version"] or "unknown"


def read_constraints(model_dir: Path) -> dict[str, Any]:
    for candidate in (model_dir / "extra_files" / CONSTRAINTS_FILE, model_dir / CONSTRAINTS_FILE):
        if candidate.is_file():
            loaded = json.loads(candidate.read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"{candidate.name} must hold an object {{column: {{min, max, enum}}}}")
            return loaded
    return {}


def read_example(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / "input_example.json"
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text())
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) and "columns" in loaded and "data" in loaded else None


def probe_batch(schema: InputSchema, example: dict[str, Any] | None) -> Batch:
    """Rows to check the fast path on: the input example, each optional value missing, every enum value."""
    if example is not None:
        base = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    else:
        base = [{c.name: (c.enum[0] if c.enum else _sample(c.type, c.minimum)) for c in schema.columns}]
    rows = list(base)
    for col in schema.columns:
        for row in base:
            if not col.required:
                rows.append({**row, col.name: None})
            for v in col.enum or ():
                rows.append({**row, col.name: v})
    # Pairs of missing optional values exercise imputers together.
    optional = [c.name for c in schema.columns if not c.required]
    for a, b in itertools.combinations(optional, 2):
        rows.append({**base[0], a: None, b: None})
    return schema.validate_records(rows, "probe")


def _sample(typ: str, minimum: float | None) -> Any:
    if typ in INTEGER_TYPES:
        return int(minimum) if minimum is not None else 1
    if typ in FLOAT_TYPES:
        return float(minimum) if minimum is not None else 1.0
    return True if typ == "boolean" else "x"


def try_fast_path(
    estimator: Any, schema: InputSchema | None, example: dict[str, Any] | None
) -> tuple[CompiledLinear | None, str]:
    """The compiled model if it matches the estimator on probe rows, else None and why not."""
    if schema is None:
        return None, "no signature to validate input against"
    try:
        fast = compile_pipeline(estimator)
        probes = probe_batch(schema, example)
        missing = set(p.column for p in fast.plans) - set(schema.names)
        if missing:
            return None, f"the pipeline reads columns the signature lacks: {sorted(missing)}"
        expected = np.asarray(estimator.predict_proba(to_frame(probes, schema)), dtype=np.float64)
        got = fast.predict_proba(probes.columns, probes.rows)
    except Unsupported as exc:
        return None, str(exc)
    except Exception as exc:  # a model we cannot probe keeps its own predict
        return None, f"probing failed: {exc!r}"
    worst = float(np.max(np.abs(expected - got))) if expected.shape == got.shape else float("inf")
    if not worst <= TOLERANCE:
        return (
            None,
            f"compiled probabilities differ by {worst:.3g} (> {TOLERANCE}) on {probes.rows} probe rows",
        )
    return fast, f"compiled; max |dp| {worst:.2g} on {probes.rows} probe rows"


def load(
    uri: str,
    tracking_uri: str | None,
    workdir: Path,
    version_override: str | None = None,
    artifact_digest: str | None = None,
) -> LoadedModel:
    """Download and load the model; with ``artifact_digest``, only when the download matches it."""
    import mlflow
    import mlflow.artifacts
    from mlflow.models import Model

    started = time.monotonic()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    version = resolve_version(uri, tracking_uri, version_override)
    where = redact(tracking_uri or "the default store")
    log.info("downloading %s (version %s) from %s", redact(uri), version, where)
    # A fresh directory per attempt: files left by an earlier one would count in the digest.
    target = workdir / "artifacts"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    downloaded = time.monotonic()
    if artifact_digest is not None:
        # Before MLmodel is parsed or any flavour unpickles: nothing of an unverified download runs.
        got = digest.directory_digest(local) if local.is_dir() else "sha256:(not a directory)"
        if got != artifact_digest:
            raise ArtifactMismatch(artifact_digest, got)
        log.info("artifacts of %s match %s", redact(uri), artifact_digest)
    meta = Model.load(str(local / "MLmodel"))
    constraints = read_constraints(local)
    schema: InputSchema | None = None
    if meta.signature is not None and meta.signature.inputs is not None:
        specs = meta.signature.inputs.to_dict()
        if all("name" in s and s.get("type") != "tensor" for s in specs):
            schema = from_mlflow(specs, constraints)
    example = read_example(local)
    flavors = meta.flavors
    if "sklearn" in flavors:
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(str(local))
        fast, note = try_fast_path(estimator, schema, example)
        loaded = LoadedModel(uri, version, "sklearn", schema, example, fast, note, estimator=estimator)
    else:
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(str(local))
        flavor = next((f for f in flavors if f != "python_function"), "python_function")
        loaded = LoadedModel(
            uri, version, flavor, schema, example, None, "not a scikit-learn model", pyfunc=pyfunc
        )
    loaded.load_seconds = time.monotonic() - started
    log.info(
        "loaded %s v%s (%s) in %.2fs (download %.2fs); fast path: %s",
        redact(uri),
        version,
        loaded.flavor,
        loaded.load_seconds,
        downloaded - started,
        "on" if loaded.fast else f"off ({loaded.fast_path_note})",
    )
    if loaded.fast:
        log.info("fast path: %s", loaded.fast_path_note)
    return loaded
