"""The operator's configuration: one table of environment variables, read once, at start-up.

``TABLE`` is the only description of the operator's environment: ``load`` parses and validates
every variable in it before kopf starts (``ferry-operator`` exits 2 naming a bad one), and
``ferry-operator --help`` prints the same table. Nothing else in the operator reads the
environment; the handlers get the loaded ``OperatorConfig`` through kopf's memo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ferry_common import envconfig, runtime
from ferry_common.envconfig import Var

from ferry_operator import access, netpolicy, registry_events
from ferry_operator.access import ModelAccess
from ferry_operator.builders import PredictorSettings
from ferry_operator.netpolicy import PredictorIngress
from ferry_operator.registry import RegistryConfig

HELP_TITLE = "Environment (set by the chart, or by `make run-operator`)"


def _tester(raw: str) -> str:
    """``http`` or ``package.module:factory`` (imported when the operator starts)."""
    if raw != "http" and not raw.partition(":")[2]:
        raise ValueError("expected 'http' or 'package.module:factory'")
    return raw


def _webhook_secret(raw: str) -> str:
    if len(raw) < registry_events.MIN_SECRET_LENGTH:
        raise ValueError(f"at least {registry_events.MIN_SECRET_LENGTH} characters (openssl rand -hex 32)")
    return raw


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = envconfig.csv(raw)
    if not hosts:
        raise ValueError("expected host names or addresses, comma-separated")
    return hosts


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None


TABLE: tuple[Var, ...] = (
    Var("MLFLOW_TRACKING_URI", "the MLflow tracking server models are resolved in", "http://127.0.0.1:5000"),
    Var("MLFLOW_TRACKING_TOKEN", "bearer token for the registry", secret=True),
    Var("MLFLOW_TRACKING_USERNAME", "basic-auth user for the registry (with _PASSWORD)"),
    Var("MLFLOW_TRACKING_PASSWORD", "basic-auth password for the registry", secret=True),
    Var(
        "FERRY_REGISTRY_TIMEOUT_SECONDS",
        "seconds before a registry request fails",
        "10",
        envconfig.positive_float,
    ),
    Var(
        "FERRY_REGISTRY_POLL_SECONDS",
        "seconds between registry looks: how soon an alias move is seen",
        "30",
        envconfig.positive_float,
    ),
    Var(
        "FERRY_PREDICTOR_TRACKING_URI",
        "the registry address predictors use (default: MLFLOW_TRACKING_URI)",
    ),
    Var(
        "FERRY_MODEL_ACCESS",
        "JSON: namespace (or '*') -> registered-model name patterns it may deploy, e.g. "
        '{"ml": ["*"], "*": ["{namespace}-*"]}; unset: every namespace may deploy every model',
        None,
        access.parse,
    ),
    Var(
        "FERRY_PREDICTOR_NETWORK_POLICY",
        "who may reach predictor pods, written as the NetworkPolicy <md>-predictors: JSON "
        '{"trafficFrom": [peers], "metricsFrom": [peers]} (NetworkPolicyPeer objects; trafficFrom: '
        "the gateway and the operator, port 8080; metricsFrom: Prometheus, port 8082, empty: every "
        "source), or 'off': none, and one written earlier is removed. The chart sets it from "
        "networkPolicy.*; unset outside the chart (make run-operator) is off",
        netpolicy.OFF,
        netpolicy.parse,
    ),
    Var("FERRY_REGISTRY_SECRET", "a Secret whose keys become every predictor's environment"),
    Var("FERRY_DEPLOYMENT_MODE", "KServe deployment mode of each InferenceService", "RawDeployment"),
    Var("FERRY_PREDICTOR_IMAGE", "the ferry-mlflow runtime's image", runtime.DEFAULT_IMAGE),
    Var(
        "FERRY_SMOKE_TESTER",
        "the pre-promotion check: 'http' or package.module:factory",
        "http",
        _tester,
    ),
    Var(
        "FERRY_SMOKE_URL_TEMPLATE",
        "the preview's URL for the http smoke test ({isvc}, {namespace}, {color})",
        "http://{isvc}-predictor.{namespace}.svc.cluster.local",
    ),
    Var(
        "FERRY_WEBHOOK_SECRET",
        "the secret MLflow signs registry webhooks with (at least 16 characters); set, the operator"
        " receives them on https://FERRY_WEBHOOK_HOST:FERRY_WEBHOOK_PORT/hooks/mlflow and re-resolves"
        " the ModelDeployments an alias or version event concerns at once; unset: polling only",
        None,
        _webhook_secret,
        secret=True,
    ),
    Var("FERRY_WEBHOOK_HOST", "the address the webhook receiver listens on", "0.0.0.0"),
    Var("FERRY_WEBHOOK_PORT", "the webhook receiver's port (0: any free port)", "8443", envconfig.port),
    Var(
        "FERRY_WEBHOOK_TLS_DIR",
        "a directory with tls.crt and tls.key (a mounted kubernetes.io/tls Secret) for the receiver;"
        " unset: a private CA and certificate made at start for FERRY_WEBHOOK_CERT_HOSTS",
    ),
    Var(
        "FERRY_WEBHOOK_CERT_HOSTS",
        "comma-separated names and addresses the self-made certificate is valid for",
        "127.0.0.1,localhost",
        _hosts,
    ),
    Var("FERRY_WEBHOOK_CA_FILE", "where the self-made certificate's CA is written (PEM) for MLflow"),
    Var(
        "FERRY_WEBHOOK_MAX_AGE_SECONDS",
        "how old (or early) a delivery's X-MLflow-Timestamp may be before it is refused as stale",
        "300",
        envconfig.positive_float,
    ),
    Var("FERRY_METRICS_PORT", "Prometheus metrics port (0: off)", "9090", envconfig.port),
    Var(
        "FERRY_WATCH_SERVER_TIMEOUT",
        "seconds a watch request lasts on the API server (default: kopf's)",
        None,
        envconfig.positive_int,
    ),
    Var(
        "FERRY_PEERING_PRIORITY",
        "this instance's priority among peers for leader election",
        "0",
        _integer,
    ),
    Var(
        "FERRY_API_THREADS",
        "threads for Kubernetes API calls (the client is synchronous)",
        "32",
        envconfig.positive_int,
    ),
    Var("KUBECONFIG", "kubeconfig file (default: in-cluster, else ~/.kube/config)"),
)


@dataclass(frozen=True)
class WebhookConfig:
    """The MLflow webhook receiver (on when FERRY_WEBHOOK_SECRET is set)."""

    secret: str = field(repr=False)  # never printed with the configuration
    host: str = "0.0.0.0"
    port: int = 8443
    tls_dir: Path | None = None
    """tls.crt and tls.key; None: a self-made CA and certificate for ``cert_hosts``."""
    cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ca_file: Path | None = None
    max_age_seconds: float = registry_events.MAX_AGE_SECONDS


@dataclass(frozen=True)
class OperatorConfig:
    """Every setting of the operator; the defaults are the table's."""

    registry: RegistryConfig
    """How the operator reaches the MLflow registry."""
    predictor: PredictorSettings
    """What every predictor gets: the registry address it uses, credentials, mode and image."""
    model_access: ModelAccess | None = None
    """Which namespaces may deploy which registered models; None: no boundary (FERRY_MODEL_ACCESS)."""
    predictor_ingress: PredictorIngress | None = None
    """Who may reach predictor pods (the predictor network policy); None: no policy
    (FERRY_PREDICTOR_NETWORK_POLICY)."""
    poll_seconds: float = 30.0
    """Seconds between registry looks per ModelDeployment (FERRY_REGISTRY_POLL_SECONDS)."""
    smoke_tester: str = "http"
    """``http`` or ``package.module:factory`` (FERRY_SMOKE_TESTER)."""
    smoke_url_template: str = "http://{isvc}-predictor.{namespace}.svc.cluster.local"
    """Where the http smoke tester reaches a preview (FERRY_SMOKE_URL_TEMPLATE)."""
    webhook: WebhookConfig | None = None
    """The MLflow webhook receiver; None: polling only (FERRY_WEBHOOK_*)."""
    metrics_port: int = 9090
    """Prometheus metrics port, 0 for none (FERRY_METRICS_PORT)."""
    watch_server_timeout: int | None = None
    """Server-side watch timeout in seconds; None keeps kopf's (FERRY_WATCH_SERVER_TIMEOUT)."""
    peering_priority: int = 0
    """Priority in kopf peering: the highest live one leads (FERRY_PEERING_PRIORITY)."""
    api_threads: int = 32
    """Worker threads for the synchronous Kubernetes client (FERRY_API_THREADS)."""
    kubeconfig: str | None = None
    """Kubeconfig file; None: in-cluster config, else the client's default (KUBECONFIG)."""


