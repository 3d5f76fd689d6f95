"""What the predictor's and the gateway's process tests share: a running ``ferry-predictor``,
started as the ServingRuntime starts it (traffic and metrics on ports of their own), and its
readiness."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry_devcluster.procs import free_port, wait_for

EXE = Path(sys.executable).parent / "ferry-predictor"


@dataclass
class Predictor:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_url: str = ""

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError:
        return False


def launch(
    model_uri: str,
    tracking_uri: str,
    workdir: Path,
    *,
    name: str = "titanic",
    color: str = "blue",
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Predictor:
    """Start a predictor on free loopback ports; it is not awaited (see ``wait_until_ready``), so
    several can start together and their slow model loads overlap."""
    port, metrics_port = free_port(), free_port()
    log = workdir / "predictor.log"
    env = {
        **os.environ,
        "MODEL_URI": model_uri,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "FERRY_COLOR": color,
        "FERRY_MODEL_DIR": str(workdir / "model"),
        **(extra_env or {}),
    }
    argv = [str(EXE), f"--model_name={name}", f"--http_port={port}", f"--metrics_port={metrics_port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--host=127.0.0.1", *(args or [])], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return Predictor(f"http://127.0.0.1:{port}", proc, log, f"http://127.0.0.1:{metrics_port}/metrics")


def wait_until_ready(p: Predictor) -> Predictor:
    def up() -> bool:
        # An exited process ends the wait at once; its log is the error message.
        return p.proc.poll() is not None or ready(p.url)

    wait_for(f"ferry-predictor at {p.url}", up, timeout=120, interval=0.2)
    if p.proc.poll() is not None:
        raise RuntimeError(f"ferry-predictor exited ({p.proc.returncode}):\n{p.logs()}")
    return p


def terminate(p: Predictor) -> None:
    if p.proc.poll() is None:
        p.proc.terminate()
        try:
            p.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


StartPredictor = Callable[..., Predictor]
