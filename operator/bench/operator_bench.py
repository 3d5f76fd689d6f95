"""Benchmark (not a test): the operator at scale, as a sweep over N ModelDeployments.

For each N (default 50, 200, 500), against $KUBECONFIG's cluster (the kwok cluster) with its own
MLflow server: a fresh operator child process (kwok pods cannot answer HTTP, so the injected smoke
tester is used), N ModelDeployments following one alias applied at once and polled until every
one is Ready; then the alias moved to version 2 and polled until every one serves it (Stable, the
new version active). Per N: both times, the operator's CPU seconds and peak memory over the
round, so the growth with N shows. Writes a JSON report and prints a table. Usage: `make
bench-operator` (COUNTS=50,200,500).
"""

from __future__ import annotations

import argparse
import json
import os
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def register_model(uri: str) -> str:
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class Echo(PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    mlflow.set_tracking_uri(uri)
    for _ in range(2):  # versions 1 and 2: the alias moves from one to the other
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model",
                python_model=Echo(),
                input_example=pd.DataFrame({"x": [1.0]}),
                registered_model_name="bench-echo",
                pip_requirements=["mlflow"],
            )
    return "bench-echo"


# The registry poll, the operator's default: the alias move's figure includes up to this much
# waiting. (5 s was tried: at 200 ModelDeployments, 40 reconcile passes a second kept the API
# server at a full core and 17 of 200 were Ready after 105 s.)
POLL_SECONDS = 30


def wait_all(
    what: str, co: Any, ns: str, names: list[str], done: Any, t0: float, timeout: float
) -> dict[str, float]:
    """Poll until ``done(md)`` for every name; seconds since ``t0`` at which each was first seen done."""
    at: dict[str, float] = {}
    last_report = 0.0
    while len(at) < len(names):
        if time.monotonic() - t0 > timeout:
            print(f"[bench]   gave up: {len(at)}/{len(names)} {what} after {timeout:.0f}s", flush=True)
            break
        for md in co.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
            if done(md):
                at.setdefault(md["metadata"]["name"], time.monotonic() - t0)
        if time.monotonic() - last_report > 10:
            print(f"[bench]   {len(at)}/{len(names)} {what} after {time.monotonic() - t0:.0f}s", flush=True)
            last_report = time.monotonic()
        # Not faster: a list of 500 ModelDeployments is about 2 MB, and the API server is the
        # bottleneck this measures.
        time.sleep(2)
    return at


def ready(md: dict[str, Any]) -> bool:
    conds = (md.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def serving(version: str) -> Any:
    def check(md: dict[str, Any]) -> bool:
        st = md.get("status") or {}
        return (st.get("active") or {}).get("modelVersion") == version and not st.get("preview") and ready(md)

    return check


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times) or [float("nan")]
    return round(ordered[int(q * (len(ordered) - 1))], 2)