def load(environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """Every variable of ``TABLE`` from ``environ`` (the process environment when None).

    Raises ``envconfig.ConfigError`` naming the first bad variable.
    """
    v = envconfig.load(TABLE, envconfig.environment() if environ is None else environ)
    tracking: str = v["MLFLOW_TRACKING_URI"]
    registry = RegistryConfig(
        tracking_uri=tracking,
        token=v["MLFLOW_TRACKING_TOKEN"],
        username=v["MLFLOW_TRACKING_USERNAME"],
        password=v["MLFLOW_TRACKING_PASSWORD"],
        timeout_seconds=v["FERRY_REGISTRY_TIMEOUT_SECONDS"],
    )
    predictor = PredictorSettings(
        # Predictors may reach MLflow by another address than the operator (in-cluster DNS).
        tracking_uri=v["FERRY_PREDICTOR_TRACKING_URI"] or tracking,
        credentials_secret=v["FERRY_REGISTRY_SECRET"],
        deployment_mode=v["FERRY_DEPLOYMENT_MODE"],
        image=v["FERRY_PREDICTOR_IMAGE"],
    )
    webhook = None
    if v["FERRY_WEBHOOK_SECRET"] is not None:
        webhook = WebhookConfig(
            secret=v["FERRY_WEBHOOK_SECRET"],
            host=v["FERRY_WEBHOOK_HOST"],
            port=v["FERRY_WEBHOOK_PORT"],
            tls_dir=Path(v["FERRY_WEBHOOK_TLS_DIR"]) if v["FERRY_WEBHOOK_TLS_DIR"] else None,
            cert_hosts=v["FERRY_WEBHOOK_CERT_HOSTS"],
            ca_file=Path(v["FERRY_WEBHOOK_CA_FILE"]) if v["FERRY_WEBHOOK_CA_FILE"] else None,
            max_age_seconds=v["FERRY_WEBHOOK_MAX_AGE_SECONDS"],
        )
    return OperatorConfig(
        registry=registry,
        webhook=webhook,
        predictor=predictor,
        model_access=v["FERRY_MODEL_ACCESS"],
        predictor_ingress=v["FERRY_PREDICTOR_NETWORK_POLICY"],
        poll_seconds=v["FERRY_REGISTRY_POLL_SECONDS"],
        smoke_tester=v["FERRY_SMOKE_TESTER"],
        smoke_url_template=v["FERRY_SMOKE_URL_TEMPLATE"],
        metrics_port=v["FERRY_METRICS_PORT"],
        watch_server_timeout=v["FERRY_WATCH_SERVER_TIMEOUT"],
        peering_priority=v["FERRY_PEERING_PRIORITY"],
        api_threads=v["FERRY_API_THREADS"],
        kubeconfig=v["KUBECONFIG"],
    )


def help_text() -> str:
    """The environment table as ``ferry-operator --help`` prints it."""
    return envconfig.help_text(TABLE, HELP_TITLE)
