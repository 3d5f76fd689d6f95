"""Load for any Ferry environment: realistic Titanic passengers through the gateway.

    locust -f tests/load/locustfile.py --host http://GATEWAY [--headless -u 50 -r 10 -t 2m]

Configuration (environment variables; exactly one credential is required):

    FERRY_API_KEY        an API key (sent as X-API-Key)
    FERRY_TOKEN          a JWT (sent as Authorization: Bearer ...)
    FERRY_MODEL          model name in the gateway's URLs (default: titanic)
    FERRY_PROTOCOL       v1 (KServe :predict), v2 (Open Inference /infer) or both (default: v1)
    FERRY_PREVIEW_SHARE  share of requests sent to the preview colour, 0..1 (default: 0;
                         needs the `preview` scope and a rollout in progress)
    FERRY_BATCH_SIZE     passengers per request (default: 1)
    FERRY_WAIT_SECONDS   mean think time between one user's requests (default: 0, back to back)
    FERRY_LOAD_SUMMARY   write a JSON summary (versions seen, 429s, failures) to this file at the end
    FERRY_USERS          a named user class instead of FERRY_PROTOCOL/FERRY_PREVIEW_SHARE:
                         v1, v2, preview (every request to the preview) or mixed (both protocols,
                         5% preview, mostly single passengers, some batches, think time)
    FERRY_SHAPE          a named load shape instead of -u/-r/-t: steady, peak, stress or soak,
                         ending on its own (FERRY_SHAPE_USERS users at most, FERRY_SHAPE_SECONDS)
    FERRY_P95_MS         exit 1 when the run's 95th percentile response time is over this

How responses are counted, in Locust's statistics and CSVs:

- a 2xx with the right number of predictions is a success, named after the protocol and the
  answering model version and colour (``v1 predict -> v3 blue``), so a rollout shows up as new
  rows and the switch is visible in ``--csv`` output and the web UI;
- a 429 (rate limit or quota) is not a failure of the system: it counts as a success under its
  own name (``v1 predict -> 429 RATE_LIMITED`` or ``QUOTA_EXCEEDED``), visible but never a failure;
- anything else (401, 5xx, a malformed answer, a refused connection) is a failure, grouped by
  status and the error envelope's ``error_code``.

The version comes from the predictor's ``x-ferry-model-version`` / ``x-ferry-color`` headers,
which the gateway passes on, or else from the body (``model_version``, ``color``).
Only the standard library and Locust are needed; the file can be copied anywhere.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

PROTOCOLS = ("v1", "v2", "both")
# FERRY_USERS: protocol, preview share, batch sizes (drawn), mean think time.
PROFILES: dict[str, tuple[str, float, tuple[int, ...], float]] = {
    "v1": ("v1", 0.0, (1,), 0.0),
    "v2": ("v2", 0.0, (1,), 0.0),
    "preview": ("v1", 1.0, (1,), 0.0),
    # Most clients send one passenger at a time, a few send batches; both protocols; a little
    # preview traffic from the team checking a rollout; people pause between calls.
    "mixed": ("both", 0.05, (1,) * 17 + (5, 10, 25), 0.5),
}
# FERRY_SHAPE: default duration (s) and default peak users; stages in shape_stage().
SHAPES: dict[str, tuple[float, int]] = {
    "steady": (300.0, 20),
    "peak": (240.0, 40),
    "stress": (300.0, 100),
    "soak": (3600.0, 10),
}


@dataclass(frozen=True)
class Settings:
    model: str
    headers: dict[str, str]
    protocol: str
    preview_share: float
    batch_size: int
    wait_seconds: float
    summary_path: str | None
    batch_sizes: tuple[int, ...] = ()  # drawn per request when set (FERRY_USERS=mixed)
    shape: str | None = None
    shape_users: int = 0
    shape_seconds: float = 0.0
    p95_ms: float | None = None


def settings_from(env: dict[str, str]) -> Settings:
    """The run's settings, or ValueError naming the variable that is wrong."""
    key, token = env.get("FERRY_API_KEY", "").strip(), env.get("FERRY_TOKEN", "").strip()
    if key and token:
        raise ValueError(
            "set FERRY_API_KEY or FERRY_TOKEN, not both (the gateway refuses a request with both)"
        )
    if not key and not token:
        raise ValueError(
            "set FERRY_API_KEY (an API key) or FERRY_TOKEN (a JWT): the gateway answers 401 without"
        )
    headers = {"X-API-Key": key} if key else {"Authorization": f"Bearer {token}"}
    protocol = env.get("FERRY_PROTOCOL", "v1").strip().lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"FERRY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    model = env.get("FERRY_MODEL", "titanic").strip()
    if not model or "/" in model:
        raise ValueError(f"FERRY_MODEL must be a model name, got {model!r}")
    preview_share = _number(env, "FERRY_PREVIEW_SHARE", "0", float, 0.0, 1.0)
    wait_seconds = _number(env, "FERRY_WAIT_SECONDS", "0", float, 0.0, 3600.0)
    batch_sizes: tuple[int, ...] = ()
    users = env.get("FERRY_USERS", "").strip().lower()
    if users:
        if users not in PROFILES:
            raise ValueError(f"FERRY_USERS must be one of {', '.join(PROFILES)}, got {users!r}")
        clash = [n for n in ("FERRY_PROTOCOL", "FERRY_PREVIEW_SHARE") if env.get(n, "").strip()]
        if clash:
            raise ValueError(f"set FERRY_USERS or {' and '.join(clash)}, not both (the class sets them)")
        protocol, preview_share, batch_sizes, wait_seconds = PROFILES[users]
    shape = env.get("FERRY_SHAPE", "").strip().lower() or None
    shape_users, shape_seconds = 0, 0.0
    if shape is not None:
        if shape not in SHAPES:
            raise ValueError(f"FERRY_SHAPE must be one of {', '.join(SHAPES)}, got {shape!r}")
        default_seconds, default_users = SHAPES[shape]
        shape_users = int(_number(env, "FERRY_SHAPE_USERS", str(default_users), int, 1, 10_000))
        shape_seconds = _number(env, "FERRY_SHAPE_SECONDS", f"{default_seconds:g}", float, 1.0, 86_400.0)
    p95 = env.get("FERRY_P95_MS", "").strip()
    return Settings(
        model=model,
        headers=headers,
        protocol=protocol,
        preview_share=preview_share,
        batch_size=int(_number(env, "FERRY_BATCH_SIZE", "1", int, 1, 1000)),
        wait_seconds=wait_seconds,
        summary_path=env.get("FERRY_LOAD_SUMMARY") or None,
        batch_sizes=batch_sizes,
        shape=shape,
        shape_users=shape_users,
        shape_seconds=shape_seconds,
        p95_ms=_number(env, "FERRY_P95_MS", p95, float, 0.0, 3_600_000.0) if p95 else None,
    )


