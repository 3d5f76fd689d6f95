"""Every dashboard panel returns data from a real Prometheus scraping the real components.

Prometheus (Debian's package) scrapes a ``ferry-gateway --dev`` in front of a ``ferry-predictor``
serving the Titanic model from a real MLflow, and a ``ferry-operator`` rolling a ModelDeployment
out on the local cluster, while a little traffic flows: good requests, a flood from the free tier
(429s), bad keys, a model whose predictor is down, and finally Redis stopping.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ferry_common.contract import GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster import tools
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_generate import dashboards, promql
from ferry_testing.chart import CHART, ROOT, champion_registered, http_ok, process
from ferry_testing.servers import redis_server
from kubernetes import client, config

PROMETHEUS = shutil.which("prometheus")
BIN = Path(sys.executable).parent
ROWS = [
    {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 0, "parch": 0, "fare": 211.34, "embarked": "S"},
    {"pclass": 3, "sex": "male", "sibsp": 1, "parch": 0},  # age, fare and port missing
    {"pclass": 2, "sex": "male", "age": 40.0, "sibsp": 0, "parch": 2, "fare": 26.0, "embarked": "C"},
]


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: run `make deps` (Debian prometheus)")
def test_every_dashboard_query_returns_data(tmp_path: Path, mlflow_uri: str, kubeconfig: str) -> None:
    t0 = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - t0, 1)

    champion_registered(mlflow_uri)
    phase("model registered")
    api = config.new_client_from_config(config_file=kubeconfig)
    kubectl = str(tools.bin_path("kubectl"))
    for path in (CHART / "crds", ROOT / "manifests" / "runtime"):
        subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                kubeconfig,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
    ns = f"dash-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = ("predictor", "predictor-metrics", "gateway", "gateway-metrics", "operator", "prometheus")
    ports = {name: free_port() for name in names}
    dead_port = free_port()
    stop = threading.Event()
    try:
        with ExitStack() as stack:
            redis = stack.enter_context(redis_server(tmp_path / "redis"))
            waits: list[Callable[[], None]] = []
            waits.append(stack.enter_context(
                process(
                    [str(BIN / "ferry-predictor"), "--model_name=titanic",
                     f"--http_port={ports['predictor']}", f"--metrics_port={ports['predictor-metrics']}",
                     "--host=127.0.0.1"],
                    tmp_path / "predictor.log",
                    {"MODEL_URI": "models:/titanic-survival@champion", "MLFLOW_TRACKING_URI": mlflow_uri,
                     "FERRY_COLOR": "blue", "FERRY_MODEL_DIR": str(tmp_path / "model")},
                    "ferry-predictor ready",
                    lambda: http_ok(f"http://127.0.0.1:{ports['predictor']}/v2/health/ready"),
                )
            ))  # fmt: skip
            gateway = f"http://127.0.0.1:{ports['gateway']}"
            gateway_metrics = f"http://127.0.0.1:{ports['gateway-metrics']}/metrics"
            waits.append(stack.enter_context(
                process(
                    [str(BIN / "ferry-gateway"), "--dev", "--port", str(ports["gateway"]),
                     "--metrics-port", str(ports["gateway-metrics"]),
                     "--upstream", f"titanic=http://127.0.0.1:{ports['predictor']}",
                     "--upstream", f"broken=http://127.0.0.1:{dead_port}"],
                    tmp_path / "gateway.log",
                    {"REDIS_URL": redis.url, "FERRY_DEV_DIR": str(tmp_path / "gateway-dev")},
                    "ferry-gateway up",
                    lambda: http_ok(f"{gateway}/healthz"),
                )
            ))  # fmt: skip
            waits.append(stack.enter_context(
                process(
                    [str(BIN / "ferry-operator"), "--standalone", "-n", ns],
                    tmp_path / "operator.log",
                    {"KUBECONFIG": kubeconfig, "MLFLOW_TRACKING_URI": mlflow_uri,
                     "FERRY_METRICS_PORT": str(ports["operator"]), "FERRY_REGISTRY_POLL_SECONDS": "5",
                     "FERRY_SMOKE_TESTER": "ferry_testing.chart_smoke:factory",
                     "FERRY_WATCH_SERVER_TIMEOUT": "10"},
                    "ferry-operator metrics",
                    lambda: port_open(ports["operator"]),
                )
            ))  # fmt: skip
            prom = f"http://127.0.0.1:{ports['prometheus']}"
            scrape = {
                # each component's own metrics port: none serves /metrics where it serves traffic
                "gateway": ports["gateway-metrics"],
                "predictor": ports["predictor-metrics"],
                "operator": ports["operator"],
            }
            cfg = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                    for job, port in scrape.items()
                ],
            }
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
            waits.append(stack.enter_context(
                process(
                    [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                    tmp_path / "prometheus.log",
                    {},
                    "prometheus ready",
                    lambda: http_ok(f"{prom}/-/ready"),
                )
            ))  # fmt: skip

            for wait in waits:  # started together, awaited in turn
                wait()
            phase("components and prometheus up")
            # The operator rolls a ModelDeployment out (kwok makes its predictor pods Ready).
            md = yaml.safe_load((ROOT / "manifests" / "samples" / "titanic.yaml").read_text())
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, ns, MODEL_DEPLOYMENT.plural, md
            )

            http = stack.enter_context(httpx.Client(base_url=gateway, timeout=30))
            pro = {"X-API-Key": DEV_KEYS["dev-pro"]}
            predict = {"instances": ROWS}

            def traffic() -> None:
                while not stop.is_set():
                    http.post("/v1/models/titanic:predict", json=predict, headers=pro)
                    stop.wait(0.05)

            # A flood from the free tier (burst 100) ends in 429s; bad keys; a predictor that is down.
            for _ in range(130):
                http.post(
                    "/v1/models/titanic:predict", json=predict, headers={"X-API-Key": DEV_KEYS["dev-free"]}
                )
            for _ in range(3):
                assert (
                    http.post(
                        "/v1/models/titanic:predict", json=predict, headers={"X-API-Key": "nope"}
                    ).status_code
                    == 401
                )
                assert http.post("/v1/models/broken:predict", json=predict, headers=pro).status_code in (
                    502,
                    503,
                )
            counts = httpx.get(gateway_metrics).text
            assert 'status="429"' in counts, "the free tier was never limited"
            worker = threading.Thread(target=traffic, daemon=True)
            worker.start()
            stack.callback(worker.join, 30)
            stack.callback(stop.set)  # runs first: the worker stops before the client closes
            # Redis stops: the gateway counts the errors and opens its breaker (failing open).
            redis.proc.terminate()
            redis.proc.wait(timeout=10)
            wait_for(
                "Redis errors counted",
                lambda: "ferry_gateway_redis_errors_total{" in httpx.get(gateway_metrics).text,
                timeout=60,
            )

            phase("traffic sent, redis stopped")
            panels = [
                (f"{b.uid}: {title}", promql.substitute_grafana_variables(expr, rate_interval="30s"))
                for b in dashboards.BOARDS
                for title, expr in dashboards.expressions(b)
            ]
            missing: dict[str, str] = {}

            def all_have_data() -> bool:
                missing.clear()
                for where, expr in panels:
                    if not has_numbers(query(prom, expr)):
                        missing[where] = expr
                return not missing

            try:
                wait_for("every panel query has data", all_have_data, timeout=180, interval=1.0)
                phase("every panel has data")
                print(f"dashboards test phases (s): {phases}", file=sys.stderr)
            except Exception:
                logs = {p: (tmp_path / f"{p}.log").read_text()[-1500:] for p in ("operator",)}
                pytest.fail(f"panels without data: {json.dumps(missing, indent=1)}\nlogs: {logs}")
    finally:
        stop.set()
        core.delete_namespace(ns)
