"""The locustfile, run headless as a user would, against a real gateway and real predictors.

The stack: ``ferry-gateway --dev`` on the session's real Redis, in front of two ``ferry-predictor``
processes (blue as the active colour, green as the preview) serving the Titanic champion from the
session's real MLflow registry. Locust runs in a subprocess: it monkey-patches the standard
library with gevent on import, which must never happen inside pytest.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_mlflow_example.train import CHAMPION, MODEL_NAME
from ferry_testing import predictor
from ferry_testing.chart import champion_registered

BIN = Path(sys.executable).parent
# The user-facing locustfile stays in tests/load/ (its README tells users how to run it).
LOCUSTFILE = Path(__file__).parents[1] / "load" / "locustfile.py"
USERS = 4
# The free tier, made small enough that a five-second run meets the limiter for certain
# (the pro tier is made unlimited: its burst of 2,000 is a few seconds of this load).
FREE_BURST, FREE_PER_MINUTE = 10, 30


@dataclass(frozen=True)
class Stack:
    gateway: str
    metrics: str  # the gateway's /metrics, on its own port
    version: str  # the champion's registry version, which both colours serve
    dev_dir: Path


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # Locust's stdout (its report) and stderr (logs, the locustfile's summary)
    # Locust's end-of-run statistics (--json-file): request and failure counts by name.
    requests: dict[str, int]
    failures: dict[str, int]
    # The --csv report: Locust rewrites it every second, so it lags the end by up to a second.
    csv_rows: dict[str, dict[str, str]]
    summary: dict[str, Any]  # the locustfile's FERRY_LOAD_SUMMARY
    seconds: float
    users: list[int]  # running users, once a second (--csv-full-history)

    def count(self, name: str) -> int:
        return self.requests.get(name, 0)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str, mlflow_uri: str) -> Iterator[Stack]:
    from mlflow import MlflowClient

    champion_registered(mlflow_uri)
    version = str(
        MlflowClient(mlflow_uri, mlflow_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION).version
    )
    work = tmp_path_factory.mktemp("load")
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        colours = {}
        for colour in ("blue", "green"):
            (work / colour).mkdir()
            p = predictor.launch(f"models:/{MODEL_NAME}@{CHAMPION}", mlflow_uri, work / colour, color=colour)
            procs.append(p.proc)
            logs.append(p.log)
            colours[colour] = (p.proc, p.url)
        limits = work / "limits.yaml"
        # dev-free meets its limit within a second; dev-pro (the pro tier) never does.
        free = {"perMinute": FREE_PER_MINUTE, "burst": FREE_BURST, "perDay": 100_000}
        limits.write_text(json.dumps({"tiers": {"free": free, "pro": "unlimited"}}))
        port, metrics_port = free_port(), free_port()
        start(
            [
                str(BIN / "ferry-gateway"),
                "--dev",
                "--port",
                str(port),
                "--metrics-port",
                str(metrics_port),
                "--limits",
                str(limits),
                "--upstream",
                f"titanic={colours['blue'][1]}",
                "--preview-upstream",
                f"titanic={colours['green'][1]}",
            ],
            {"REDIS_URL": redis_url, "FERRY_DEV_DIR": str(work / "dev")},
            work / "gateway.log",
        )

        def up() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited ({proc.returncode}); logs in {work}")
            return port_open(port) and all(_ready(url) for _, url in colours.values())

        wait_for("gateway and both predictors", up, timeout=240, interval=0.3)
        yield Stack(
            f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", version, work / "dev"
        )
    except BaseException:
        for log in logs:
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        _stop(procs)


def run_locust(stack: Stack, out: Path, env: dict[str, str], seconds: int = 5) -> Run:
    """``locust --headless`` as the README shows it, with a CSV report and the JSON summary.
    With FERRY_SHAPE in ``env`` the shape sets users and duration, so -u/-r/-t are left out."""
    prefix, summary = out / "locust", out / "summary.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    size = [] if "FERRY_SHAPE" in env else ["-u", str(USERS), "-r", str(USERS), "-t", f"{seconds}s"]
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            str(LOCUSTFILE),
            "--host",
            stack.gateway,
            "--headless",
            *size,
            "--csv-full-history",
            "--stop-timeout",
            "10",  # users finish the request in flight, so every request is counted
            "--csv",
            str(prefix),
            "--json-file",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**clean, "FERRY_LOAD_SUMMARY": str(summary), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    elapsed = time.monotonic() - started
    requests: dict[str, int] = {}
    failures: dict[str, int] = {}
    if Path(f"{prefix}.json").exists():
        for entry in json.loads(Path(f"{prefix}.json").read_text()):
            requests[entry["name"]] = entry["num_requests"]
            failures[entry["name"]] = entry["num_failures"]
    csv_rows: dict[str, dict[str, str]] = {}
    if Path(f"{prefix}_stats.csv").exists():
        with open(f"{prefix}_stats.csv", newline="") as f:
            csv_rows = {r["Name"]: r for r in csv.DictReader(f)}
    users: list[int] = []
    if Path(f"{prefix}_stats_history.csv").exists():
        with open(f"{prefix}_stats_history.csv", newline="") as f:
            users = [int(r["User Count"]) for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    doc = json.loads(summary.read_text()) if summary.exists() else {}
    return Run(proc.returncode, proc.stdout + proc.stderr, requests, failures, csv_rows, doc, elapsed, users)


def assert_csv_plausible(run: Run) -> None:
    """The CSV names what the final statistics name, with at most their counts (it lags by <= 1s)."""
    total = run.csv_rows.pop("Aggregated", None)
    assert total is not None, "no Aggregated row in the CSV"
    assert set(run.csv_rows) <= set(run.requests), f"CSV rows {sorted(run.csv_rows)}"
    assert sum(int(r["Request Count"]) for r in run.csv_rows.values()) == int(total["Request Count"])
    assert run.total / 2 <= int(total["Request Count"]) <= run.total
    assert int(total["Failure Count"]) <= run.failed


def gateway_requests(stack: Stack, consumer: str) -> dict[str, int]:
    """ferry_gateway_requests_total for model titanic and this consumer, by HTTP status."""
    with urllib.request.urlopen(stack.metrics, timeout=10) as r:
        text = r.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("ferry_gateway_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if labels.get("model") == "titanic" and labels.get("consumer") == consumer:
            out[labels["status"]] = out.get(labels["status"], 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def dev_token(stack: Stack) -> str:
    return subprocess.run(
        [str(BIN / "ferry"), "token", "--consumer", "dev-pro", "--scopes", "predict,preview"],
        env={**os.environ, "FERRY_DEV_DIR": str(stack.dev_dir)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_both_protocols_and_the_preview_are_tagged_by_version_and_colour(
    stack: Stack, tmp_path: Path
) -> None:
    # a token is billed as its own consumer, jwt:<sub> (gateway README, JWT identities)
    before = gateway_requests(stack, "jwt:dev-pro")
    run = run_locust(
        stack,
        tmp_path,
        {"FERRY_TOKEN": dev_token(stack), "FERRY_PROTOCOL": "both", "FERRY_PREVIEW_SHARE": "0.3"},
    )
    assert run.returncode == 0, run.output[-3000:]
    assert run.failed == 0, run.output[-3000:]
    total = run.total
    # Four users back to back on loopback for five seconds: far more than this on any machine.
    assert total >= 100, f"only {total} requests in {run.seconds:.0f}s"
    v = stack.version
    expected = {
        f"v1 predict -> v{v} blue",
        f"v2 infer -> v{v} blue",
        f"v1 predict (preview) -> v{v} green",
        f"v2 infer (preview) -> v{v} green",
    }
    assert set(run.requests) == expected, f"rows {sorted(run.requests)}"
    preview = sum(run.count(n) for n in expected if "(preview)" in n)
    assert 0.15 <= preview / total <= 0.45, f"{preview} of {total} went to the preview, asked for 30%"
    v2 = sum(run.count(n) for n in expected if n.startswith("v2"))
    assert 0.35 <= v2 / total <= 0.65, f"{v2} of {total} used v2, asked for half"
    assert_csv_plausible(run)
    # The locustfile's summary and the gateway's own count agree with Locust's statistics.
    assert run.summary["ok"] == total and run.summary["rate_limited"] == 0 and run.summary["failed"] == 0
    assert {k: d["count"] for k, d in run.summary["versions"].items()} == {
        f"v{v} blue": total - preview,
        f"v{v} green": preview,
    }
    served = gateway_requests(stack, "jwt:dev-pro").get("200", 0) - before.get("200", 0)
    assert served == total, f"the gateway answered {served} requests, Locust counted {total}"
    assert f"ferry: {total} answered" in run.output


def test_rate_limited_requests_are_visible_but_not_failures(stack: Stack, tmp_path: Path) -> None:
    before = gateway_requests(stack, "dev-free")
    run = run_locust(stack, tmp_path, {"FERRY_API_KEY": DEV_KEYS["dev-free"], "FERRY_PROTOCOL": "v1"})
    assert run.returncode == 0, run.output[-3000:]
    assert run.failed == 0, run.output[-3000:]
    answered, limited = f"v1 predict -> v{stack.version} blue", "v1 predict -> 429 RATE_LIMITED"
    assert set(run.requests) == {answered, limited}, f"rows {sorted(run.requests)}"
    ok = run.count(answered)
    # The limiter admits the burst, then perMinute/60 a second: everything else is a 429.
    most = FREE_BURST + FREE_PER_MINUTE / 60 * run.seconds + 1
    assert FREE_BURST // 2 <= ok <= most, f"{ok} admitted in {run.seconds:.1f}s; at most {most:.0f} expected"
    assert run.count(limited) > ok, f"{run.count(limited)} rate limited, {ok} admitted"
    assert_csv_plausible(run)
    assert run.summary["rate_limited"] == run.count(limited) and run.summary["failed"] == 0
    after = gateway_requests(stack, "dev-free")
    refused = after.get("429", 0) - before.get("429", 0)
    assert refused == run.count(limited), (
        f"the gateway sent {refused} 429s, Locust counted {run.count(limited)}"
    )
    assert f"{run.count(limited)} rate limited (429)" in run.output


def test_real_failures_fail_the_run(stack: Stack, tmp_path: Path) -> None:
    """A wrong key is the system refusing: failures, a non-zero exit, grouped by status and code."""
    run = run_locust(stack, tmp_path, {"FERRY_API_KEY": "fry_not_a_key"}, seconds=2)
    assert run.returncode != 0
    assert run.total > 0 and run.failed == run.total
    assert set(run.requests) == {"v1 predict"}
    assert run.summary["errors"] == {"HTTP 401 UNAUTHENTICATED": run.total}
    assert f"0 rate limited (429), {run.total} failed; {run.total} x HTTP 401 UNAUTHENTICATED" in run.output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set FERRY_API_KEY (an API key) or FERRY_TOKEN (a JWT)"),
        ({"FERRY_API_KEY": "k", "FERRY_PROTOCOL": "v3"}, "FERRY_PROTOCOL must be one of v1, v2, both"),
        ({"FERRY_API_KEY": "k", "FERRY_PREVIEW_SHARE": "30%"}, "FERRY_PREVIEW_SHARE must be a number"),
        (
            {"FERRY_API_KEY": "k", "FERRY_SHAPE": "burst"},
            "FERRY_SHAPE must be one of steady, peak, stress, soak",
        ),
        ({"FERRY_API_KEY": "k", "FERRY_USERS": "v3"}, "FERRY_USERS must be one of v1, v2, preview, mixed"),
        (
            {"FERRY_API_KEY": "k", "FERRY_USERS": "v1", "FERRY_PROTOCOL": "v2"},
            "set FERRY_USERS or FERRY_PROTOCOL, not both",
        ),
        (
            {"FERRY_API_KEY": "k", "FERRY_SHAPE": "peak", "FERRY_SHAPE_USERS": "0"},
            "FERRY_SHAPE_USERS must be",
        ),
    ],
)
def test_misconfiguration_is_refused_before_any_request(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    nowhere = Stack(f"http://127.0.0.1:{free_port()}", "", "-", tmp_path)
    run = run_locust(nowhere, tmp_path, env, seconds=2)
    assert run.returncode != 0
    assert message in run.output
    assert not run.requests and not (tmp_path / "locust_stats.csv").exists()


def test_a_named_shape_sets_the_users_over_time_and_ends_by_itself(stack: Stack, tmp_path: Path) -> None:
    """peak: a quarter of the users, all of them from 40% to 70% of the run, a quarter again."""
    env = {"FERRY_API_KEY": DEV_KEYS["dev-pro"], "FERRY_SHAPE": "peak"}
    run = run_locust(stack, tmp_path, {**env, "FERRY_SHAPE_USERS": "8", "FERRY_SHAPE_SECONDS": "10"})
    assert run.returncode == 0 and run.failed == 0, run.output[-3000:]
    assert run.seconds < 60, f"the shape should have ended the run after 10 s, took {run.seconds:.0f} s"
    assert max(run.users) == 8 and 2 in run.users, run.users
    top = run.users.index(8)
    assert 2 in run.users[:top] and 2 in run.users[top:], f"no way up and back down: {run.users}"


def test_a_p95_over_its_threshold_fails_the_run_and_says_so(stack: Stack, tmp_path: Path) -> None:
    env = {"FERRY_API_KEY": DEV_KEYS["dev-pro"], "FERRY_SHAPE": "steady", "FERRY_SHAPE_SECONDS": "3"}
    strict = run_locust(stack, tmp_path, {**env, "FERRY_SHAPE_USERS": "2", "FERRY_P95_MS": "0.001"})
    assert strict.returncode == 1 and strict.failed == 0, strict.output[-3000:]
    assert "is over FERRY_P95_MS=0.001: the run fails" in strict.output
    easy = run_locust(stack, tmp_path, {**env, "FERRY_SHAPE_USERS": "2", "FERRY_P95_MS": "60000"})
    assert easy.returncode == 0 and "within FERRY_P95_MS=60000" in easy.output, easy.output[-3000:]


@pytest.mark.parametrize(
    ("users", "rows"),
    [
        ("v2", {"v2 infer -> v{v} blue"}),
        ("preview", {"v1 predict (preview) -> v{v} green"}),
    ],
)
def test_a_named_user_class_sends_what_its_name_says(
    stack: Stack, tmp_path: Path, users: str, rows: set[str]
) -> None:
    run = run_locust(stack, tmp_path, {"FERRY_TOKEN": dev_token(stack), "FERRY_USERS": users}, seconds=2)
    assert run.returncode == 0 and run.failed == 0, run.output[-3000:]
    assert set(run.requests) == {r.format(v=stack.version) for r in rows}, sorted(run.requests)


def test_the_mixed_class_sends_both_protocols_batches_and_some_preview(stack: Stack, tmp_path: Path) -> None:
    run = run_locust(stack, tmp_path, {"FERRY_TOKEN": dev_token(stack), "FERRY_USERS": "mixed"}, seconds=8)
    assert run.returncode == 0 and run.failed == 0, run.output[-3000:]
    names = set(run.requests)
    assert any(n.startswith("v1 predict ->") for n in names) and any(
        n.startswith("v2 infer ->") for n in names
    )
    # think time: 4 users pausing about half a second each send far fewer than back to back
    assert 10 <= run.total <= 4 * 8 / 0.25, f"{run.total} requests in 8 s"
