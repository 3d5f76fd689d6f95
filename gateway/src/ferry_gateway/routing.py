"""Which predictor serves a model (pure).

In development, upstreams are given explicitly (``--upstream NAME=URL``). In a cluster, the
operator's convention applies: ModelDeployment NAME in namespace NS is served by the Services
``NAME`` (active colour) and ``NAME-preview`` (preview colour), port 80, in NS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MODEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ModelRoute:
    protocol: str  # "v1" | "v2"
    model: str
    path: str  # forwarded unchanged to the predictor


def match_predict(path: str) -> ModelRoute | None:
    """``/v1/models/NAME:predict`` or ``/v2/models/NAME/infer``; None for anything else."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        name = path[len("/v1/models/") : -len(":predict")]
        return ModelRoute("v1", name, path)
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        name = path[len("/v2/models/") : -len("/infer")]
        return ModelRoute("v2", name, path)
    return None


def valid_model_name(name: str) -> bool:
    return MODEL_NAME.match(name) is not None


def parse_upstream(spec: str) -> tuple[str, str]:
    """``NAME=URL`` -> (name, url). Raises ValueError saying what is wrong."""
    name, sep, url = spec.partition("=")
    if not sep:
        raise ValueError(f"--upstream {spec!r}: expected NAME=URL")
    if not valid_model_name(name):
        raise ValueError(f"--upstream {spec!r}: NAME must be a DNS label (lowercase letters, digits, '-')")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--upstream {spec!r}: URL must start with http:// or https://")
    return name, url.rstrip("/")


@dataclass(frozen=True)
class Upstreams:
    """Static upstream map and/or the in-cluster naming convention."""

    active: dict[str, str] = field(default_factory=dict)
    preview: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    cluster_domain: str = "cluster.local"

    def resolve(self, model: str, preview: bool) -> str | None:
        table = self.preview if preview else self.active
        if model in table:
            return table[model]
        if self.namespace is not None and not self.active:
            service = f"{model}-preview" if preview else model
            return f"http://{service}.{self.namespace}.svc.{self.cluster_domain}"
        return None

    def known_models(self) -> list[str]:
        return sorted(self.active)
