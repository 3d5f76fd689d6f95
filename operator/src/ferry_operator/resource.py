"""The ModelDeployment resource: the single source of truth for its schema.

These pydantic models serve twice: ``ferry_generate.crds`` (through ``ferry_common.crdschema``)
turns them into the CRD's openAPIV3Schema (so ``kubectl apply`` rejects bad specs before the
operator sees them), and the operator parses every spec through them again, so defaults and
validation are the same in both places. Rules a JSON schema cannot express live as CEL
(``x-kubernetes-validations``) next to the field they guard; the pydantic validators mirror them
for the operator's own parsing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

# The InferenceService `<name>-green` gets a KServe Service `<name>-green-predictor`, and Service
# names are DNS-1035 labels of at most 63 characters: 63 - len("-green-predictor") = 47.
MAX_NAME_LENGTH = 47
DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# MLflow's own rules: aliases are word characters and dashes; `latest` and `vN` are reserved.
MLFLOW_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MLFLOW_ALIAS = r"^[A-Za-z0-9_-]+$"
MLFLOW_VERSION = r"^[1-9][0-9]{0,9}$"
# Kubernetes' resource.Quantity grammar (the same pattern the upstream CRDs carry).
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY)],
    Field(json_schema_extra={"x-ferry-quantity": True}),
]


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def _defaults(model: type[BaseModel]) -> JsonDict:
    """A sub-object's full default. The API server checks CEL rules against a ``default`` as
    written (nested defaults not applied), so ``default: {}`` would fail ``min <= max``."""
    dumped: JsonDict = model().model_dump(mode="json", exclude_none=True)
    return dumped


class _Strict(BaseModel):
    # Unknown fields are an error in the operator as they are in the API server (structural
    # schemas prune them there; here they would hide a typo).
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelRef(_Strict):
    """The MLflow registered model to serve, by alias (followed) or by version (pinned)."""

    name: str = Field(
        min_length=1, max_length=256, pattern=MLFLOW_MODEL_NAME, description="MLflow registered model name."
    )
    alias: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=MLFLOW_ALIAS,
        description="Follow this registry alias; moving it in MLflow starts a rollout.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self != 'latest' && !self.matches('^[vV][0-9]+$')",
                    "model.alias must not be 'latest' or 'v<number>': MLflow reserves those names",
                )
            ]
        },
    )
    version: str | None = Field(
        default=None,
        pattern=MLFLOW_VERSION,
        description="Pin this registry version (a positive integer, as a string).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelRef:
        if (self.alias is None) == (self.version is None):
            raise ValueError("exactly one of model.alias and model.version must be set")
        if self.alias is not None and (self.alias == "latest" or re.fullmatch(r"[vV][0-9]+", self.alias)):
            raise ValueError("model.alias must not be 'latest' or 'v<number>': MLflow reserves those names")
        return self

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


ModelRef.model_config["json_schema_extra"] = {
    "x-kubernetes-validations": [
        cel(
            "has(self.alias) != has(self.version)",
            "exactly one of model.alias and model.version must be set",
        )
    ]
}


class Resources(_Strict):
    """Compute resources of each predictor pod (Kubernetes quantities)."""

    requests: dict[str, Quantity] | None = Field(default=None, json_schema_extra={"maxProperties": 8})
    limits: dict[str, Quantity] | None = Field(default=None, json_schema_extra={"maxProperties": 8})


class Predictor(_Strict):
    """How each colour's predictor runs."""

    runtime: str = Field(
        default="ferry-mlflow",
        max_length=63,
        pattern=DNS1035,
        description="KServe ClusterServingRuntime that serves the model.",
    )
    resources: Resources = Field(
        default_factory=Resources, json_schema_extra={"default": _defaults(Resources)}
    )


class ScaleMetric(StrEnum):
    cpu = "cpu"
    memory = "memory"


