"""What the operator's tests share: the registered test model, the invalid specs both the parser
and the API server must refuse, and the harness for the cluster tier (``ferry-operator`` as a
child process, and the reads and waits on the kwok cluster that several test modules use).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from ferry_common.contract import API_VERSION, GROUP, ISVC_GROUP, LABEL_COLOR, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster.procs import free_port, wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

PLURAL = MODEL_DEPLOYMENT.plural
WAIT = 300.0  # deadlines for convergence on a loaded 2-core machine; never asserted as timings
# The smoke tester the operator runs in the cluster tier: kwok's pods cannot answer HTTP.
SMOKE_TESTER = "ferry_testing.smoke:factory"


@dataclass(frozen=True)
class RegisteredModel:
    tracking_uri: str
    name: str
    versions: list[str]
    input_example: dict[str, Any]


def register_echo(tracking_uri: str, name: str = "ferry-echo", count: int = 2) -> RegisteredModel:
    """``name`` in the registry at ``tracking_uri``: ``count`` versions of a pyfunc model that
    echoes its input, with an input example, and the alias ``champion`` on the first."""
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class Echo(PythonModel):  # what it predicts does not matter to the operator
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    mlflow.set_tracking_uri(tracking_uri)
    example = {"pclass": [3], "sex": ["male"], "age": [22.0]}
    versions = []
    for _ in range(count):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Echo(),
                input_example=pd.DataFrame(example),
                registered_model_name=name,
                pip_requirements=["mlflow"],  # skips requirement inference, which is slow
            )
        versions.append(str(info.registered_model_version))
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", versions[0])
    return RegisteredModel(tracking_uri, name, versions, example)


GOOD: dict[str, Any] = {"model": {"name": "titanic-survival", "alias": "champion"}}

# Each invalid spec and a piece of the reason it must be rejected with. The same list feeds the
# operator parser's test (unit) and the API-server dry-run test (cluster), so both layers refuse
# the same inputs.
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("alias-and-version", {"model": {"name": "m", "alias": "a", "version": "1"}}, "exactly one of"),
    ("neither-alias-nor-version", {"model": {"name": "m"}}, "exactly one of"),
    ("bad-model-name", {"model": {"name": "has/slash", "alias": "a"}}, "name"),
    ("reserved-alias", {"model": {"name": "m", "alias": "latest"}}, "reserves"),
    ("version-not-a-number", {"model": {"name": "m", "version": "one"}}, "version"),
    ("min-above-max", {**GOOD, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
    ("zero-min", {**GOOD, "autoscaling": {"minReplicas": 0}}, "minReplicas"),
    ("unknown-metric", {**GOOD, "autoscaling": {"metric": "qps"}}, "metric"),
    ("target-out-of-range", {**GOOD, "autoscaling": {"target": 150}}, "target"),
    ("unknown-strategy", {**GOOD, "rollout": {"strategy": "Canary"}}, "strategy"),
    ("negative-delay", {**GOOD, "rollout": {"scaleDownDelaySeconds": -1}}, "scaleDownDelaySeconds"),
    ("bad-quantity", {**GOOD, "predictor": {"resources": {"requests": {"cpu": "lots"}}}}, "cpu"),
]


# ---- the operator as a process ----


class OperatorProcess:
    """``ferry-operator`` as a child process, so a test can kill -9 it and start it again."""

    def __init__(
        self, kubeconfig: str, tracking_uri: str, log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "FERRY_REGISTRY_POLL_SECONDS": "2",
            "FERRY_SMOKE_TESTER": SMOKE_TESTER,
            "FERRY_METRICS_PORT": str(self.metrics_port),
            "FERRY_WATCH_SERVER_TIMEOUT": "20",
            **(env or {}),
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry_operator", "--all-namespaces", "--standalone"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for("operator metrics endpoint", lambda: self.reconciles() >= 0, 60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def reconciles(self) -> float:
        return self.metric('ferry_operator_reconciles_total{result="ok"}')

    def metric(self, series: str) -> float:
        """The sum of the samples whose line starts with ``series`` (a name, or name{labels})."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(series) and line[len(series) : len(series) + 1] in (" ", "{", "")
        )