def _number(env: dict[str, str], name: str, default: str, kind: type, low: float, high: float) -> float:
    raw = env.get(name, default).strip() or default
    try:
        value = float(kind(raw))
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


try:
    SETTINGS = settings_from(dict(os.environ))
except ValueError as _err:
    sys.exit(f"tests/load/locustfile.py: {_err}")


# ---- realistic passengers ------------------------------------------------------------------
# Marginals of the 1,309 passengers of the Titanic data set (class, sex, port, family sizes),
# ages and fares drawn per class; age, fare and port are sometimes unknown, as in the data.

_FARE_BY_CLASS = {1: (4.1, 0.6), 2: (2.7, 0.45), 3: (2.2, 0.45)}  # lognormal(mu, sigma)
_AGE_BY_CLASS = {1: (39.0, 14.0), 2: (29.5, 13.5), 3: (25.0, 12.5)}


def passenger(rng: random.Random) -> dict[str, Any]:
    """One passenger as the model's signature names them; missing optional fields are left out."""
    pclass = rng.choices((1, 2, 3), weights=(24.7, 21.2, 54.1))[0]
    row: dict[str, Any] = {
        "pclass": pclass,
        "sex": "male" if rng.random() < 0.644 else "female",
        "sibsp": rng.choices((0, 1, 2, 3, 4, 5, 8), weights=(680, 243, 32, 15, 17, 5, 7))[0],
        "parch": rng.choices((0, 1, 2, 3, 4, 5, 6, 9), weights=(1002, 170, 113, 8, 6, 6, 2, 2))[0],
    }
    if rng.random() > 0.20:
        mean, sd = _AGE_BY_CLASS[pclass]
        row["age"] = round(min(80.0, max(0.17, rng.gauss(mean, sd))), 1)
    if rng.random() > 0.001:
        mu, sigma = _FARE_BY_CLASS[pclass]
        row["fare"] = round(rng.lognormvariate(mu, sigma), 2)
    if rng.random() > 0.002:
        weights = (50, 10, 40) if pclass == 3 else (70, 28, 2)
        row["embarked"] = rng.choices(("S", "C", "Q"), weights=weights)[0]
    return row


