"""Which predictor serves a request (pure).

In development, upstreams are given explicitly (``--upstream NAME=URL``). In a cluster, the
route follows the ModelDeployment's status (see catalog.py): active traffic goes to the active
colour's own predictor Service, ``<NAME>-<colour>-predictor`` (KServe's Service for the
InferenceService ``<NAME>-<colour>`` in Standard/RawDeployment mode, port 80), and preview
traffic to the preview colour's, only while the preview is Ready.

Why not the operator's stable Services ``NAME`` / ``NAME-preview``: kube-proxy balances per
connection, so after the operator moves ``NAME``'s selector from blue to green, the gateway's
pooled keep-alive connections would keep reaching blue pods (responses mixing versions) until
they closed, and would break when blue is removed. A colour's own Service never changes
backends: when the status says green is active, every new request goes to green's Service on
green's own connections, and blue's idle connections are closed (upstream.py ``route_only``).
Those Services remain the fallback while the status names no colour yet.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferry_gateway.upstream.catalog import ModelEntry

MODEL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The operator's colours (ferry_operator.resource.Color); anything else in a status is not trusted
# into a host name and falls back to the stable Services.
COLOURS = frozenset({"blue", "green"})


VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Kind(enum.Enum):
    """Every call that names a model (or lists them), KServe v1 and Open Inference Protocol v2."""

    LIST = "list"  # GET /v1/models
    V1_READY = "v1-ready"  # GET /v1/models/NAME
    V1_PREDICT = "v1-predict"  # POST /v1/models/NAME:predict
    V2_METADATA = "v2-metadata"  # GET /v2/models/NAME[/versions/V]
    V2_READY = "v2-ready"  # GET /v2/models/NAME[/versions/V]/ready
    V2_INFER = "v2-infer"  # POST /v2/models/NAME[/versions/V]/infer

    @property
    def method(self) -> str:
        return "POST" if self in (Kind.V1_PREDICT, Kind.V2_INFER) else "GET"


@dataclass(frozen=True)
class ModelRoute:
    """A model call the gateway knows. ``path`` is what the predictor is sent: a version in the
    request picks the colour serving it, so the predictor gets the unversioned path (one model per
    predictor; KServe's own server refuses versioned paths)."""

    kind: Kind
    model: str  # a valid name (DNS label); "" only for LIST
    version: str | None
    path: str

    @property
    def protocol(self) -> str:
        return "v1" if self.kind in (Kind.LIST, Kind.V1_READY, Kind.V1_PREDICT) else "v2"


@dataclass(frozen=True)
class BadModelPath:
    """A path of a model call whose name (or version) cannot exist: no route, but the answer (404
    MODEL_NOT_FOUND naming ``field``) still comes after authentication, as for any model call."""

    kind: Kind
    field: str  # "name" | "version"
    reason: str


_V1 = "/v1/models/"
_V2 = "/v2/models/"


def match_model_route(path: str) -> ModelRoute | BadModelPath | None:
    """The model call a path names; BadModelPath for a model path with an impossible name or
    version; None for a path that is no model call at all."""
    if path == "/v1/models":
        return ModelRoute(Kind.LIST, "", None, path)
    if path.startswith(_V1):
        rest = path[len(_V1) :]
        if rest.endswith(":predict"):
            return _named(Kind.V1_PREDICT, rest[: -len(":predict")], None, path)
        return _named(Kind.V1_READY, rest, None, f"/v2/models/{rest}/ready")
    if path.startswith(_V2):
        rest = path[len(_V2) :]
        kind, suffix = Kind.V2_METADATA, ""
        for k, s in ((Kind.V2_READY, "/ready"), (Kind.V2_INFER, "/infer")):
            if rest.endswith(s):
                kind, suffix, rest = k, s, rest[: -len(s)]
                break
        name, sep, version = rest.partition("/versions/")
        if not sep:
            return _named(kind, rest, None, f"/v2/models/{rest}{suffix}")
        if not valid_version(version):
            if not valid_model_name(name):
                return BadModelPath(kind, "name", "not a valid model name (DNS label)")
            return BadModelPath(kind, "version", "not a valid version (letters, digits, '.', '_', '-')")
        return _named(kind, name, version, f"/v2/models/{name}{suffix}")
    return None


def _named(kind: Kind, name: str, version: str | None, forward: str) -> ModelRoute | BadModelPath:
    if not valid_model_name(name):
        return BadModelPath(kind, "name", "not a valid model name (DNS label)")
    return ModelRoute(kind, name, version, forward)


def valid_version(version: str) -> bool:
    return VERSION.fullmatch(version) is not None


def valid_model_name(name: str) -> bool:
    # fullmatch: with match, "$" accepts a trailing newline, which would then reach the request line
    return MODEL_NAME.fullmatch(name) is not None


def colour_serving(
    version: str, active: str | None, preview: str | None, *, may_preview: bool, preview_only: bool
) -> bool | None:
    """Which colour serves ``version``: False the active one, True the preview, None neither (for
    this caller: the preview counts only with the preview scope, and only the preview when the
    preview header was sent)."""
    if not preview_only and active is not None and version == active:
        return False
    if may_preview and preview is not None and version == preview:
        return True
    return None


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


def predictor_service(model: str, colour: str) -> str:
    """KServe's Service for the InferenceService ``<model>-<colour>`` (ferry_operator.builders)."""
    return f"{model}-{colour}-predictor"


@dataclass(frozen=True)
class Route:
    url: str
    color: str | None  # the colour whose own Service is used; None: static URL or stable Service


@dataclass(frozen=True)
class Refusal:
    not_ready: bool  # True: 503 MODEL_NOT_READY (try again later); False: 404 MODEL_NOT_FOUND
    message: str


@dataclass(frozen=True)
class Upstreams:
    """Static upstream map and/or the in-cluster routes derived from ModelDeployment status."""

    active: dict[str, str] = field(default_factory=dict)
    preview: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    cluster_domain: str = "cluster.local"

    def service_url(self, service: str) -> str:
        return f"http://{service}.{self.namespace}.svc.{self.cluster_domain}"

    def route(self, model: str, preview: bool, models: Mapping[str, ModelEntry] | None) -> Route | Refusal:
        """Where this request goes, from the catalog (``None``: no catalog, or not listed yet)."""
        entry = None
        if models is not None:
            entry = models.get(model)
            if entry is None:
                return Refusal(False, "no ModelDeployment provides this model")
            if preview and entry.preview_version is None:
                return Refusal(False, "no ModelDeployment provides a preview colour of this model")
            if not preview and entry.version is None:
                return Refusal(True, f"model {model} has no active version yet (phase {entry.phase})")
            if preview and not entry.preview_ready:
                return Refusal(
                    True, f"the preview of model {model} (version {entry.preview_version}) is not ready yet"
                )
        table = self.preview if preview else self.active
        if model in table:
            return Route(table[model], None)
        if self.namespace is None or self.active:
            what = "a preview colour" if preview and model in self.active else "this model"
            return Refusal(False, f"this gateway does not serve {what}")
        colour = None if entry is None else (entry.preview_color if preview else entry.color)
        if colour in COLOURS:
            return Route(self.service_url(predictor_service(model, str(colour))), colour)
        return Route(self.service_url(f"{model}-preview" if preview else model), None)

    def resolve(self, model: str, preview: bool) -> str | None:
        """The URL without a catalog (static routes, or the stable Services)."""
        r = self.route(model, preview, None)
        return r.url if isinstance(r, Route) else None

    def routed(self, models: Mapping[str, ModelEntry]) -> set[str]:
        """Every URL a request may be sent to now: connections to any other can be closed."""
        urls = set(self.active.values()) | set(self.preview.values())
        for name in models:
            for preview in (False, True):
                r = self.route(name, preview, models)
                if isinstance(r, Route):
                    urls.add(r.url)
        return urls

    def known_models(self) -> list[str]:
        return sorted(self.active)