class Autoscaling(_Strict):
    """KServe HPA settings for each colour (utilization targets in percent of requests)."""

    minReplicas: int = Field(default=1, ge=1, le=100)
    maxReplicas: int = Field(default=3, ge=1, le=100)
    metric: ScaleMetric = Field(default=ScaleMetric.cpu, description="cpu or memory utilization.")
    target: int = Field(default=80, ge=10, le=100, description="Target utilization, percent.")

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.minReplicas > self.maxReplicas:
            raise ValueError("autoscaling.minReplicas must be <= autoscaling.maxReplicas")
        return self


Autoscaling.model_config["json_schema_extra"] = {
    "x-kubernetes-validations": [
        cel(
            "self.minReplicas <= self.maxReplicas",
            "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
        )
    ]
}


class SmokeRequest(_Strict):
    """One request sent to the preview before promotion."""

    protocol: Literal["v1", "v2"] = Field(default="v1", description="v1 (:predict) or v2 (/infer).")
    body: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class SmokeTest(_Strict):
    """Requests sent to the preview; every response must be 2xx and well-formed."""

    enabled: bool = True
    requests: list[SmokeRequest] = Field(
        default_factory=list,
        max_length=20,
        description="Defaults to the model's MLflow input example when empty.",
    )
    timeoutSeconds: int = Field(default=10, ge=1, le=300)
    maxLatencyMilliseconds: int | None = Field(default=None, ge=1, le=600_000)


class Strategy(StrEnum):
    BlueGreen = "BlueGreen"


class Rollout(_Strict):
    """How a new model version replaces the serving one."""

    strategy: Strategy = Strategy.BlueGreen
    autoPromote: bool = True
    smokeTest: SmokeTest = Field(
        default_factory=SmokeTest, json_schema_extra={"default": _defaults(SmokeTest)}
    )
    scaleDownDelaySeconds: int = Field(default=300, ge=0, le=86_400)
    progressDeadlineSeconds: int = Field(default=600, ge=30, le=86_400)
    historyLimit: int = Field(default=10, ge=1, le=100)


class ModelDeploymentSpec(_Strict):
    model: ModelRef
    predictor: Predictor = Field(
        default_factory=Predictor, json_schema_extra={"default": _defaults(Predictor)}
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, json_schema_extra={"default": _defaults(Autoscaling)}
    )
    rollout: Rollout = Field(default_factory=Rollout, json_schema_extra={"default": _defaults(Rollout)})


# ---- status (written only by the operator) ----


class Phase(StrEnum):
    Pending = "Pending"
    Deploying = "Deploying"
    Verifying = "Verifying"
    AwaitingPromotion = "AwaitingPromotion"
    Promoting = "Promoting"
    Stable = "Stable"
    Degraded = "Degraded"
    Failed = "Failed"


class Color(StrEnum):
    blue = "blue"
    green = "green"

    @property
    def other(self) -> Color:
        return Color.green if self is Color.blue else Color.blue


class ColourStatus(BaseModel):
    color: Color
    modelVersion: str
    inferenceService: str
    ready: bool = False
    replicas: int | None = None
    artifactDigest: str | None = Field(
        default=None, description="Digest of this version's artifacts its predictors verify."
    )


class ResolvedModel(BaseModel):
    uri: str | None = None
    version: str | None = None
    runId: str | None = None
    source: str | None = None
    resolvedAt: str | None = None


class Condition(BaseModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    lastTransitionTime: str
    observedGeneration: int | None = None


class HistoryEntry(BaseModel):
    action: Literal["Promoted", "Aborted", "RolledBack", "Superseded"]
    fromVersion: str | None = None
    toVersion: str | None = None
    color: Color | None = None
    reason: str = ""
    time: str


class ModelDeploymentStatus(BaseModel):
    phase: Phase | None = None
    observedGeneration: int | None = None
    model: ResolvedModel | None = None
    active: ColourStatus | None = None
    preview: ColourStatus | None = None
    artifactDigests: dict[str, str] | None = Field(
        default=None,
        description="sha256 digest of each model version's artifacts (ferry_common.digest), taken "
        "when the operator first resolved the version (trust on first use); its predictors refuse "
        "artifacts that differ.",
    )
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    rollout: dict[str, Any] | None = Field(
        default=None,
        description="The rollout state machine's persisted state (operator-internal).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
