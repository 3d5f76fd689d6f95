"""Benchmark (not a test): N ModelDeployments from `apply` to Ready, and the operator's memory.

Runs against $KUBECONFIG's cluster with its own MLflow server (one registered model), starts
the operator as a child process (kwok pods cannot answer HTTP, so the injected smoke tester is
used), applies N ModelDeployments at once and polls until every one reports Ready=True.
Writes a JSON report and prints a summary. Usage: see `make bench-operator`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ferry_common.contract import API_VERSION, GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster.procs import free_port
from ferry_operator import kubeapply
from ferry_testing.servers import mlflow_server
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
PLURAL = MODEL_DEPLOYMENT.plural


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reconciles(port: int) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('ferry_operator_reconciles_total{result="ok"}')
    )


def register_model(uri: str) -> str:
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class Echo(PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Echo(),
            input_example=pd.DataFrame({"x": [1.0]}),
            registered_model_name="bench-echo",
            pip_requirements=["mlflow"],
        )
    return "bench-echo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="operator_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="ModelDeployments to apply (default 50)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / ".local/bench/operator.json", help="JSON report path"
    )
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    args = parser.parse_args(argv)

    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    co: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)
    kubeapply.apply(
        kubeapply.client(os.environ.get("KUBECONFIG")),
        kubeapply.load_documents([ROOT / "manifests/crds", ROOT / "manifests/runtime"]),
    )
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    with mlflow_server(work / "mlflow") as mlflow:
        print(f"[bench] MLflow at {mlflow.url}; registering a model", flush=True)
        model = register_model(mlflow.url)
        metrics_port = free_port()
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow.url,
            "FERRY_SMOKE_TESTER": "ferry_testing.smoke:factory",  # installed: no PYTHONPATH needed
            "FERRY_METRICS_PORT": str(metrics_port),
        }
        log = (work / "operator.log").open("wb")
        op = subprocess.Popen(
            [sys.executable, "-m", "ferry_operator", "--all-namespaces", "--standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set() and op.poll() is None:
                samples.append(rss_mb(op.pid))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            time.sleep(3)  # let the operator's watches start; not part of the measured interval
            idle_before = rss_mb(op.pid)
            sampler.start()
            core.create_namespace({"metadata": {"name": ns}})
            names = [f"md-{i:03d}" for i in range(args.count)]
            print(f"[bench] applying {args.count} ModelDeployments in {ns}", flush=True)
            t0 = time.monotonic()
            for name in names:
                body = {
                    "apiVersion": API_VERSION,
                    "kind": MODEL_DEPLOYMENT.kind,
                    "metadata": {"name": name},
                    "spec": {"model": {"name": model, "version": "1"}},
                }
                co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
            applied = time.monotonic() - t0
            ready_at: dict[str, float] = {}
            last_report = 0.0
            while len(ready_at) < len(names):
                if time.monotonic() - t0 > args.timeout:
                    print(
                        f"[bench] gave up: {len(ready_at)}/{len(names)} Ready after {args.timeout:.0f}s",
                        flush=True,
                    )
                    break
                items = co.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
                for md in items:
                    conds = (md.get("status") or {}).get("conditions") or []
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        ready_at.setdefault(md["metadata"]["name"], time.monotonic() - t0)
                if time.monotonic() - last_report > 10:
                    print(
                        f"[bench] {len(ready_at)}/{len(names)} Ready after {time.monotonic() - t0:.0f}s",
                        flush=True,
                    )
                    last_report = time.monotonic()
                time.sleep(0.5)
            total = max(ready_at.values(), default=float("nan"))
            time.sleep(5)
            idle_after = rss_mb(op.pid)
            reconciles = _reconciles(metrics_port)
        finally:
            stop.set()
            op.terminate()
            op.wait(timeout=30)
            core.delete_namespace(ns)
    times = sorted(ready_at.values()) or [float("nan")]
    report = {
        "count": args.count,
        "ready": len(ready_at),
        "complete": len(ready_at) == args.count,
        "reconciles_ok": reconciles,
        "seconds_to_apply_all": round(applied, 2),
        "seconds_apply_to_all_ready": round(total, 2),
        "seconds_to_ready_p50": round(statistics.median(times), 2),
        "seconds_to_ready_p95": round(times[int(0.95 * (len(times) - 1))], 2),
        "operator_rss_mb_idle_before": round(idle_before, 1),
        "operator_rss_mb_peak": round(max(samples, default=0.0), 1),
        "operator_rss_mb_after": round(idle_after, 1),
        "cores": os.cpu_count(),
        "note": "kwok-simulated pods, KServe v0.17 RawDeployment controller, injected smoke tester; "
        "seconds include KServe's and kwok's work, not only the operator's",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
