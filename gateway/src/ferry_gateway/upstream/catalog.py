"""What models a gateway in a cluster serves: ModelDeployments and their status (pure core).

Fed by a watch on ModelDeployments (``ferry_common.contract.MODEL_DEPLOYMENT``) in the model
namespace; answers GET /v1/models with version, colour and phase, lets the router say 404 for a
model that does not exist instead of trying a Service that is not there, and tells it which colour
serves (routing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelEntry:
    name: str
    phase: str
    version: str | None
    color: str | None
    ready: bool
    preview_version: str | None = None
    preview_ready: bool = False
    preview_color: str | None = None

    def describe(self, with_preview: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "status": self.phase,
            "version": self.version,
            "color": self.color,
            "ready": self.ready,
        }
        if with_preview:
            doc["preview"] = (
                {"version": self.preview_version, "ready": self.preview_ready}
                if self.preview_version
                else None
            )
        return doc


def entries(objs: Iterable[Mapping[str, Any]]) -> dict[str, ModelEntry]:
    out: dict[str, ModelEntry] = {}
    for obj in objs:
        name = str(obj.get("metadata", {}).get("name", ""))
        status = obj.get("status") or {}
        active = status.get("active") or {}
        preview = status.get("preview") or {}
        out[name] = ModelEntry(
            name=name,
            phase=str(status.get("phase") or "Pending"),
            version=active.get("modelVersion"),
            color=active.get("color"),
            ready=bool(active.get("ready")),
            preview_version=preview.get("modelVersion"),
            preview_ready=bool(preview.get("ready")),
            preview_color=preview.get("color"),
        )
    return out


class ModelCatalog:
    def __init__(self) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.synced = False
        self.listeners: list[Callable[[], None]] = []  # called after every change, on the event loop

    def update(self, objs: Mapping[str, Mapping[str, Any]]) -> None:
        self.models = entries(objs.values())
        self.synced = True
        for listener in self.listeners:
            listener()
