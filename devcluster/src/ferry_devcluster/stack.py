"""The whole Ferry stack on the local real node: ``make up`` and ``make down``.

``up`` is idempotent and shows each step with its time: tools and images (cached), the real
node, the chart with dev values pointed at the locally built images, the Titanic model trained
into the in-chart MLflow, the sample ModelDeployment applied and Stable. It ends by writing
``.local/stack.json`` (what ``make demo`` and the end-to-end suites read) and printing the gateway
URL, a token and a curl line that works.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import cluster, images, tools
from .paths import local_dir
from .procs import wait_for

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "ferry"
SAMPLE = REPO / "manifests" / "samples" / "titanic.yaml"
RELEASE = "ferry"
NAMESPACE = "ferry"
DEPLOYMENT = "titanic"
REGISTERED_MODEL = "titanic-survival"
ALIAS = "champion"
# The Secret the chart makes (operator.webhook.secretName), and where the receiver listens.
WEBHOOK_SECRET = "ferry-operator-webhook"
WEBHOOK_URL = f"https://{RELEASE}-operator-webhook.{NAMESPACE}.svc:8443/hooks/mlflow"
DEV_KEYS = {
    "dev-free": "fry_dev_free_do_not_use_in_production",
    "dev-pro": "fry_dev_pro_do_not_use_in_production",
}
PREDICT_BODY = {
    "instances": [
        {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"}
    ]
}


V2_BODY = {
    "inputs": [
        {"name": "pclass", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["female"]},
        {"name": "age", "shape": [1], "datatype": "FP64", "data": [38.0]},
        {"name": "sibsp", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "parch", "shape": [1], "datatype": "INT64", "data": [0]},
        {"name": "fare", "shape": [1], "datatype": "FP64", "data": [71.28]},
        {"name": "embarked", "shape": [1], "datatype": "BYTES", "data": ["C"]},
    ]
}


def log(msg: str) -> None:
    print(f"[up {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stack_file() -> Path:
    return local_dir() / "stack.json"


@dataclass
class Stack:
    """What a client of the running stack needs; written to .local/stack.json."""

    kubeconfig: str
    namespace: str
    models_namespace: str
    gateway_url: str
    mlflow_url: str
    registered_model: str
    alias: str
    deployment: str
    bin: str
    token: str = ""
    api_keys: dict[str, str] = field(default_factory=lambda: dict(DEV_KEYS))

    @classmethod
    def load(cls, path: Path | None = None) -> Stack:
        """Read what `make up` wrote; ValueError naming the problem when it is missing or stale."""
        path = path or stack_file()
        if not path.is_file():
            raise ValueError(
                f"{path} is missing: run `make up` first (it starts the stack and writes that file)"
            )
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON ({exc}): run `make up` again") from None
        missing = [f for f in cls.__dataclass_fields__ if f not in doc]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}: run `make up` again")
        stack = cls(**{f: doc[f] for f in cls.__dataclass_fields__})
        for consumer in DEV_KEYS:
            if consumer not in stack.api_keys:
                raise ValueError(f"{path}: api_keys has no {consumer!r} key: run `make up` again")
        if not Path(stack.kubeconfig).is_file():
            raise ValueError(f"kubeconfig {stack.kubeconfig} (from {path}) is missing: run `make up` again")
        return stack


def kubeconfig() -> Path:
    return cluster.REAL.kubeconfig_path


def bin_path() -> str:
    return ":".join(str(t.bindir) for t in tools.ALL)


def kubectl(*args: str, check: bool = True) -> str:
    """kubectl against the real node."""
    return cluster.REAL.kubectl(*args, check=check).stdout


def _step(n: int, total: int, title: str, fn: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    log(f"[{n}/{total}] {title}")
    out = fn()
    log(f"[{n}/{total}] {title}: done in {time.monotonic() - t0:.0f}s")
    return out


def _cluster_ip(service: str) -> str:
    return kubectl("-n", NAMESPACE, "get", "svc", service, "-o", "jsonpath={.spec.clusterIP}").strip()


def _service_port(service: str) -> int:
    return int(kubectl("-n", NAMESPACE, "get", "svc", service, "-o", "jsonpath={.spec.ports[0].port}"))


def _helm(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    argv = [str(tools.bin_path("helm")), f"--kubeconfig={kubeconfig()}", "--namespace", NAMESPACE, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pods = kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False)
        raise RuntimeError(f"helm {args[0]} failed: {proc.stderr.strip()}\n{pods}")
    return proc


def _clear_interrupted_release() -> None:
    """An interrupted `make up` leaves the release pending, and helm then refuses every upgrade."""
    proc = _helm("status", RELEASE, "-o", "json", check=False)
    if proc.returncode != 0:
        return  # not installed yet
    info = json.loads(proc.stdout)
    status, revision = info["info"]["status"], int(info["version"])
    if not status.startswith("pending"):
        return
    log(f"  release {RELEASE} was left {status} (revision {revision}) by an interrupted run: clearing it")
    if revision > 1:
        _helm("rollback", RELEASE, "--wait", "--timeout", "5m")
    else:
        _helm("uninstall", RELEASE, "--wait", "--timeout", "5m")


def webhook_secret() -> str:
    """The secret MLflow signs its webhooks with, as the chart made it (operator.webhook.generateSecret)."""
    found = kubectl(
        "-n", NAMESPACE, "get", "secret", WEBHOOK_SECRET, "-o", "jsonpath={.data.FERRY_WEBHOOK_SECRET}"
    )
    return base64.b64decode(found).decode()


def register_webhook(mlflow_url: str, secret: str) -> None:
    """MLflow's webhook to the operator; its test delivery proves the path (TLS, signature, policy)."""
    print(f"  $ kubectl ferry webhook register --mlflow {mlflow_url} --url {WEBHOOK_URL} --secret-file -")
    argv = [sys.executable, "-m", "ferry_operator.cli", "webhook", "register"]
    argv += ["--mlflow", mlflow_url, "--url", WEBHOOK_URL, "--secret-file", "-"]
    # The operator's receiver starts with its pod; the test delivery is retried until it answers.
    last = ""

    def delivered() -> bool:
        nonlocal last
        proc = subprocess.run(argv, input=secret, text=True, capture_output=True, timeout=120)
        last = (proc.stdout + proc.stderr).strip()
        return proc.returncode == 0

    try:
        wait_for("MLflow's test delivery accepted by the operator", delivered, 120, 3, progress=log)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}\n{last}") from None
    print("  " + last.replace("\n", "\n  "))


