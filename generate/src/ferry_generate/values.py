"""The chart's values, typed: the one source of charts/ferry/values.schema.json.

Each ``TypedDict`` is one object of values.yaml. ``total=False`` because a values file may leave
any key out (helm merges it over values.yaml); ``Required`` marks what the chart cannot render
without. values.yaml stays the one place of the defaults and their comments; the tests check it
(and every values-ENV.yaml merged over it) against the generated schema.

pydantic writes the JSON Schema; ``schema()`` then inlines the ``$defs`` (helm's error messages
then name the value's path, not a definition) and drops what adds nothing for helm: titles,
``additionalProperties: true`` and the ``type`` next to an ``enum``. Rules across fields (a
Secret name required unless dev mode, ...) are JSON Schema conditionals given as
``json_schema_extra``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Required

from ferry_common.contract import MAX_BODY_BYTES
from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

OUTPUT = Path("charts/ferry/values.schema.json")
DRAFT = "http://json-schema.org/draft-07/schema#"
TITLE = "Ferry chart values"

# A DNS-1123 label (Secret, ConfigMap, namespace names), and the same or empty ("not set").
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HOSTNAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HTTP_URL_OR_EMPTY = r"^(https?://.+)?$"
HTTPS_URL_OR_EMPTY = r"^(https://.+)?$"  # signing keys: never fetched in clear
# Kubernetes quantities as values files write them: "100m", "512Mi", 1, 0.5.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"

Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
OptionalName = Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$", max_length=63)]
NonEmpty = Annotated[str, Field(min_length=1)]
# A namespace name or "*" (every namespace), as a key of operator.modelAccess.
NAMESPACE_OR_ANY = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"
Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Quantity = Annotated[str, Field(pattern=QUANTITY)] | Annotated[float, Field(ge=0)]
Object = dict[str, Any]  # passed through to Kubernetes as written (securityContext, affinity, ...)
StringMap = dict[str, str]

_STRICT = ConfigDict(extra="forbid")


@with_config(_STRICT)
class CpuMemory(TypedDict, total=False):
    cpu: Quantity
    memory: Quantity


@with_config(_STRICT)
class Resources(TypedDict, total=False):
    """Container resources (cpu, memory)."""

    requests: CpuMemory
    limits: CpuMemory


@with_config(_STRICT)
class Image(TypedDict, total=False):
    registry: Required[NonEmpty]
    tag: str
    pullPolicy: Required[Literal["Always", "IfNotPresent", "Never"]]


@with_config(_STRICT)
class ComponentImage(TypedDict, total=False):
    repository: Required[NonEmpty]
    tag: Annotated[str, Field(description="Overrides image.tag for this component.")]


@with_config(_STRICT)
class PullSecret(TypedDict, total=False):
    name: Required[Name]


@with_config(_STRICT)
class Peering(TypedDict, total=False):
    name: Required[Name]


@with_config(_STRICT)
class Webhook(TypedDict, total=False):
    """The operator's receiver of MLflow's registry webhooks."""

    enabled: Required[bool]
    port: Port
    secretName: Name
    generateSecret: bool
    tlsSecretName: OptionalName
    from_: Annotated[list[Object], Field(alias="from")]


@with_config(_STRICT)
class Operator(TypedDict, total=False):
    enabled: Required[bool]
    replicas: Required[
        Annotated[int, Field(ge=0, le=5, description="Extra replicas are standbys (kopf peering).")]
    ]
    image: Required[ComponentImage]
    peering: Required[Peering]
    registryPollSeconds: PositiveSeconds
    registryTimeoutSeconds: PositiveSeconds
    deploymentMode: Literal["RawDeployment", "Standard", "Serverless", "Knative", "ModelMesh"]
    predictorCredentialsSecret: OptionalName
    modelAccess: Annotated[
        dict[str, list[NonEmpty]],
        Field(
            description="Namespace (or '*') -> registered-model name patterns it may deploy; "
            "empty: only the models namespace, any model.",
            json_schema_extra={"propertyNames": {"pattern": NAMESPACE_OR_ANY, "maxLength": 63}},
        ),
    ]
    metricsPort: Port
    healthPort: Port
    webhook: Webhook
    verbose: bool
    resources: Resources
    podAnnotations: StringMap
    nodeSelector: StringMap
    tolerations: list[Object]
    affinity: Object


@with_config(_STRICT)
class Jwt(TypedDict, total=False):
    jwksUrl: Annotated[str, Field(pattern=HTTPS_URL_OR_EMPTY)]
    refreshSeconds: PositiveSeconds
    issuer: str
    audience: str


@with_config(_STRICT)
class Service(TypedDict, total=False):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"]
    port: Port


@with_config(_STRICT)
class Tls(TypedDict, total=False):
    enabled: bool
    secretName: OptionalName


@with_config(_STRICT)
class Ingress(TypedDict, total=False):
    enabled: bool
    className: str
    host: Annotated[str, Field(pattern=HOSTNAME)]
    annotations: StringMap
    tls: Tls


@with_config(_STRICT)
class Autoscaling(TypedDict, total=False):
    enabled: bool
    minReplicas: Annotated[int, Field(ge=1)]
    maxReplicas: Annotated[int, Field(ge=1)]
    targetCPUUtilizationPercentage: Annotated[int, Field(ge=1, le=100)]


@with_config(_STRICT)
class Pdb(TypedDict, total=False):
    enabled: bool
    minAvailable: Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^[0-9]{1,3}%$")]


# What FERRY_CORS_ALLOW_ORIGINS accepts (ferry_gateway.edge.cors.parse_pattern): "*", or
# scheme://host[:port] with ":*" for any port, lower case, no path.
CORS_ORIGIN = (
    r"^(\*|[a-z][a-z0-9+.-]*://([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(:([1-9][0-9]{0,4}|\*))?)$"
)
HTTP_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


@with_config(
    ConfigDict(
        extra="forbid",
        json_schema_extra={
            # browsers refuse "*" with credentials, and so does the gateway at start-up
            "if": {"properties": {"allowCredentials": {"const": True}}, "required": ["allowCredentials"]},
            "then": {"properties": {"allowOrigins": {"not": {"contains": {"const": "*"}}}}},
        },
    )
)
class Cors(TypedDict, total=False):
    allowOrigins: Annotated[
        list[Annotated[str, Field(pattern=CORS_ORIGIN)]],
        Field(
            description="Origins whose pages may call the gateway from a browser: exact "
            '(https://app.example.com), any port (http://localhost:*) or "*". Empty: none may, '
            "and no response carries a CORS header."
        ),
    ]
    allowMethods: Annotated[
        list[Annotated[str, Field(pattern=HTTP_TOKEN)]],
        Field(description="Methods a page may use; empty: the gateway's default (GET, POST)."),
    ]
    allowHeaders: Annotated[
        list[Annotated[str, Field(pattern=HTTP_TOKEN)]],
        Field(
            description="Request headers a page may send; empty: the gateway's default (Authorization, "
            "X-API-Key, Content-Type, X-Ferry-Preview, X-Request-Id, Inference-Header-Content-Length)."
        ),
    ]
    exposeHeaders: Annotated[
        list[Annotated[str, Field(pattern=HTTP_TOKEN)]],
        Field(
            description="Response headers a page may read; empty: the gateway's default (request id, "
            "Retry-After, the rate-limit and quota headers, Inference-Header-Content-Length)."
        ),
    ]
    allowCredentials: Annotated[
        bool,
        Field(description='Let pages send cookies or HTTP authentication; never with "*" in allowOrigins.'),
    ]
    maxAgeSeconds: Annotated[int, Field(ge=0, description="Seconds a browser may cache a preflight answer.")]


def _when(condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": condition, "then": then}


def _props(**fields: Any) -> dict[str, Any]:
    return {"properties": fields}


_SET = {"minLength": 1}


_GATEWAY_RULES: list[Any] = [
    # The gateway refuses to start without its pepper outside dev mode; so does the chart.
    _when(
        {"properties": {"devMode": {"const": False}, "enabled": {"const": True}}},
        {"properties": {"secretName": {"minLength": 1}}, "required": ["secretName"]},
    ),
    _when(
        _props(ingress=_props(tls=_props(enabled={"const": True}))),
        _props(ingress=_props(tls=_props(secretName=_SET))),
    ),
    # Dev mode lets anyone holding the published dev keys in: never behind an Ingress (use
    # `kubectl port-forward` to try a dev install from outside the cluster).
    _when(
        {"properties": {"devMode": {"const": True}}, "required": ["devMode"]},
        _props(ingress=_props(enabled={"const": False})),
    ),
    # A JWKS without issuer and audience is refused by the gateway outside dev mode.
    _when(
        {
            "properties": {
                "devMode": {"const": False},
                "jwt": {"properties": {"jwksUrl": {"minLength": 1}}, "required": ["jwksUrl"]},
            }
        },
        {"properties": {"jwt": {"properties": {"issuer": {"minLength": 1}, "audience": {"minLength": 1}}}}},
    ),
]


@with_config(ConfigDict(extra="forbid", json_schema_extra={"allOf": _GATEWAY_RULES}))
class Gateway(TypedDict, total=False):
    enabled: Required[bool]
    devMode: Required[bool]
    replicas: Annotated[int, Field(ge=1)]
    image: Required[ComponentImage]
    port: Required[Port]
    metricsPort: Annotated[
        int,
        Field(
            ge=1,
            le=65535,
            description="Port of /metrics, apart from the traffic port: only Prometheus reaches it "
            "(its own Service, ServiceMonitor and NetworkPolicy rule); it must differ from port.",
        ),
    ]
    modelNamespace: OptionalName
    createModelNamespace: Annotated[
        bool,
        Field(
            description="Create gateway.modelNamespace (kept on uninstall) when it is not the release "
            "namespace and does not exist yet; false: it must exist (the install checks)."
        ),
    ]
    rateLimitFailureMode: Required[
        Annotated[
            Literal["open", "closed"],
            Field(description="open: admit requests while Redis is down; closed: refuse them with 503."),
        ]
    ]
    upstreamTimeoutSeconds: PositiveSeconds
    maxBodyBytes: Annotated[
        int,
        Field(
            ge=1024,
            le=MAX_BODY_BYTES,
            description="Largest request body (413 before any quota is spent); at most the "
            "predictors' own limit, which would refuse anything larger after it was billed.",
        ),
    ]
    headerTimeoutSeconds: Annotated[
        float, Field(gt=0, description="Seconds a client has to send its request line and headers.")
    ]
    bodyTimeoutSeconds: Annotated[
        float, Field(gt=0, description="Seconds a client has to send its request body (408, no quota spent).")
    ]
    maxHeaderBytes: Annotated[int, Field(ge=4096, description="Largest request line plus headers (413).")]
    limitConcurrency: Annotated[
        int,
        Field(ge=1, description="Open connections plus requests in flight per pod; past it, 503 at once."),
    ]
    keepAliveSeconds: Annotated[
        float, Field(gt=0, description="Seconds an idle keep-alive connection is kept between requests.")
    ]
    preStopSeconds: Annotated[
        int, Field(ge=0, le=120, description="Seconds a stopping pod keeps serving while its endpoint goes.")
    ]
    shutdownTimeoutSeconds: Annotated[
        int, Field(ge=1, le=600, description="Seconds a stopping pod finishes its requests in flight.")
    ]
    accessLog: bool
    logLevel: Literal["debug", "info", "warning"]
    secretName: OptionalName
    consumersSecret: OptionalName
    jwt: Jwt
    limits: Object
    cors: Annotated[Cors, Field(description="Which browser pages may call the gateway (CORS).")]
    service: Service
    ingress: Ingress
    autoscaling: Autoscaling
    pdb: Pdb
    resources: Resources
    podAnnotations: StringMap
    nodeSelector: StringMap
    tolerations: list[Object]
    affinity: Object
    watchConsumers: bool
    keySecrets: Annotated[
        bool,
        Field(description="Read API keys from labelled Secrets: list/watch on every Secret there."),
    ]


@with_config(_STRICT)
class Runtime(TypedDict, total=False):
    enabled: Required[bool]
    name: Required[Name]


@with_config(_STRICT)
class Predictor(TypedDict, total=False):
    runtime: Runtime
    image: ComponentImage


@with_config(_STRICT)
class RedisExternal(TypedDict, total=False):
    secretName: OptionalName
    key: str


@with_config(
    ConfigDict(
        extra="forbid",
        # Without the in-chart Redis the gateway needs the Secret holding REDIS_URL.
        json_schema_extra=_when(
            {"properties": {"enabled": {"const": False}}},
            _props(external=_props(secretName=_SET, key=_SET)),
        ),
    )
)
class Redis(TypedDict, total=False):
    enabled: Required[bool]
    image: NonEmpty
    resources: Resources
    external: RedisExternal


@with_config(_STRICT)
class MlflowExternal(TypedDict, total=False):
    trackingUri: Annotated[str, Field(pattern=HTTP_URL_OR_EMPTY)]
    credentialsSecret: OptionalName


@with_config(
    ConfigDict(
        extra="forbid",
        # Without the in-chart MLflow the operator needs the registry's address.
        json_schema_extra=_when(
            {"properties": {"enabled": {"const": False}}},
            {"properties": {"external": {"properties": {"trackingUri": {"minLength": 1}}}}},
        ),
    )
)
class Mlflow(TypedDict, total=False):
    enabled: Required[bool]
    image: NonEmpty
    port: Port
    extraAllowedHosts: Annotated[
        list[NonEmpty],
        Field(
            description="Host header patterns MLflow accepts besides its Service names (fnmatch, e.g. 10.*)"
        ),
    ]
    resources: Resources
    external: MlflowExternal


@with_config(_STRICT)
class NetworkPolicy(TypedDict, total=False):
    enabled: bool
    gatewayFrom: list[Object]
    metricsFrom: list[Object]


@with_config(_STRICT)
class ServiceMonitor(TypedDict, total=False):
    enabled: bool
    interval: Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h)$")]
    labels: StringMap


@with_config(_STRICT)
class PrometheusRule(TypedDict, total=False):
    enabled: bool
    labels: StringMap


@with_config(_STRICT)
class Dashboards(TypedDict, total=False):
    enabled: bool
    label: NonEmpty
    labelValue: str
    folder: str
    folderAnnotation: NonEmpty


@with_config(_STRICT)
class Metrics(TypedDict, total=False):
    serviceMonitor: ServiceMonitor
    prometheusRule: PrometheusRule
    dashboards: Dashboards


@with_config(_STRICT)
class Tests(TypedDict, total=False):
    enabled: Annotated[
        bool, Field(description="Render the `helm test` hook: one prediction through the gateway.")
    ]
    model: Annotated[Name, Field(description="The ModelDeployment `helm test` asks for a prediction.")]
    instances: Annotated[
        list[Object],
        Field(min_length=1, description="The v1 request's instances (rows the model accepts)."),
    ]
    apiKeySecret: Annotated[
        OptionalName,
        Field(
            description="Secret (release namespace) holding a consumer's API key for `helm test`; "
            "empty: the dev key in dev mode, no test hook otherwise."
        ),
    ]
    apiKeySecretKey: Annotated[NonEmpty, Field(description="The key of apiKeySecret holding the API key.")]
    timeoutSeconds: Annotated[PositiveSeconds, Field(description="How long the test waits for the answer.")]


@with_config(_STRICT)
class Values(TypedDict, total=False):
    environment: Required[
        Annotated[NonEmpty, Field(description="Environment name, shown as the ferry.dev/environment label.")]
    ]
    nameOverride: str
    fullnameOverride: str
    checkPrerequisites: Annotated[
        bool,
        Field(
            description="On a live install, fail naming each missing prerequisite (namespace, Secret, "
            "KServe) and the kubectl command that creates it; false: skip the look-ups."
        ),
    ]
    global_: Annotated[Object, Field(alias="global")]  # helm's own, shared with subcharts
    image: Required[Image]
    imagePullSecrets: list[PullSecret]
    podSecurityContext: Object
    containerSecurityContext: Object
    operator: Required[Operator]
    gateway: Required[Gateway]
    predictor: Required[Predictor]
    redis: Required[Redis]
    mlflow: Required[Mlflow]
    networkPolicy: NetworkPolicy
    metrics: Metrics
    tests: Tests


VALUES: TypeAdapter[Values] = TypeAdapter(Values)

# The order keys are written in: what a node is, then its members, then constraints, then prose.
_KEY_ORDER = (
    "$schema",
    "$comment",
    "title",
    "type",
    "enum",
    "const",
    "anyOf",
    "items",
    "additionalProperties",
    "propertyNames",
    "properties",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "description",
    "required",
    "allOf",
    "if",
    "then",
    "not",
    "contains",
)


def _clean(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inline ``$ref``s, drop titles and no-op keys, and order each schema node's keys."""
    if isinstance(node, list):
        return [_clean(n, defs) for n in node]
    if not isinstance(node, Mapping):
        return node
    node = dict(node)
    if "$ref" in node:
        node = {**defs[node.pop("$ref").rsplit("/", 1)[-1]], **node}  # the field's description wins
    node.pop("title", None)
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]  # JSON Schema's default
    if "enum" in node:
        node.pop("type", None)  # the enum fixes it; one error message instead of two
    out: dict[str, Any] = {}
    for key in sorted(node, key=_KEY_ORDER.index):
        value = node[key]
        if key == "properties":
            out[key] = {name: _clean(v, defs) for name, v in value.items()}
        else:
            out[key] = _clean(value, defs)
    return out


def schema() -> dict[str, Any]:
    """values.schema.json, as a dict."""
    raw = VALUES.json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    cleaned: dict[str, Any] = _clean(raw, defs)
    return {
        "$schema": DRAFT,
        # JSON has no comments; JSON Schema's $comment is ignored by validators (helm's too).
        "$comment": "Generated by `make generate` from ferry_generate/values.py; do not edit by hand.",
        "title": TITLE,
        **cleaned,
    }


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"
