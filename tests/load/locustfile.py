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

from locust import FastHttpUser, between, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

PROTOCOLS = ("v1", "v2", "both")


@dataclass(frozen=True)
class Settings:
    model: str
    headers: dict[str, str]
    protocol: str
    preview_share: float
    batch_size: int
    wait_seconds: float
    summary_path: str | None


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
    return Settings(
        model=model,
        headers=headers,
        protocol=protocol,
        preview_share=_number(env, "FERRY_PREVIEW_SHARE", "0", float, 0.0, 1.0),
        batch_size=int(_number(env, "FERRY_BATCH_SIZE", "1", int, 1, 1000)),
        wait_seconds=_number(env, "FERRY_WAIT_SECONDS", "0", float, 0.0, 3600.0),
        summary_path=env.get("FERRY_LOAD_SUMMARY") or None,
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
        rows = [passenger(self.rng) for _ in range(s.batch_size)]
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