def install_chart() -> None:
    overrides = {**images.chart_overrides(), "mlflow.extraAllowedHosts[0]": "10.*"}
    sets = [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v}")]
    _clear_interrupted_release()
    print(
        f"  $ helm upgrade --install {RELEASE} charts/ferry -n {NAMESPACE} -f charts/ferry/values-dev.yaml "
        + " ".join(sets)
    )
    _helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--create-namespace",
        "-f",
        str(CHART / "values-dev.yaml"),
        *sets,
        "--wait",
        "--timeout",
        "10m",
    )


def _http_json(url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def _has_champion(mlflow_url: str) -> bool:
    url = f"{mlflow_url}/api/2.0/mlflow/registered-models/alias?name={REGISTERED_MODEL}&alias={ALIAS}"
    try:
        _http_json(url)
        return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


def train(mlflow_url: str) -> None:
    if _has_champion(mlflow_url):
        log(f"  {REGISTERED_MODEL}@{ALIAS} already registered: not training again")
        return
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url}
    print(f"  $ MLFLOW_TRACKING_URI={mlflow_url} make train")
    subprocess.run([sys.executable, "-m", "ferry_mlflow_example"], env=env, check=True, timeout=900)


def _md_phase() -> str:
    out = kubectl("-n", NAMESPACE, "get", "md", DEPLOYMENT, "-o", "jsonpath={.status.phase}", check=False)
    return out.strip()


def apply_sample() -> None:
    print(f"  $ kubectl apply -n {NAMESPACE} -f manifests/samples/titanic.yaml")
    kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLE))
    wait_for(f"ModelDeployment {DEPLOYMENT} Stable", lambda: _md_phase() == "Stable", 600, 3, progress=log)