_V2_COLUMNS = (
    ("pclass", "INT64"),
    ("sex", "BYTES"),
    ("age", "FP64"),
    ("sibsp", "INT64"),
    ("parch", "INT64"),
    ("fare", "FP64"),
    ("embarked", "BYTES"),
)


def v1_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"instances": rows}


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One tensor per column; a missing value is null."""
    n = len(rows)
    return {
        "inputs": [
            {"name": name, "shape": [n], "datatype": datatype, "data": [r.get(name) for r in rows]}
            for name, datatype in _V2_COLUMNS
        ]
    }


# ---- what the run saw ------------------------------------------------------------------------


@dataclass
class Seen:
    count: int = 0
    first: float = 0.0
    last: float = 0.0


@dataclass
class Summary:
    """Per process: answering versions with first/last time seen, 429s and failures."""

    versions: dict[str, Seen] = field(default_factory=dict)
    rate_limited: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def failure(self, what: str) -> str:
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1
        return what

    def saw(self, label: str) -> None:
        now = time.time()
        seen = self.versions.setdefault(label, Seen(first=now))
        seen.count += 1
        seen.last = now

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": sum(s.count for s in self.versions.values()),
            "rate_limited": self.rate_limited,
            "failed": self.failed,
            "errors": dict(self.errors),
            "versions": {
                k: {"count": s.count, "first": s.first, "last": s.last}
                for k, s in sorted(self.versions.items(), key=lambda kv: kv[1].first)
            },
        }


SUMMARY = Summary()


def answering_version(headers: Any, body: dict[str, Any]) -> str:
    """``v<version> <colour>`` from the predictor's headers, else from the body."""
    version = headers.get("x-ferry-model-version") or body.get("model_version")
    color = headers.get("x-ferry-color") or body.get("color") or (body.get("parameters") or {}).get("color")
    label = f"v{version}" if version else "version ?"
    return f"{label} {color}" if color else label


def predictions_in(protocol: str, body: dict[str, Any]) -> int | None:
    if protocol == "v1":
        preds = body.get("predictions")
        return len(preds) if isinstance(preds, list) else None
    for out in body.get("outputs") or []:
        if isinstance(out, dict) and out.get("name") == "predictions" and isinstance(out.get("data"), list):
            return len(out["data"])
    return None


