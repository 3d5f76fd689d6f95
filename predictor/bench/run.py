"""``make bench-predictor``: Ferry's predictor against the servers a user would otherwise pick.

One run, same model, same machine, load generator (wrk) in its own process on loopback:
  ferry   ferry-predictor serving models:/titanic-survival@champion through the MLflow registry
  mlflow  `mlflow models serve` (MLflow's scoring server) on the same model's local directory
  kserve  a minimal stock kserve.Model wrapping the same pyfunc (stock_kserve.py)
  null    the predictor's HTTP stack answering a fixed body: the floor no model server can beat
Single row and 100-row batches, concurrency 1 and 32: requests/s, p50, p99; plus cold start
(launch to first good answer) and the in-process cost of the pipeline vs the fast path.
Results go to .local/bench/predictor-<time>.json (and predictor-latest.json) and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ferry_devcluster.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

MODEL = "titanic-survival"
URI = f"models:/{MODEL}@champion"
NAME = "titanic"


@dataclass
class Result:
    server: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def log(msg: str) -> None:
    print(msg, flush=True)


def post(url: str, body: bytes, timeout: float = 10) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    predict_path: str
    wrap: str  # how a list of rows is sent: "instances" or "dataframe_records"

    def body(self, rows: list[dict[str, Any]]) -> bytes:
        return json.dumps({self.wrap: rows}).encode()


def start(server: Server, port: int, probe: bytes, logdir: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Launch and wait for the first good answer; returns the process and its cold start in seconds."""
    out = (logdir / f"{server.name}.log").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        server.argv, stdout=out, stderr=subprocess.STDOUT, env=server.env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}{server.predict_path}"
    deadline = t0 + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({proc.returncode}); see {logdir / server.name}.log")
        try:
            status, _ = post(url, probe, timeout=2)
            if status == 200:
                return proc, time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    raise TimeoutError(f"{server.name} gave no good answer within 180 s; see {logdir / server.name}.log")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wrk(url: str, body_file: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODY": str(body_file)}
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk_report.lua"),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("{"))
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def measure(
    server: Server, port: int, bodies: dict[int, Path], concurrencies: list[int], seconds: float
) -> list[Result]:
    url = f"http://127.0.0.1:{port}{server.predict_path}"
    results = []
    for rows, body_file in bodies.items():
        for c in concurrencies:
            wrk(url, body_file, c, 1)  # warm-up: caches, JIT-free but lazy imports and allocator
            r = wrk(url, body_file, c, seconds)
            res = Result(
                server.name,
                rows,
                c,
                r["requests"] / (r["duration_us"] / 1e6),
                r["p50_us"] / 1000,
                r["p99_us"] / 1000,
                r["socket_errors"] + r["non_2xx"],
            )
            log(
                f"  {server.name:6} {rows:>3} row(s) c={c:<2}  {res.rps:8.0f} req/s  p50 {res.p50_ms:7.2f} ms"
                f"  p99 {res.p99_ms:7.2f} ms  errors {res.errors}"
            )
            results.append(res)
    return results


def ensure_model(tracking_uri: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(MODEL, "champion")
    except MlflowException:
        from ferry_mlflow_example.train import train_all

        log(f"{MODEL}@champion is not registered at {tracking_uri}: training it first")
        train_all(tracking_uri)


def in_process_floor(model_dir: Path, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per-call cost inside one process: the pipeline on a DataFrame vs validation + fast path."""
    import mlflow.sklearn
    import pandas as pd
    from ferry_mlflow_example import data
    from ferry_predictor.fastpath import compile_pipeline
    from ferry_predictor.schema import from_mlflow

    pipeline = mlflow.sklearn.load_model(str(model_dir))
    fast = compile_pipeline(pipeline)
    from ferry_mlflow_example.train import signature

    schema = from_mlflow(signature().inputs.to_dict(), data.CONSTRAINTS)

    def per_call(fn: Any, n: int) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    one = pd.DataFrame(rows[:1])
    batch = schema.validate_records(rows[:1], "instances")
    return {
        "pipeline_predict_proba_1row_ms": per_call(lambda: pipeline.predict_proba(one), 200) * 1e3,
        "fast_path_predict_1row_us": per_call(lambda: fast.predict(batch.columns, batch.rows), 2000) * 1e6,
        "validate_and_fast_path_1row_us": per_call(
            lambda: fast.predict(*(lambda b: (b.columns, b.rows))(schema.validate_records(rows[:1], "i"))),
            2000,
        )
        * 1e6,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument(
        "--seconds", type=float, default=5.0, help="measurement per scenario (default: %(default)s)"
    )
    p.add_argument("--out", type=Path, default=ROOT / ".local" / "bench")
    p.add_argument("--servers", default="ferry,mlflow,kserve,null", help="comma-separated subset")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: `apt-get install -y wrk` (make bench-predictor does this)", file=sys.stderr)
        return 2
    import mlflow.artifacts
    from ferry_mlflow_example import data

    ensure_model(args.tracking_uri)
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=URI, dst_path=str(work / "model"), tracking_uri=args.tracking_uri
        )
    )
    x, _ = data.load()
    complete = x.dropna()
    rows = json.loads(complete.head(100).to_json(orient="records"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    ports = {s: free_port() for s in ("ferry", "mlflow", "kserve", "null")}
    servers = {
        "ferry": Server(
            "ferry",
            [
                str(BIN / "ferry-predictor"),
                f"--model_name={NAME}",
                f"--http_port={ports['ferry']}",
                "--host=127.0.0.1",
                "--log_level=warning",
            ],
            {
                **env,
                "MODEL_URI": URI,
                "MLFLOW_TRACKING_URI": args.tracking_uri,
                "FERRY_COLOR": "blue",
                "FERRY_MODEL_DIR": str(work / "ferry-model"),
            },
            f"/v1/models/{NAME}:predict",
            "instances",
        ),
        "mlflow": Server(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(ports["mlflow"]),
            ],
            env,
            "/invocations",
            "dataframe_records",
        ),
        "kserve": Server(
            "kserve",
            [
                sys.executable,
                str(HERE / "stock_kserve.py"),
                f"--model_name={NAME}",
                f"--model_dir={model_dir}",
                f"--http_port={ports['kserve']}",
            ],
            env,
            f"/v1/models/{NAME}:predict",
            "instances",
        ),
        "null": Server(
            "null", [sys.executable, str(HERE / "null_server.py"), str(ports["null"])], env, "/", "instances"
        ),
    }
    wanted = [s for s in args.servers.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    logdir = args.out / "logs"
    logdir.mkdir(exist_ok=True)
    results: list[Result] = []
    cold: dict[str, float] = {}
    answers: dict[str, Any] = {}
    started = time.monotonic()
    for name in wanted:
        server = servers[name]
        bodies = {}
        for n in (1, 100):
            f = work / f"{name}-{n}.json"
            f.write_bytes(server.body(rows[:n]))
            bodies[n] = f
        log(f"{name}: starting ...")
        proc, cold[name] = start(server, ports[name], bodies[1].read_bytes(), logdir)
        log(f"{name}: first good answer {cold[name]:.2f} s after launch")
        try:
            status, answer = post(
                f"http://127.0.0.1:{ports[name]}{server.predict_path}", bodies[100].read_bytes()
            )
            if status != 200:
                raise RuntimeError(f"{name} refused the 100-row batch ({status}): {answer!r}")
            answers[name] = answer.get("predictions") if isinstance(answer, dict) else None
            results += measure(
                server, ports[name], bodies if name != "null" else {1: bodies[1]}, [1, 32], args.seconds
            )
        finally:
            stop(proc)
    floor = in_process_floor(model_dir, rows)
    report = summarise(results, cold, floor, answers)
    report["seconds_per_scenario"] = args.seconds
    report["total_seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path in (args.out / f"predictor-{stamp}.json", args.out / "predictor-latest.json"):
        path.write_text(json.dumps(report, indent=2))
    print_table(report)
    log(f"\nwritten to {args.out / f'predictor-{stamp}.json'} in {report['total_seconds']} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def summarise(
    results: list[Result], cold: dict[str, float], floor: dict[str, float], answers: dict[str, Any]
) -> dict[str, Any]:
    by = {(r.server, r.rows, r.concurrency): r for r in results}
    ratios: dict[str, float] = {}
    goals: dict[str, Any] = {}
    f32 = by.get(("ferry", 1, 32))
    for other in ("mlflow", "kserve", "null"):
        o = by.get((other, 1, 32))
        if f32 and o:
            ratios[f"ferry_vs_{other}_rps_c32"] = round(f32.rps / o.rps, 2)
    f1, fb1 = by.get(("ferry", 1, 1)), by.get(("ferry", 100, 1))
    if f32:
        goals["rps_c32_at_least_10x_mlflow"] = ratios.get("ferry_vs_mlflow_rps_c32", 0) >= 10
        goals["rps_c32_at_least_5x_kserve"] = ratios.get("ferry_vs_kserve_rps_c32", 0) >= 5
        goals["p99_c32_under_30ms"] = f32.p99_ms < 30
    if f1:
        goals["p50_c1_under_1ms"] = f1.p50_ms < 1
    if f1 and fb1:
        ratios["ferry_batch100_vs_1row_p50_c1"] = round(fb1.p50_ms / f1.p50_ms, 2)
        goals["batch100_within_3x_single"] = ratios["ferry_batch100_vs_1row_p50_c1"] <= 3
    agree = {k: v == answers.get("ferry") for k, v in answers.items() if k not in ("ferry", "null")}
    return {
        "model": URI,
        "results": [asdict(r) for r in results],
        "cold_start_s": cold,
        "in_process": floor,
        "ratios": ratios,
        "goals": goals,
        "same_predictions_as_ferry_on_100_rows": agree,
    }


def print_table(report: dict[str, Any]) -> None:
    print("\nserver  rows  conc      req/s    p50 ms    p99 ms  errors")
    for r in report["results"]:
        print(
            f"{r['server']:7} {r['rows']:>4} {r['concurrency']:>5} {r['rps']:>10.0f} {r['p50_ms']:>9.2f}"
            f" {r['p99_ms']:>9.2f} {r['errors']:>7}"
        )
    print(
        "\ncold start (launch -> first good answer): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in report["cold_start_s"].items())
    )
    print("in process: " + ", ".join(f"{k} {v:.3g}" for k, v in report["in_process"].items()))
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in report["ratios"].items()))
    print("goals: " + ", ".join(f"{k} {'MET' if v else 'missed'}" for k, v in report["goals"].items()))
    print(
        "same predictions as ferry on 100 rows: "
        + json.dumps(report["same_predictions_as_ferry_on_100_rows"])
    )


if __name__ == "__main__":
    sys.exit(main())
