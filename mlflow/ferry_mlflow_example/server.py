"""``python -m ferry_mlflow_example.server up|down``: the local MLflow server behind ``make mlflow-up``.

State lives under ``.local/mlflow`` (sqlite registry, artifacts, log, pid file), so ``up`` is
idempotent and ``down`` stops exactly the process ``up`` started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

from fixtures.servers import start_mlflow
from localcluster.procs import wait_for


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up(workdir: Path, port: int) -> int:
    url = f"http://127.0.0.1:{port}"
    pidfile = workdir / "mlflow.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())) and _healthy(url):
        print(f"MLflow already running at {url} (pid {pidfile.read_text().strip()})")
        return 0
    started = time.monotonic()
    print(f"starting MLflow on {url} (sqlite + artifacts under {workdir}) ...", flush=True)
    server = start_mlflow(workdir, port)
    pidfile.write_text(str(server.proc.pid))
    print(f"MLflow ready at {url} in {time.monotonic() - started:.1f}s (log: {server.log})")
    print(f"  export MLFLOW_TRACKING_URI={url}")
    return 0


def down(workdir: Path) -> int:
    pidfile = workdir / "mlflow.pid"
    if not pidfile.exists():
        print("MLflow is not running (no pid file)")
        return 0
    pid = int(pidfile.read_text())
    if _alive(pid):
        # start_mlflow puts the server in its own session: signal the group, which holds its workers.
        os.killpg(pid, signal.SIGTERM)
        try:
            wait_for(f"MLflow (pid {pid}) to stop", lambda: not _alive(pid), timeout=20)
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
        print(f"MLflow (pid {pid}) stopped")
    else:
        print(f"MLflow (pid {pid}) was not running")
    pidfile.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferry-mlflow", description="Start or stop the local MLflow server."
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument(
        "--dir", type=Path, default=Path(".local/mlflow"), help="state directory (%(default)s)"
    )
    parser.add_argument("--port", type=int, default=5000, help="loopback port (%(default)s)")
    args = parser.parse_args(argv)
    workdir = args.dir.resolve()
    return up(workdir, args.port) if args.action == "up" else down(workdir)


if __name__ == "__main__":
    sys.exit(main())
