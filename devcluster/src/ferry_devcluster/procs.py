"""Small helpers for starting real servers as child processes and waiting for them honestly."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Listening ports come from below the kernel's ephemeral range (ip_local_port_range starts at
# 32768): a port the kernel handed out by bind(0) is free now but can be taken by any outgoing
# connection before the server we picked it for binds it (seen: KServe's metrics listener).
# 30000-32767 stays clear too: Services' NodePorts live there on the real node.
_LISTEN_PORTS = range(20000, 30000)
_handed_out: set[int] = set()  # never the same port twice to one process (several are picked at once)


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {_LISTEN_PORTS.start}-{_LISTEN_PORTS.stop - 1} after 200 tries")


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float = 60.0,
    interval: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Poll ``check`` until it returns true; raise with ``what`` in the message at the deadline.

    ``progress``, when given, hears "still waiting" every 30 s, so a long wait shows it is alive.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    said = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the thing we wait for is allowed to fail until the deadline
            last = exc
        if progress is not None and time.monotonic() - said > 30:
            progress(f"  still waiting for {what} ...")
            said = time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f": {last!r}" if last else ""))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class Server:
    """A server process started on a loopback port, with the log it writes."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL when it has not exited after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
