"""The limiter through Redis Sentinel and Redis Cluster URLs, with real servers."""

from __future__ import annotations

import functools
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway.limits.ratelimit import Outcome, RateLimiter
from ferry_gateway.limits.redis_conn import make_redis
from ferry_gateway.limits.tiers import LimitsConfig
from ferry_testing.gateway import FakeClock
from ferry_testing.servers import redis_server


def _cluster_ok(admin: redis.Redis) -> bool:  # type: ignore[type-arg]
    return bool(admin.cluster("info")["cluster_state"] == "ok")


class _Exited(RuntimeError):
    pass


@contextmanager
def _proc(args: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    try:
        wait_for(f"{args[0]} on :{port}", lambda: proc.poll() is not None or port_open(port), timeout=20)
        if proc.poll() is not None:
            raise _Exited(f"{args[0]} exited: {log.read_text()[-500:]}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _exact_burst(url: str) -> None:
    limiter = RateLimiter(
        make_redis(url), LimitsConfig(), clock=FakeClock(), prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    outcomes = [(await limiter.check("alice", "free", "titanic")).outcome for _ in range(101)]
    assert outcomes.count(Outcome.ALLOWED) == 100 and outcomes[-1] is Outcome.RATE_LIMITED
    assert limiter.redis_calls == 101  # one round trip each, also through Sentinel/Cluster


async def test_through_sentinel(tmp_path: Path) -> None:
    exe = shutil.which("redis-server")
    assert exe is not None
    with redis_server(tmp_path / "master") as master:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor ferry 127.0.0.1 {master.port} 1\n")
        with _proc([exe, str(conf), "--sentinel"], port, tmp_path / "sentinel.log"):
            await _exact_burst(f"redis+sentinel://127.0.0.1:{port}/ferry/0")


async def test_through_cluster(tmp_path: Path) -> None:
    exe = shutil.which("redis-server")
    assert exe is not None
    for attempt in range(3):  # free ports can be taken by a neighbour between choosing and binding
        port = free_port()
        args = [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--cluster-config-file",
            f"nodes-{attempt}.conf",
            "--cluster-port",
            str(free_port()),
        ]  # the default bus port (+10000) may not exist
        try:
            with _proc(args, port, tmp_path / f"cluster-{attempt}.log"):
                admin = redis.Redis(port=port)
                admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # one node owning every slot
                wait_for("cluster state ok", functools.partial(_cluster_ok, admin), timeout=20)
                await _exact_burst(f"redis+cluster://127.0.0.1:{port}")
                return
        except _Exited:
            if attempt == 2:
                raise
