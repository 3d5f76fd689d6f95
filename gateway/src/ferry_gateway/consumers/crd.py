"""The ``Consumer`` custom resource (ferry.dev/v1alpha1): typed models, the ONE source of its schema.

``consumer_crd()`` returns the full CustomResourceDefinition (written to manifests/crds/ by
``make generate``; ``ferry_common.crdschema`` translates the models' JSON Schema for it, as it
does for the ModelDeployment CRD; its API names are ``ferry_common.contract.CONSUMER``). The same
spec models validate consumers loaded from a file, where API keys are given inline as keyed hashes
instead of Secret references.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ferry_common import contract, crdschema
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["predict", "preview", "admin"]
SCOPES: tuple[str, ...] = ("predict", "preview", "admin")
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TIER_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
HASH_PATTERN = r"^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$"


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
        description="predict: call models; preview: reach the preview colour; "
        "admin: read any declared consumer's usage (GET /v1/usage?consumer=NAME).",
    )
    models: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]] | None = Field(
        default=None,
        description="Allow-list of ModelDeployment names; absent means every model.",
    )
    disabled: bool = Field(default=False, description="Refuse every credential of this consumer at once.")


# A keyed hash is no credential (an HMAC under the gateway's pepper of a 256-bit random key), so
# it can live in the Consumer itself, and then the gateway needs no access to Secrets at all.
class ApiKeyRef(_Strict):
    """One API key: its keyed hash inline, or a Secret holding that hash."""

    hash: str | None = Field(
        default=None,
        pattern=HASH_PATTERN,
        description="The key's keyed hash, as `ferry keys patch` writes it (exactly one of hash and name).",
    )
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=253,
        description="Secret in the Consumer's namespace, labelled ferry.dev/api-key=true, holding the "
        "key's keyed hash (`ferry keys secret`); read only by a gateway allowed to read Secrets "
        "(FERRY_KEY_SECRETS, chart gateway.keySecrets).",
    )
    key: str = Field(default="apiKey", min_length=1, max_length=253, description="Data key in the Secret.")
    expires_at: datetime | None = Field(
        default=None, alias="expiresAt", description="Refused from this time on."
    )
    revoked: bool = Field(default=False, description="Refused at once when true.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeyRef:
        if (self.hash is None) == (self.name is None):
            raise ValueError("exactly one of hash and name (a Secret) must be set")
        return self


ApiKeyRef.model_config["json_schema_extra"] = {
    "x-kubernetes-validations": [
        {
            "rule": "has(self.hash) != has(self.name)",
            "message": "exactly one of hash and name (a Secret) must be set",
        }
    ]
}
SecretKeyRef = ApiKeyRef  # the name before keys could be inline


class ConsumerSpec(ConsumerBase):
    """spec of a Consumer resource. The consumer's name is metadata.name."""

    api_keys: list[ApiKeyRef] = Field(default_factory=list, alias="apiKeys")


class FileApiKey(_Strict):
    hash: str = Field(pattern=HASH_PATTERN, description="Keyed hash of the key.")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    expires_at: datetime | None = Field(default=None, alias="expiresAt")
    revoked: bool = False


class FileConsumer(ConsumerBase):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    api_keys: list[FileApiKey] = Field(default_factory=list, alias="apiKeys")


class ConsumersFile(_Strict):
    consumers: list[FileConsumer] = Field(default_factory=list)


def spec_schema() -> dict[str, Any]:
    schema = crdschema.structural(ConsumerSpec.model_json_schema(by_alias=True))
    schema["properties"]["scopes"]["items"].pop("const", None)
    schema["properties"]["scopes"]["x-kubernetes-list-type"] = "set"
    schema["properties"]["scopes"]["default"] = ["predict"]
    return schema


def consumer_crd() -> dict[str, Any]:
    """The full CustomResourceDefinition for Consumer, ready to dump as YAML."""
    return crdschema.custom_resource_definition(
        contract.CONSUMER,
        schema=crdschema.resource_schema(
            "A caller of the Ferry gateway: tier, scopes, models, API keys.", spec_schema()
        ),
        printer_columns=[
            {"name": "Tier", "type": "string", "jsonPath": ".spec.tier"},
            {"name": "Scopes", "type": "string", "jsonPath": ".spec.scopes"},
            {"name": "Disabled", "type": "boolean", "jsonPath": ".spec.disabled"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        labels={contract.LABEL_PART_OF: contract.PART_OF},
    )
