"""The one list of metric names: read from the components' own metric modules and registries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

# Series a family of each type exposes (prometheus_client, text format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Family:
    component: str
    name: str  # family name as prometheus_client reports it (counters without _total)
    type: str

    def series(self) -> tuple[str, ...]:
        return tuple(self.name + s for s in _SUFFIXES.get(self.type, ("",)))


def _from_registry(component: str, registry: CollectorRegistry) -> list[Family]:
    return [Family(component, m.name, m.type) for m in registry.collect()]


def _from_collectors(component: str, collectors: Iterable[object]) -> list[Family]:
    out: list[Family] = []
    for c in collectors:
        if isinstance(c, MetricWrapperBase):
            out.extend(Family(component, m.name, m.type) for m in c.describe())
    return out


def families() -> list[Family]:
    """Every metric family the operator, gateway and predictor export."""
    from ferry_gateway import metrics as gateway
    from ferry_operator import metrics as operator
    from ferry_predictor import metrics as predictor

    return [
        *_from_collectors("operator", vars(operator).values()),
        *_from_registry("gateway", gateway.REGISTRY),
        *_from_registry("predictor", predictor.Metrics().registry),
    ]


def declared_names() -> dict[str, tuple[str, ...]]:
    """The exposition names each component declares as constants (gateway, predictor)."""
    from ferry_gateway import metrics as gateway
    from ferry_predictor import metrics as predictor

    return {"gateway": tuple(gateway.ALL_NAMES), "predictor": tuple(predictor.ALL)}


def exported_series() -> dict[str, str]:
    """Series name -> component, for every series the code can expose."""
    return {s: f.component for f in families() for s in f.series()}