def dev_token(consumer: str = "dev-pro", tier: str | None = None) -> str:
    """A JWT the dev gateway accepts, minted by its own dev keys (tier: the token's ``tier`` claim)."""
    gw = f"deploy/{RELEASE}-gateway"
    extra = ["--tier", tier] if tier else []
    argv = ["ferry", "token", "--consumer", consumer, *extra]
    return kubectl("-n", NAMESPACE, "exec", gw, "--", *argv).strip()


def _predicts(gateway_url: str) -> bool:
    url = f"{gateway_url}/v1/models/{DEPLOYMENT}:predict"
    out = _http_json(url, PREDICT_BODY, {"X-API-Key": DEV_KEYS["dev-pro"]})
    return bool(out.get("predictions"))


def up() -> Stack:
    if os.environ.get("FERRY_CLUSTER", "local") != "local":
        # kind (laptops with Docker) is not wired into `make up` yet: say so rather than quietly
        # bringing up something else than asked for.
        raise SystemExit(
            f"FERRY_CLUSTER={os.environ['FERRY_CLUSTER']}: `make up` brings up the local real node only "
            "(FERRY_CLUSTER=local, the default). On your own cluster: install KServe, then "
            "`make build-images` and `make deploy ENV=dev` (charts/ferry/README.md)"
        )
    t0 = time.monotonic()
    total = 8
    _step(1, total, "tools (Go builds, cached by version)", tools.ensure_tools)
    _step(2, total, "the real node (kubelet, containerd, KServe)", cluster.REAL.up)
    _step(3, total, "images (buildah, cached) imported into containerd", images.import_ferry_images)
    _step(4, total, "helm install the chart with dev values", install_chart)
    gateway = f"http://{_cluster_ip(f'{RELEASE}-gateway')}:{_service_port(f'{RELEASE}-gateway')}"
    mlflow_url = f"http://{_cluster_ip(f'{RELEASE}-mlflow')}:{_service_port(f'{RELEASE}-mlflow')}"
    _step(
        5,
        total,
        "MLflow's registry webhooks to the operator",
        lambda: register_webhook(mlflow_url, webhook_secret()),
    )
    _step(6, total, f"train Titanic into MLflow at {mlflow_url}", lambda: train(mlflow_url))
    _step(7, total, "apply the sample ModelDeployment and wait for Stable", apply_sample)
    stack = Stack(
        kubeconfig=str(kubeconfig()),
        namespace=NAMESPACE,
        models_namespace=NAMESPACE,
        gateway_url=gateway,
        mlflow_url=mlflow_url,
        registered_model=REGISTERED_MODEL,
        alias=ALIAS,
        deployment=DEPLOYMENT,
        bin=bin_path(),
    )
    _step(
        8,
        total,
        "first prediction through the gateway",
        lambda: wait_for("a prediction", lambda: _predicts(gateway), 120, 2, progress=log),
    )
    stack.token = dev_token()
    stack_file().write_text(json.dumps(asdict(stack), indent=2) + "\n")
    log(f"Ferry is up in {time.monotonic() - t0:.0f}s; wrote {stack_file()}")
    print(
        f"""
Gateway:  {gateway}
MLflow:   {mlflow_url}
Cluster:  export KUBECONFIG={kubeconfig()} PATH={bin_path()}:$PATH
Token:    TOKEN={stack.token[:24]}...   (full in {stack_file()}; minted by the gateway's dev keys)

  curl -s {gateway}/v1/models/{DEPLOYMENT}:predict -H "X-API-Key: {DEV_KEYS["dev-pro"]}" \\
    -H 'Content-Type: application/json' -d '{json.dumps(PREDICT_BODY)}'
  TOKEN=$(jq -r .token {stack_file()})
  curl -s {gateway}/v2/models/{DEPLOYMENT}/infer -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' -d '{json.dumps(V2_BODY)}'

Next: make demo     (and: kubectl ferry status {DEPLOYMENT} -n {NAMESPACE}; make down to remove it all)
""",
        flush=True,
    )
    return stack


def down() -> None:
    cluster.REAL.down()
    stack_file().unlink(missing_ok=True)
    log("the stack is down (the real node and everything on it removed; caches kept)")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m ferry_devcluster.stack", description=__doc__)
    p.add_argument("cmd", choices=("up", "down"))
    args = p.parse_args(argv)
    if args.cmd == "up":
        up()
    else:
        down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
