"""Steady traffic through the gateway for the end-to-end suites: keep-alive clients, every answer kept.

Each client holds one HTTP/1.1 connection (as a real client library would) and sends at a fixed
pace; every response is recorded with the model version that answered it, so a test can check
that nothing failed and that versions never went back after the switch.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ROW = {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"}


@dataclass(frozen=True)
class Answer:
    client: int
    started: float
    finished: float
    status: int  # 0: no HTTP answer at all (connection error, timeout)
    version: str | None
    error: str = ""


@dataclass
class Traffic:
    """``clients`` keep-alive connections, each sending ``rate`` requests per second."""

    base_url: str
    model: str
    headers: dict[str, str]
    clients: int = 3
    rate: float = 4.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _marks: list[tuple[str, float]] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        self.mark("start")
        for i in range(self.clients):
            t = threading.Thread(target=self._run, args=(i,), daemon=True, name=f"traffic-{i}")
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def mark(self, phase: str) -> None:
        """From now on, answers to requests sent count towards ``phase`` (see ``phases``)."""
        self._marks.append((phase, time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _connect(self) -> http.client.HTTPConnection:
        u = urlsplit(self.base_url)
        return http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=30)

    def _run(self, client: int) -> None:
        conn = self._connect()
        body = json.dumps({"instances": [ROW]}).encode()
        path = f"/v1/models/{self.model}:predict"
        headers = {"Content-Type": "application/json", **self.headers}
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                answer = Answer(
                    client,
                    started,
                    time.monotonic(),
                    resp.status,
                    resp.getheader("x-ferry-model-version"),
                    "" if resp.status == 200 else payload[:300].decode(errors="replace"),
                )
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = self._connect()
            except (OSError, http.client.HTTPException) as exc:
                answer = Answer(client, started, time.monotonic(), 0, None, repr(exc))
                conn.close()
                conn = self._connect()
            with self._lock:
                self.answers.append(answer)
            next_at += 1 / self.rate
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    # ---- what a test asserts on ----

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def failures(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.status != 200]

    def versions_per_client(self) -> dict[int, list[str | None]]:
        out: dict[int, list[str | None]] = {}
        for a in sorted(self.snapshot(), key=lambda a: a.started):
            if a.status == 200:
                out.setdefault(a.client, []).append(a.version)
        return out

    def summary(self) -> dict[str, Any]:
        answers = self.snapshot()
        by_version: dict[str, int] = {}
        for a in answers:
            key = f"{a.status}:{a.version}"
            by_version[key] = by_version.get(key, 0) + 1
        return {"requests": len(answers), "by_status_version": by_version}

    def phases(self) -> list[dict[str, Any]]:
        """Per phase (between marks, by when a request was sent): count, rate, failures, latencies."""
        answers = sorted(self.snapshot(), key=lambda a: a.started)
        bounds = [*self._marks, ("", max((a.finished for a in answers), default=time.monotonic()))]
        out = []
        for (name, begin), (_, end) in itertools.pairwise(bounds):
            these = [a for a in answers if begin <= a.started < end]
            ms = sorted((a.finished - a.started) * 1000 for a in these)

            def pct(q: float, ms: list[float] = ms) -> float | None:
                return round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None

            seconds = max(end - begin, 1e-9)
            out.append(
                {
                    "phase": name,
                    "seconds": round(seconds, 1),
                    "requests": len(these),
                    "per_second": round(len(these) / seconds, 1),
                    "failed": sum(1 for a in these if a.status != 200),
                    "p50_ms": pct(0.50),
                    "p95_ms": pct(0.95),
                    "p99_ms": pct(0.99),
                }
            )
        return out
