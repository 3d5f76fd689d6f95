"""What the chart tests (tests/*/chart) share: the project's helm, rendering, CRD schemas, processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml
from ferry_devcluster import tools, versions
from ferry_devcluster.procs import stop, wait_for

ROOT = Path(__file__).resolve().parents[3]  # testing/src/ferry_testing/chart.py
CHART = ROOT / "charts" / "ferry"
ENVIRONMENTS = ("dev", "staging", "prod")
# The Prometheus Operator's CRDs (for ServiceMonitor/PodMonitor/PrometheusRule), from its Go module.
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")
JSON = dict[str, Any]


@cache
def helm() -> str:
    built = tools.bin_path("helm")
    if built.is_file():
        return str(built)
    found = shutil.which("helm")
    assert found, "helm not found: run `make tools`"
    return found


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=check)


def values_args(env: str | None) -> list[str]:
    return ["-f", str(CHART / f"values-{env}.yaml")] if env else []


def template(
    env: str | None, *extra: str, namespace: str = "ferry", api_versions: Iterable[str] = ()
) -> list[JSON]:
    args = ["template", "t", str(CHART), "--namespace", namespace, *values_args(env), *extra]
    for api in api_versions:
        args += ["--api-versions", api]
    out = run_helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kube_version() -> str:
    """The cluster's release as kubernetes-validate names it (v1.36.3 -> 1.36.0)."""
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    return f"{major}.{minor}.0"


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.1's '=' (value) tag appears in upstream CRDs as a plain string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _crd_docs(paths: Iterable[Path]) -> list[JSON]:
    docs: list[JSON] = []
    for p in paths:
        loaded = yaml.load_all(p.read_text(), Loader=_Loader)
        docs += [d for d in loaded if d and d.get("kind") == "CustomResourceDefinition"]
    return docs


MONITORING_PLURALS = ("servicemonitors", "podmonitors", "prometheusrules")


def monitoring_crds() -> list[Path]:
    """The Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs (its Go module)."""
    po = tools.module_dir(*PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
    return [po / f"monitoring.coreos.com_{k}.yaml" for k in MONITORING_PLURALS]


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The project's kubectl against ``kubeconfig``; a failure fails the caller with its stderr."""
    cmd = [str(tools.bin_path("kubectl")), "--kubeconfig", kubeconfig, *args]
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


def install_crds(kubeconfig: str) -> None:
    """Apply the chart's CRDs and the Prometheus Operator's (CRDs only, no controller) and wait
    until they are served: a server-side dry run of the chart needs its custom kinds known, and
    with monitoring.coreos.com/v1 served the chart renders its monitoring objects as on a real
    cluster. Every chart test module on a cluster calls this, so none depends on another's order.
    """

    for crd in [CHART / "crds", *monitoring_crds()]:
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kinds = {"kopf.dev": ("clusterkopfpeerings",), "monitoring.coreos.com": MONITORING_PLURALS}

    def served() -> bool:
        return all(
            all(k in kubectl(kubeconfig, "api-resources", f"--api-group={group}").stdout for k in plurals)
            for group, plurals in kinds.items()
        )

    wait_for("the chart's and the monitoring CRDs' kinds served", served, timeout=60)


@cache
def crd_schemas() -> dict[tuple[str, str], JSON]:
    """(apiVersion, kind) -> openAPIV3Schema: the chart's CRDs, KServe's, the Prometheus Operator's."""
    paths = sorted((CHART / "crds").glob("*.yaml"))
    # Only the third-party kinds the chart renders (the InferenceService CRD alone is about 1 MB).
    paths += sorted((tools.kserve_dir() / "config" / "crd" / "full").rglob("*clusterservingruntimes.yaml"))
    paths += monitoring_crds()
    out: dict[tuple[str, str], JSON] = {}
    for crd in _crd_docs(paths):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return out


def validate_custom(doc: JSON) -> None:
    schema = crd_schemas()[(doc["apiVersion"], doc["kind"])]
    # Upstream patterns use Go regex syntax Python rejects in a metaschema check; validate directly.
    jsonschema.Draft7Validator(schema).validate(json.loads(json.dumps(doc)))


@contextmanager
def process(
    argv: list[str], log: Path, env: dict[str, str], what: str, up: Callable[[], bool]
) -> Iterator[Callable[[], None]]:
    """Start a process; the value is a function that waits until ``up`` (or fails if it exited)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        return up()

    try:
        yield lambda: wait_for(what, ready, timeout=120, interval=0.2)
    finally:
        stop(proc, grace=15)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def champion_registered(mlflow_uri: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(mlflow_uri, mlflow_uri).get_model_version_by_alias("titanic-survival", "champion")
    except MlflowException:
        # One pipeline is enough here (the predictor suites register both when they run first).
        import mlflow
        from ferry_mlflow_example import data
        from ferry_mlflow_example.train import CHAMPION, EXPERIMENT, MODEL_NAME, train_and_register

        mlflow.set_tracking_uri(mlflow_uri)
        mlflow.set_experiment(EXPERIMENT)
        registry = MlflowClient(mlflow_uri, mlflow_uri)
        x, y = data.load()
        registered = train_and_register("baseline", x, y, registry)
        registry.set_registered_model_alias(MODEL_NAME, CHAMPION, registered.version)
