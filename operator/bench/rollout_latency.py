"""Benchmark (not a test): from an alias move in MLflow to the new version taking the traffic,
with MLflow's webhooks and with polling only, median of several runs.

On $KUBECONFIG's cluster (the kwok one: `make start-cluster`), with an MLflow server of its own
set up to deliver webhooks to the operator (ferry_testing.webhooks) and the operator as a child
process, each round creates a ModelDeployment following an alias, waits until it is Stable, moves
the alias and times two moments:

  started   the operator has begun the rollout (status.preview names the new version)
  promoted  the new version is active and the Service `<name>` selects its colour

kwok's pods answer no HTTP, so the smoke test is ferry_testing.smoke's and "promoted" is the
moment traffic is switched, not a first answer from a real pod (the real node adds the new pod's
cold start, the same in both modes). Polling is at the operator's default interval unless --poll
says otherwise, and each polling round moves the alias at a random moment of the interval (right
after Stable would always meet the worst case); the floor is one webhook delivery and reconcile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from ferry_common.contract import GROUP, LABEL_COLOR, VERSION
from ferry_devcluster.procs import free_port, wait_for
from ferry_operator import kubeapply, registry_events, webhook_tls
from ferry_testing.operator import PLURAL, OperatorProcess, RegisteredModel, md_body, register_echo
from ferry_testing.servers import mlflow_server
from ferry_testing.webhooks import trusting
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-rollout-latency-webhook-secret"


def log(msg: str) -> None:
    print(f"[bench-rollout {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def status(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    md: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    st: dict[str, Any] = md.get("status") or {}
    return st


def selects(api: client.ApiClient, ns: str, name: str) -> str | None:
    svc: Any = client.CoreV1Api(api).read_namespaced_service(name, ns)
    color: str | None = (svc.spec.selector or {}).get(LABEL_COLOR)
    return color


def timed(what: str, check: Callable[[], bool], t0: float, limit: float) -> float:
    wait_for(what, check, limit, interval=0.05)
    return time.monotonic() - t0


def one_round(
    api: client.ApiClient, ns: str, model: RegisteredModel, limit: float, phase: float
) -> dict[str, float]:
    name = f"r{uuid.uuid4().hex[:6]}"
    alias = f"a{uuid.uuid4().hex[:8]}"
    reg = mlflow.MlflowClient(tracking_uri=model.tracking_uri)
    v1, v2 = model.versions[:2]
    reg.set_registered_model_alias(model.name, alias, v1)
    body = md_body(name, {"name": model.name, "alias": alias})
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    wait_for(f"{name} Stable", lambda: status(api, ns, name).get("phase") == "Stable", 300, interval=0.2)
    # Becoming Stable follows a registry look; moving at once would always meet the poll's worst
    # case. A random moment in the interval is what an alias move in real life meets.
    time.sleep(random.uniform(0, phase))
    t0 = time.monotonic()
    reg.set_registered_model_alias(model.name, alias, v2)

    def started() -> bool:
        st = status(api, ns, name)
        return v2 in (
            (st.get("preview") or {}).get("modelVersion"),
            (st.get("active") or {}).get("modelVersion"),
        )

    def promoted() -> bool:
        active = status(api, ns, name).get("active") or {}
        return active.get("modelVersion") == v2 and selects(api, ns, name) == active.get("color")

    out = {
        "started": timed("rollout started", started, t0, limit),
        "promoted": timed("promoted", promoted, t0, limit),
    }
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return out


def mode(
    label: str,
    kubeconfig: str,
    api: client.ApiClient,
    model: RegisteredModel,
    env: dict[str, str],
    rounds: int,
    limit: float,
    work: Path,
    phase: float,
    on_start: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    proc = OperatorProcess(kubeconfig, model.tracking_uri, work / f"operator-{label}.log", env=env)
    ns = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    proc.start()
    try:
        on_start()
        runs = []
        for i in range(rounds):
            runs.append(one_round(api, ns, model, limit, phase))
            r = runs[-1]
            log(f"{label} {i + 1}/{rounds}: started {r['started']:.2f} s, promoted {r['promoted']:.2f} s")
    finally:
        proc.stop()
        client.CoreV1Api(api).delete_namespace(ns)
    return {
        "runs": runs,
        "started_median_s": statistics.median(r["started"] for r in runs),
        "promoted_median_s": statistics.median(r["promoted"] for r in runs),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds per mode (default 3)")
    p.add_argument(
        "--poll",
        type=float,
        default=30.0,
        help="the polling mode's interval, s (default: the operator's, 30)",
    )
    p.add_argument("--out", type=Path, default=ROOT / ".local/bench/rollout.json")
    a = p.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    api = config.new_client_from_config(config_file=kubeconfig)
    kubeapply.apply(
        DynamicClient(api), kubeapply.load_documents([ROOT / "manifests/crds", ROOT / "manifests/runtime"])
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-rollout-") as tmp:
        work = Path(tmp)
        tls = webhook_tls.self_made(["127.0.0.1", "localhost"], None, work / "tls")
        assert tls.ca_pem is not None
        log("starting an MLflow server set up for webhooks")
        with mlflow_server(work / "mlflow", env=trusting(tls.ca_pem, work / "mlflow")) as server:
            model = register_echo(server.url, "ferry-bench-rollout")
            port = free_port()
            url = f"https://127.0.0.1:{port}/hooks/mlflow"
            hooks = {
                "FERRY_REGISTRY_POLL_SECONDS": "600",
                "FERRY_WEBHOOK_SECRET": SECRET,
                "FERRY_WEBHOOK_HOST": "127.0.0.1",
                "FERRY_WEBHOOK_PORT": str(port),
                "FERRY_WEBHOOK_TLS_DIR": str(tls.cert_file.parent),
            }

            def register() -> None:
                reg = mlflow.MlflowClient(tracking_uri=server.url)
                reg.create_webhook("bench", url, list(registry_events.EVENTS), secret=SECRET)  # type: ignore[arg-type]

            webhooks = mode("webhooks", kubeconfig, api, model, hooks, a.rounds, 120, work, 0.0, register)
            polling = mode(
                "polling",
                kubeconfig,
                api,
                model,
                {"FERRY_REGISTRY_POLL_SECONDS": f"{a.poll:g}"},
                a.rounds,
                a.poll * 3 + 120,
                work,
                a.poll,
            )
    report = {
        "rounds": a.rounds,
        "poll_seconds": a.poll,
        "webhooks": webhooks,
        "polling": polling,
        "ratio_promoted_polling_over_webhooks": polling["promoted_median_s"] / webhooks["promoted_median_s"],
        "seconds": time.monotonic() - started,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    w, q = webhooks, polling
    print(
        f"alias move -> rollout started / promoted (median of {a.rounds}):\n"
        f"  webhooks (poll 600 s)  {w['started_median_s']:6.2f} s  {w['promoted_median_s']:6.2f} s\n"
        f"  polling ({a.poll:g} s)       {q['started_median_s']:6.2f} s  {q['promoted_median_s']:6.2f} s\n"
        f"  polling / webhooks, promoted: {report['ratio_promoted_polling_over_webhooks']:.1f}x   ({a.out})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