def error_code(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "(not the error envelope)"
    return str(doc.get("error_code")) if isinstance(doc, dict) and "error_code" in doc else "(no error_code)"


# ---- the user --------------------------------------------------------------------------------


class FerryUser(FastHttpUser):
    """A client of one model: posts a batch of passengers, v1 or v2, now and then to the preview."""

    wait_time = (
        between(SETTINGS.wait_seconds * 0.5, SETTINGS.wait_seconds * 1.5)
        if SETTINGS.wait_seconds
        else constant(0)
    )

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def predict(self) -> None:
        s = SETTINGS
        protocol = s.protocol if s.protocol != "both" else self.rng.choice(("v1", "v2"))
        preview = s.preview_share > 0 and self.rng.random() < s.preview_share
        size = self.rng.choice(s.batch_sizes) if s.batch_sizes else s.batch_size
        rows = [passenger(self.rng) for _ in range(size)]
        if protocol == "v1":
            path, body, base = f"/v1/models/{s.model}:predict", v1_body(rows), "v1 predict"
        else:
            path, body, base = f"/v2/models/{s.model}/infer", v2_body(rows), "v2 infer"
        headers = dict(s.headers)
        if preview:
            headers["X-Ferry-Preview"] = "true"
            base += " (preview)"
        with self.client.post(path, json=body, headers=headers, name=base, catch_response=True) as resp:
            self._judge(resp, base, protocol, len(rows))

    def _judge(self, resp: Any, base: str, protocol: str, rows: int) -> None:
        status = resp.status_code
        if status == 429:
            SUMMARY.rate_limited += 1
            resp.request_meta["name"] = f"{base} -> 429 {error_code(resp.text or '')}"
            resp.success()
            return
        if not 200 <= status < 300:
            what = f"HTTP {status} {error_code(resp.text or '')}" if status else f"no answer: {resp.error}"
            resp.failure(SUMMARY.failure(what))
            return
        try:
            doc = json.loads(resp.text or "")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            resp.failure(SUMMARY.failure(f"HTTP {status} but the body is not a JSON object"))
            return
        got = predictions_in(protocol, doc)
        if got != rows:
            resp.failure(SUMMARY.failure(f"HTTP {status} but {got} predictions for {rows} passengers"))
            return
        label = answering_version(resp.headers, doc)
        SUMMARY.saw(label)
        resp.request_meta["name"] = f"{base} -> {label}"
        resp.success()


def _report(environment: Environment, **_: Any) -> None:
    doc = SUMMARY.as_json()
    if not (doc["ok"] or doc["rate_limited"] or doc["failed"]):
        return  # a master process: its workers saw the responses
    lines = [f"{label}: {v['count']}" for label, v in doc["versions"].items()]
    errors = "".join(f"; {n} x {what}" for what, n in doc["errors"].items())
    print(
        f"ferry: {doc['ok']} answered ({', '.join(lines) or 'none'}), "
        f"{doc['rate_limited']} rate limited (429), {doc['failed']} failed{errors}",
        file=sys.stderr,
        flush=True,
    )
    if SETTINGS.summary_path:
        path = SETTINGS.summary_path
        if isinstance(environment.runner, WorkerRunner):  # one file per worker process
            path = f"{path}.worker{environment.runner.worker_index}"
        with open(path, "w") as out:
            json.dump(doc, out, indent=2)


events.test_stop.add_listener(_report)  # type: ignore[no-untyped-call]  # locust leaves it unannotated


# ---- named load shapes and the p95 threshold ---------------------------------------------------


def shape_stage(shape: str, elapsed: float, users: int, seconds: float) -> tuple[int, float] | None:
    """(users, spawn rate per second) ``elapsed`` seconds into a run of ``shape``; None: it is over.

    steady: ``users`` throughout, reached in the first tenth. peak: a quarter of ``users``, then
    all of them from 40% to 70% of the run, then a quarter again. stress: five equal steps up to
    ``users``. soak: half of ``users`` for the whole (long) run. Every shape ends at ``seconds``.
    """
    if elapsed >= seconds:
        return None
    ramp = max(users / max(seconds * 0.1, 1.0), 1.0)  # users per second: there within a tenth
    fraction = elapsed / seconds
    if shape == "steady":
        return users, ramp
    if shape == "peak":
        base = max(users // 4, 1)
        return (users if 0.4 <= fraction < 0.7 else base), ramp
    if shape == "stress":
        step = min(int(fraction * 5) + 1, 5)
        return max(users * step // 5, 1), ramp
    if shape == "soak":
        return max(users // 2, 1), ramp
    raise ValueError(f"unknown shape {shape!r}")


if SETTINGS.shape is not None:
    # Defined only when asked for: Locust uses any shape class it finds, over -u/-r/-t.

    class FerryShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            s = SETTINGS
            assert s.shape is not None
            elapsed = self.get_run_time()  # type: ignore[no-untyped-call]  # locust leaves it unannotated
            return shape_stage(s.shape, elapsed, s.shape_users, s.shape_seconds)


def _threshold(environment: Environment, **_: Any) -> None:
    limit = SETTINGS.p95_ms
    if limit is None or isinstance(environment.runner, WorkerRunner):
        return  # the master (or a local runner) has every worker's statistics
    total = environment.stats.total
    if not total.num_requests:
        return
    p95 = total.get_response_time_percentile(0.95)
    if p95 is not None and p95 > limit:
        print(
            f"ferry: p95 {p95:.0f} ms is over FERRY_P95_MS={limit:g}: the run fails",
            file=sys.stderr,
            flush=True,
        )
        environment.process_exit_code = 1
    else:
        print(f"ferry: p95 {p95 or 0:.0f} ms, within FERRY_P95_MS={limit:g}", file=sys.stderr, flush=True)


events.quitting.add_listener(_threshold)  # type: ignore[no-untyped-call]  # locust leaves it unannotated
