"""Benchmark the gateway: what it adds over calling the predictor directly, and its ceiling.

Everything runs as separate processes on loopback: redis-server, predictor stand-ins
(ferry_testing.gateway_upstream), one ferry-gateway process, and wrk as the load generator.

1. Overhead at concurrency 1, 32, 128: a predictor stand-in with a fixed 4 ms service time,
   served one request at a time (like the measured single-core predictors) but sleeping instead
   of burning CPU, so it does not steal the gateway's core. p50/p99 direct vs via the gateway.
2. Requests/s of one gateway process against a trivially fast static upstream (the gateway is
   the bottleneck), API-key auth and rate limiting on, and with a JWT; vs the upstream directly.
3. Redis round trips per request, from Redis' own command statistics.

    uv run python gateway/bench/bench_gateway.py [--duration 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_testing.servers import redis_server

BIN = Path(sys.executable).parent
BENCH_KEY = "fry_dev_pro_do_not_use_in_production"  # the dev-pro consumer of --dev mode
SERVICE_TIME = 0.004
LIMITS = "tiers:\n  pro: {perMinute: 60000000, burst: 60000000, perDay: 1000000000}\n"


def log(msg: str) -> None:
    print(f"[bench-gateway {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def process(
    name: str, args: list[str], port: int, log_file: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("wb") as out:  # a file, not a pipe nobody reads: a full pipe would stall the server
        proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log_file}")
            return port_open(port)

        wait_for(name, up, timeout=60)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upstream(port: int, log_dir: Path, serial: float = 0.0) -> Any:
    args = [
        sys.executable,
        "-m",
        "ferry_testing.gateway_upstream",
        "--port",
        str(port),
        "--serial",
        str(serial),
    ]
    return process(f"upstream :{port}", args, port, log_dir / f"upstream-{port}.log")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, connections: int, duration: int, headers: dict[str, str]) -> dict[str, float]:
    lua = "wrk.method = 'POST'\nwrk.body = '{\"instances\": [[3, 1, 22.0, 1, 0, 7.25]]}'\n"
    lua += "wrk.headers['Content-Type'] = 'application/json'\n"
    lua += "".join(f"wrk.headers['{k}'] = '{v}'\n" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name, url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(f.name)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (p50 and p99 and rps and total):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return {
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


# What the gateway sends. The GET/SET/INCR/EXPIRE that the Lua script runs inside Redis also show
# up in commandstats, but cost no round trip, and the gateway never sends them itself.
CLIENT_COMMANDS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script", "cmdstat_mget", "cmdstat_ping")


def drained(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_pending", timeout=5) as resp:
        return bool(json.load(resp)["pending"] == 0)


def redis_calls(r: redis.Redis) -> int:  # type: ignore[type-arg]
    stats = r.info("commandstats")
    return sum(int(stats[k]["calls"]) for k in CLIENT_COMMANDS if k in stats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--out", default=".local/bench/gateway.json")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print(
            "bench-gateway: wrk not found (apt-get install -y wrk; `make bench-gateway` does it)",
            file=sys.stderr,
        )
        return 2
    work = Path(args.out).resolve().parent / "gateway-work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "limits.yaml").write_text(LIMITS)
    results: dict[str, Any] = {
        "service_time_ms": SERVICE_TIME * 1000,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
    }
    started = time.monotonic()
    with ExitStack() as stack:
        log("starting redis-server, predictor stand-ins and one ferry-gateway process")
        rs = stack.enter_context(redis_server(work / "redis"))
        slow_port, fast_port, gw_port = free_port(), free_port(), free_port()
        stack.enter_context(upstream(slow_port, work, serial=SERVICE_TIME))
        stack.enter_context(upstream(fast_port, work))
        env = {"REDIS_URL": rs.url, "FERRY_DEV_DIR": str(work / "dev")}
        gateway = stack.enter_context(
            process(
                "ferry-gateway",
                [
                    str(BIN / "ferry-gateway"),
                    "--dev",
                    "--port",
                    str(gw_port),
                    "--limits",
                    str(work / "limits.yaml"),
                    "--upstream",
                    f"slow=http://127.0.0.1:{slow_port}",
                    "--upstream",
                    f"fast=http://127.0.0.1:{fast_port}",
                ],
                gw_port,
                work / "gateway.log",
                env,
            )
        )
        token = subprocess.run(
            [str(BIN / "ferry"), "token", "--consumer", "dev-pro", "--expires-in", "3600"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        key = {"X-API-Key": BENCH_KEY}
        direct_slow = f"http://127.0.0.1:{slow_port}/v1/models/slow:predict"
        via_slow = f"http://127.0.0.1:{gw_port}/v1/models/slow:predict"
        wrk(via_slow, 4, 1, key)  # warm up: connection pools, JWKS, the Lua script

        overhead: list[dict[str, Any]] = []
        for c in (1, 32, 128):
            log(f"overhead at concurrency {c}: direct, then via the gateway ({args.duration}s each)")
            # wrk stops with requests still queued at the predictor; the next run must not inherit them
            wait_for("predictor stand-in drained", lambda: drained(slow_port), timeout=60)
            d = wrk(direct_slow, c, args.duration, {})
            wait_for("predictor stand-in drained", lambda: drained(slow_port), timeout=60)
            g = wrk(via_slow, c, args.duration, key)
            overhead.append(
                {
                    "concurrency": c,
                    "direct": d,
                    "gateway": g,
                    "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
                    "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
                }
            )
        results["overhead"] = overhead

        fast_direct = f"http://127.0.0.1:{fast_port}/v1/models/fast:predict"
        fast_via = f"http://127.0.0.1:{gw_port}/v1/models/fast:predict"
        log(
            f"throughput: static upstream direct, then via the gateway (API key, JWT), c=64, {args.duration}s"
        )
        r = redis.Redis.from_url(rs.url)
        direct = wrk(fast_direct, 64, args.duration, {})
        before, cpu_before = redis_calls(r), cpu_seconds(gateway.pid)
        with_key = wrk(fast_via, 64, args.duration, key)
        after, cpu_after = redis_calls(r), cpu_seconds(gateway.pid)
        cpu_us = (cpu_after - cpu_before) / max(1, with_key["requests"]) * 1e6
        with_jwt = wrk(fast_via, 64, args.duration, {"Authorization": f"Bearer {token}"})
        results["throughput"] = {
            "upstream_direct": direct,
            "gateway_api_key": with_key,
            "gateway_jwt": with_jwt,
            "gateway_vs_direct": round(with_key["rps"] / direct["rps"], 3),
        }
        results["gateway_cpu_us_per_request"] = round(cpu_us, 1)
        results["implied_rps_per_core"] = round(1e6 / cpu_us) if cpu_us else None
        results["redis_round_trips_per_request"] = round((after - before) / max(1, with_key["requests"]), 3)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))

    print(
        f"\nGateway overhead over a {SERVICE_TIME * 1000:.0f} ms single-worker predictor "
        f"(wrk, {args.duration}s each)"
    )
    print(
        f"{'conc':>5} {'direct p50':>11} {'gw p50':>9} {'added':>8} "
        f"{'direct p99':>11} {'gw p99':>9} {'added':>8}"
    )
    for o in overhead:
        print(
            f"{o['concurrency']:>5} {o['direct']['p50_ms']:>9.2f}ms {o['gateway']['p50_ms']:>7.2f}ms "
            f"{o['added_p50_ms']:>6.2f}ms {o['direct']['p99_ms']:>9.2f}ms {o['gateway']['p99_ms']:>7.2f}ms "
            f"{o['added_p99_ms']:>6.2f}ms"
        )
    t = results["throughput"]
    print(
        f"\nOne gateway process vs a static upstream (c=64): "
        f"upstream direct {t['upstream_direct']['rps']:.0f} req/s; "
        f"gateway {t['gateway_api_key']['rps']:.0f} req/s with API key + limits "
        f"({t['gateway_vs_direct']:.2f}x of direct), {t['gateway_jwt']['rps']:.0f} req/s with JWT; "
        f"errors {t['gateway_api_key']['errors']}/{t['gateway_jwt']['errors']}"
    )
    print(f"Redis round trips per request: {results['redis_round_trips_per_request']}")
    print(
        f"Gateway CPU per request (API key + limits): {results['gateway_cpu_us_per_request']} us "
        f"= {results['implied_rps_per_core']} req/s per fully available core"
    )
    print(
        f"load average at start {results['loadavg_at_start']:.1f} on {results['cpus']} CPUs; "
        f"wall {results['wall_seconds']}s; JSON: {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