def kubectl_ferry(
    *args: str, stdin: str | None = None, timeout: float = WAIT
) -> subprocess.CompletedProcess[str]:
    """``kubectl-ferry ARGS`` as kubectl runs it (this environment's entry point), output captured."""
    exe = Path(sys.executable).parent / "kubectl-ferry"
    return subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True, timeout=timeout)


# ---- the cluster, read and waited on ----


# The kubernetes client's partial stubs add nothing to a test; its APIs are used untyped here.
def custom(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def autoscaling(api: client.ApiClient) -> Any:
    return client.AutoscalingV2Api(api)


def extensions(api: client.ApiClient) -> Any:
    return client.ApiextensionsV1Api(api)


def md_body(name: str, model: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": MODEL_DEPLOYMENT.kind,
        "metadata": {"name": name},
        "spec": {"model": model, **spec},
    }


def get_md(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    md: dict[str, Any] = custom(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return md


def get_or_none(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def isvc(api: client.ApiClient, ns: str, name: str) -> Any:
    return get_or_none(
        custom(api).get_namespaced_custom_object,
        ISVC_GROUP,
        "v1beta1",
        ns,
        "inferenceservices",
        name,
    )


def selector(api: client.ApiClient, ns: str, name: str) -> dict[str, str] | None:
    svc = get_or_none(core(api).read_namespaced_service, name, ns)
    return dict(svc.spec.selector) if svc is not None else None


def condition(md: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in md.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def wait_phase(api: client.ApiClient, ns: str, name: str, phase: str, **extra: Any) -> dict[str, Any]:
    def check() -> bool:
        st = get_md(api, ns, name).get("status", {})
        return st.get("phase") == phase and all(st.get(k) == v for k, v in extra.items())

    try:
        wait_for(f"{name} phase {phase}", check, WAIT, interval=0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; status: {get_md(api, ns, name).get('status')}") from None
    return get_md(api, ns, name)


def patch_md(api: client.ApiClient, ns: str, name: str, body: dict[str, Any]) -> None:
    custom(api).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, body)


def annotate(api: client.ApiClient, ns: str, name: str, **annotations: str) -> None:
    patch_md(api, ns, name, {"metadata": {"annotations": annotations}})


def colour(api: client.ApiClient, ns: str, svc: str) -> str | None:
    sel = selector(api, ns, svc)
    return (sel or {}).get(LABEL_COLOR)


def settles(what: str, check: Any) -> None:
    """End states, polled: kwok's node can flap NotReady for a moment on a loaded machine."""
    wait_for(what, lambda: bool(check()), WAIT, interval=0.5)


def routes_to(api: client.ApiClient, ns: str, svc: str, color: str) -> None:
    settles(f"{svc} selects {color}", lambda: colour(api, ns, svc) == color)


def wait_status(api: client.ApiClient, ns: str, name: str, what: str, check: Any) -> dict[str, Any]:
    try:
        wait_for(what, lambda: bool(check(get_md(api, ns, name).get("status", {}))), WAIT, interval=0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; status: {get_md(api, ns, name).get('status')}") from None
    md: dict[str, Any] = get_md(api, ns, name)
    return md


def actions(md: dict[str, Any]) -> list[str]:
    return [h["action"] for h in md["status"].get("history", [])]


def start_stable(
    api: client.ApiClient, ns: str, name: str, model: RegisteredModel, **spec: Any
) -> dict[str, Any]:
    body = md_body(name, {"name": model.name, "version": model.versions[0]}, **spec)
    custom(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    md: dict[str, Any] = wait_phase(api, ns, name, "Stable")
    routes_to(api, ns, name, "blue")
    return md


def hold_pods(api: client.ApiClient, ns: str) -> None:
    """No room for another pod: a new colour's pods cannot be created, so it stays not Ready."""
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="one-pod"), spec=client.V1ResourceQuotaSpec(hard={"pods": "1"})
    )
    core(api).create_namespaced_resource_quota(ns, quota)

    def counted() -> bool:
        q = core(api).read_namespaced_resource_quota("one-pod", ns)
        return bool(q.status and q.status.used and q.status.used.get("pods") == "1")

    wait_for("quota counts the active colour's pod", counted, WAIT)


def release_pods(api: client.ApiClient, ns: str) -> None:
    core(api).delete_namespaced_resource_quota("one-pod", ns)
