"""Operator configuration, from the environment (set by the chart, or by `make run`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Self

from ferry_operator.builders import PredictorSettings
from ferry_operator.registry import RegistryConfig


def _float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{key}={raw!r}: must be > 0")
    return value


@dataclass(frozen=True)
class OperatorConfig:
    registry: RegistryConfig
    predictor: PredictorSettings
    poll_seconds: float = 30.0
    smoke_tester: str = "http"
    smoke_url_template: str = "http://{isvc}-predictor.{namespace}.svc.cluster.local"
    metrics_port: int = 9090

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        env = dict(os.environ if environ is None else environ)
        tracking = env.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
        registry = RegistryConfig(
            tracking_uri=tracking,
            token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            username=env.get("MLFLOW_TRACKING_USERNAME") or None,
            password=env.get("MLFLOW_TRACKING_PASSWORD") or None,
            timeout_seconds=_float(env, "FERRY_REGISTRY_TIMEOUT_SECONDS", 10.0),
        )
        predictor = PredictorSettings(
            # Predictors may reach MLflow by another address than the operator (in-cluster DNS).
            tracking_uri=env.get("FERRY_PREDICTOR_TRACKING_URI") or tracking,
            credentials_secret=env.get("FERRY_REGISTRY_SECRET") or None,
            deployment_mode=env.get("FERRY_DEPLOYMENT_MODE", "RawDeployment"),
            image=env.get("FERRY_PREDICTOR_IMAGE") or PredictorSettings.image,
        )
        return cls(
            registry=registry,
            predictor=predictor,
            poll_seconds=_float(env, "FERRY_REGISTRY_POLL_SECONDS", 30.0),
            smoke_tester=env.get("FERRY_SMOKE_TESTER", "http"),
            smoke_url_template=env.get("FERRY_SMOKE_URL_TEMPLATE", cls.smoke_url_template),
            metrics_port=int(env.get("FERRY_METRICS_PORT", "9090")),
        )