def one_round(
    count: int, co: Any, core: Any, mlflow_url: str, model: str, work: Path, timeout: float
) -> dict[str, Any]:
    import mlflow

    registry = mlflow.MlflowClient(mlflow_url)
    alias = f"bench-{uuid.uuid4().hex[:6]}"
    registry.set_registered_model_alias(model, alias, "1")
    metrics_port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_url,
        "FERRY_SMOKE_TESTER": "ferry_testing.smoke:factory",  # installed: no PYTHONPATH needed
        "FERRY_METRICS_PORT": str(metrics_port),
        "FERRY_REGISTRY_POLL_SECONDS": str(POLL_SECONDS),
    }
    log = (work / f"operator-{count}.log").open("wb")
    op = subprocess.Popen(
        [sys.executable, "-m", "ferry_operator", "--all-namespaces", "--standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ns = f"bench-{count}-{uuid.uuid4().hex[:6]}"
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and op.poll() is None:
            samples.append(rss_mb(op.pid))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        time.sleep(3)  # let the operator's watches start; not part of the measured interval
        idle_before, cpu_before = rss_mb(op.pid), cpu_seconds(op.pid)
        sampler.start()
        core.create_namespace({"metadata": {"name": ns}})
        names = [f"md-{i:03d}" for i in range(count)]
        print(f"[bench] {count}: applying {count} ModelDeployments in {ns}", flush=True)
        t0 = time.monotonic()
        for name in names:
            body = {
                "apiVersion": API_VERSION,
                "kind": MODEL_DEPLOYMENT.kind,
                "metadata": {"name": name},
                "spec": {"model": {"name": model, "alias": alias}, "rollout": {"scaleDownDelaySeconds": 0}},
            }
            co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        applied = time.monotonic() - t0
        ready_at = wait_all("Ready", co, ns, names, ready, t0, timeout)
        cpu_ready = cpu_seconds(op.pid) - cpu_before
        print(f"[bench] {count}: moving {model}@{alias} to version 2", flush=True)
        t1 = time.monotonic()
        registry.set_registered_model_alias(model, alias, "2")
        moved_at = wait_all("serving version 2", co, ns, names, serving("2"), t1, timeout)
        cpu_total = cpu_seconds(op.pid) - cpu_before
        reconciles = _reconciles(metrics_port)
    finally:
        stop.set()
        op.terminate()
        op.wait(timeout=60)
        core.delete_namespace(ns)
    return {
        "count": count,
        "complete": len(ready_at) == count and len(moved_at) == count,
        "seconds_to_apply_all": round(applied, 2),
        "seconds_apply_to_all_ready": round(max(ready_at.values(), default=float("nan")), 2),
        "seconds_to_ready_p50": pct(list(ready_at.values()), 0.5),
        "seconds_alias_move_to_all_serving": round(max(moved_at.values(), default=float("nan")), 2),
        "seconds_alias_move_p50": pct(list(moved_at.values()), 0.5),
        "operator_cpu_seconds_to_ready": round(cpu_ready, 1),
        "operator_cpu_seconds_total": round(cpu_total, 1),
        "operator_rss_mb_idle_before": round(idle_before, 1),
        "operator_rss_mb_peak": round(max(samples, default=0.0), 1),
        "reconciles_ok": reconciles,
    }


def wait_gone(core: Any, timeout: float = 600) -> None:
    """The previous rounds' namespaces deleted, so a round does not pay for their clean-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [n.metadata.name for n in core.list_namespace().items if n.metadata.name.startswith("bench-")]
        if not left:
            return
        time.sleep(2)
    print(f"[bench] namespaces still terminating after {timeout:.0f}s: {left}", flush=True)


def write_report(out: Path, rounds: list[dict[str, Any]], seconds: float) -> None:
    report = {
        "rounds": rounds,
        "registry_poll_seconds": POLL_SECONDS,
        "cores": os.cpu_count(),
        "seconds_whole_sweep": round(seconds, 1),
        "note": "kwok-simulated pods, KServe v0.17 RawDeployment controller, injected smoke tester; "
        "seconds include KServe's and kwok's work, not only the operator's; the alias move's include "
        "up to one registry poll",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="operator_bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--counts",
        default="50,200,500",
        help="ModelDeployments per round, comma-separated (default 50,200,500)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / ".local/bench/operator.json", help="JSON report path"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="give up on a wait after this many seconds"
    )
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]

    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    co: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)
    kubeapply.apply(
        kubeapply.client(os.environ.get("KUBECONFIG")),
        kubeapply.load_documents([ROOT / "manifests/crds", ROOT / "manifests/runtime"]),
    )
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    rounds = []
    started = time.monotonic()
    with mlflow_server(work / "mlflow") as mlflow:
        print(f"[bench] MLflow at {mlflow.url}; registering a model (versions 1 and 2)", flush=True)
        model = register_model(mlflow.url)
        for count in counts:
            wait_gone(core)
            t = time.monotonic()
            rounds.append(one_round(count, co, core, mlflow.url, model, work, args.timeout))
            print(
                f"[bench] {count}: done in {time.monotonic() - t:.0f}s: {json.dumps(rounds[-1])}", flush=True
            )
            # Written after every round: a sweep stopped in its largest round keeps the others.
            write_report(args.out, rounds, time.monotonic() - started)
    print(f"{'N':>5} {'ready s':>8} {'moved s':>8} {'cpu s':>7} {'peak MB':>8} {'cpu s/MD':>9}")
    for r in rounds:
        per = r["operator_cpu_seconds_total"] / r["count"]
        ready_s, moved_s = r["seconds_apply_to_all_ready"], r["seconds_alias_move_to_all_serving"]
        print(
            f"{r['count']:>5} {ready_s:>8} {moved_s:>8}"
            f" {r['operator_cpu_seconds_total']:>7} {r['operator_rss_mb_peak']:>8} {per:>9.3f}"
        )
    print(f"[bench] report: {args.out}")
    return 0 if all(r["complete"] for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
