"""``python -m ferry_devcluster.mlflow_server up|down``: the local MLflow server behind ``make start-mlflow``.

State lives under ``.local/mlflow`` (sqlite registry, artifacts, log, pid file), so ``up`` is
idempotent and ``down`` stops exactly the process ``up`` started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ferry_devcluster.procs import Server, alive, stop, wait_for


def mlflow_command() -> list[str]:
    exe = Path(sys.executable).parent / "mlflow"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def start_mlflow(
    workdir: Path, port: int, *, wait: bool = True, env: Mapping[str, str] | None = None
) -> Server:
    """An MLflow tracking server with a sqlite backend and a local artifact store under ``workdir``.

    ``--serve-artifacts`` makes clients fetch artifacts through the server (mlflow-artifacts:/),
    as a predictor in a cluster would. ``env`` is added to the server's environment (for example
    MLflow's MLFLOW_WEBHOOK_* settings).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow.log"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                *mlflow_command(),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination",
                str(workdir / "artifacts"),
                "--serve-artifacts",
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(url, port, proc, log)
    if wait:

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({proc.returncode}); see {log}")
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return bool(r.status == 200)

        try:
            # Generous: a cold `mlflow server` imports a lot and migrates its sqlite schema,
            # which takes minutes on a loaded two-core machine.
            wait_for(f"mlflow server on :{port}", healthy, timeout=300, interval=0.3)
        except TimeoutError:
            stop(proc)
            raise RuntimeError(
                f"mlflow server did not become healthy; log tail:\n{log.read_text()[-2000:]}"
            ) from None
    return server


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def up(workdir: Path, port: int) -> int:
    url = f"http://127.0.0.1:{port}"
    pidfile = workdir / "mlflow.pid"
    if pidfile.exists() and alive(int(pidfile.read_text())) and _healthy(url):
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
    if alive(pid):
        # start_mlflow puts the server in its own session: signal the group, which holds its workers.
        os.killpg(pid, signal.SIGTERM)
        try:
            wait_for(f"MLflow (pid {pid}) to stop", lambda: not alive(pid), timeout=20)
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
