"""The ``Consumer`` custom resource (ferry.dev/v1alpha1): typed models, the ONE source of its schema.

``consumer_crd()`` returns the full CustomResourceDefinition (written to manifests/crds/ by
``make manifests``). The same spec models validate consumers loaded from a file, where API keys
are given inline as keyed hashes instead of Secret references.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "ferry.dev"
VERSION = "v1alpha1"
KIND = "Consumer"
PLURAL = "consumers"

Scope = Literal["predict", "preview", "admin"]
SCOPES: tuple[str, ...] = ("predict", "preview", "admin")
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TIER_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConsumerBase(_Strict):
    tier: str = Field(
        default="free",
        pattern=TIER_PATTERN,
        description="Rate-limit tier configured on the gateway (defaults: free, basic, pro, enterprise).",
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["predict"]),
        description="predict: call models; preview: reach the preview colour; admin: operate the gateway.",
    )
    models: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]] | None = Field(
        default=None,
        description="Allow-list of ModelDeployment names; absent means every model.",
    )
    disabled: bool = Field(default=False, description="Refuse every credential of this consumer at once.")


class SecretKeyRef(_Strict):
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Secret in the Consumer's namespace, labelled ferry.dev/api-key=true; "
        "its value is the API key, or its keyed hash from `ferry keys create`.",
    )
    key: str = Field(default="apiKey", min_length=1, max_length=253, description="Data key in the Secret.")
    expires_at: datetime | None = Field(
        default=None, alias="expiresAt", description="Refused from this time on."
    )
    revoked: bool = Field(default=False, description="Refused at once when true.")


class ConsumerSpec(ConsumerBase):
    """spec of a Consumer resource. The consumer's name is metadata.name."""

    api_keys: list[SecretKeyRef] = Field(default_factory=list, alias="apiKeys")


class FileApiKey(_Strict):
    hash: str = Field(pattern=r"^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$", description="Keyed hash of the key.")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    expires_at: datetime | None = Field(default=None, alias="expiresAt")
    revoked: bool = False


class FileConsumer(ConsumerBase):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    api_keys: list[FileApiKey] = Field(default_factory=list, alias="apiKeys")


class ConsumersFile(_Strict):
    consumers: list[FileConsumer] = Field(default_factory=list)


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """Kubernetes structural schemas allow no $ref/anyOf-null: inline refs, turn Optional into nullable."""
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _inline(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(options) == 1:
            merged = {**_inline(options[0], defs), **_inline(rest, defs), "nullable": True}
            if merged.get("default", 0) is None:
                del merged["default"]  # a null default is meaningless to the API server
            return merged
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in ("title", "$defs"):
            continue
        if k == "properties":
            out[k] = {name: _inline(p, defs) for name, p in v.items()}
        elif k == "additionalProperties" and v is False:
            continue  # structural schemas reject unknown fields by pruning already
        elif k == "format" and v == "date-time":
            out[k] = v
        else:
            out[k] = _inline(v, defs)
    return out


def spec_schema() -> dict[str, Any]:
    raw = ConsumerSpec.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    schema["properties"]["scopes"]["items"].pop("const", None)
    schema["properties"]["scopes"]["x-kubernetes-list-type"] = "set"
    schema["properties"]["scopes"]["default"] = ["predict"]
    return schema


def consumer_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition for Consumer, ready to dump as YAML."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "ferry"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": "consumer",
                "listKind": "ConsumerList",
                "shortNames": ["fc"],
                "categories": ["ferry"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A caller of the Ferry gateway: tier, scopes, models, API keys.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                            },
                        }
                    },
                    "additionalPrinterColumns": [
                        {"name": "Tier", "type": "string", "jsonPath": ".spec.tier"},
                        {"name": "Scopes", "type": "string", "jsonPath": ".spec.scopes"},
                        {"name": "Disabled", "type": "boolean", "jsonPath": ".spec.disabled"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }
