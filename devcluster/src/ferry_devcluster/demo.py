"""``make demo``: a narrated tour of Ferry on the stack ``make up`` started.

Reads ``.local/stack.json`` (written by ``make up``) and walks through what a user meets, with
numbered steps, what to notice, and for each action the command a user could copy:

1. predictions through the gateway (v1 and v2) and the model version that answers;
2. a call without a key and one with a bad token (401), then a 429 from the free tier's limit;
3. a new version registered in MLflow and the alias ``champion`` moved to it;
4. the blue-green rollout watched until Stable while a loop of predictions shows the switch;
5. an instant rollback to the previous version (``kubectl ferry rollback``);
6. a rollout held for promotion and aborted (``kubectl ferry abort``);
7. tidying up: the alias back on the serving version, autoPromote back on.

Every wait has a deadline; the first step that fails stops the tour with a message saying what
was expected, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .paths import REPO, local_dir
from .stack import Stack

PASSENGERS = [
    {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"},
    {"pclass": 1, "sex": "female", "age": 38.0, "sibsp": 1, "parch": 0, "fare": 71.28, "embarked": "C"},
]
V2_TYPES = {
    "pclass": "INT64",
    "sex": "BYTES",
    "age": "FP64",
    "sibsp": "INT64",
    "parch": "INT64",
    "fare": "FP64",
    "embarked": "BYTES",
}
RATE_HEADERS = (
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-quota-limit",
    "x-quota-remaining",
    "x-quota-reset",
)


class DemoFailure(Exception):
    """A step did not do what the tour says it does."""


# ---- the stack ---------------------------------------------------------------------------------


# What `make up` wrote to .local/stack.json: ferry_devcluster.stack.Stack.


# ---- narration ---------------------------------------------------------------------------------


class Narrator:
    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def _c(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def out(self, text: str = "") -> None:
        with self.lock:
            print(text, flush=True)

    def step(self, number: int, title: str) -> None:
        self.out()
        self.out(self._c("1;36", f"[{number}] {title}"))

    def say(self, text: str) -> None:
        self.out(f"    {text}")

    def notice(self, text: str) -> None:
        self.out(self._c("33", f"    notice: {text}"))

    def command(self, cmd: str) -> None:
        self.out(self._c("2", f"    $ {cmd}"))

    def ok(self, text: str) -> None:
        self.out(self._c("32", f"    ok: {text}"))

    def fail(self, text: str) -> None:
        self.out(self._c("1;31", f"    FAILED: {text}"))

    def block(self, text: str, indent: str = "      ") -> None:
        self.out("\n".join(indent + line for line in text.rstrip().splitlines()))

    def clock(self) -> str:
        return f"+{time.monotonic() - self.started:6.1f}s"


def deadline_loop(what: str, timeout: float, check: Callable[[], bool], interval: float = 1.0) -> None:
    """Call ``check`` until it returns true; DemoFailure naming ``what`` at the deadline."""
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            if check():
                return
            last = None
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise DemoFailure(f"{what}: not within {timeout:.0f}s" + (f" (last error: {last})" if last else ""))


# ---- predictions -------------------------------------------------------------------------------


def v1_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"instances": rows}


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": t, "data": [r[c] for r in rows]}
            for c, t in V2_TYPES.items()
        ]
    }


def answered_by(resp: httpx.Response) -> tuple[str, str]:
    """(version, colour) from the predictor's headers, which the gateway passes on."""
    body: dict[str, Any] = {}
    try:
        loaded = resp.json()
        body = loaded if isinstance(loaded, dict) else {}
    except ValueError:
        pass
    version = resp.headers.get("x-ferry-model-version") or str(body.get("model_version") or "?")
    colour = resp.headers.get("x-ferry-color") or str(
        body.get("color") or (body.get("parameters") or {}).get("color") or "?"
    )
    return version, colour


@dataclass
class Answer:
    at: float
    status: int
    version: str
    colour: str


@dataclass
class PredictionLoop:
    """Predictions through the gateway in a thread, as a steady client would send them."""

    url: str
    headers: dict[str, str]
    narrator: Narrator
    interval: float = 0.2
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PredictionLoop:
        self._thread = threading.Thread(target=self._run, name="predictions", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        last: tuple[int, str, str] | None = None
        streak = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(
                        "/v1/models/titanic:predict", json=v1_body(PASSENGERS[:1]), headers=self.headers
                    )
                    version, colour = answered_by(r) if r.status_code == 200 else ("-", "-")
                    answer = Answer(time.monotonic(), r.status_code, version, colour)
                except httpx.HTTPError as exc:
                    answer = Answer(time.monotonic(), 0, "-", type(exc).__name__)
                self.answers.append(answer)
                key = (answer.status, answer.version, answer.colour)
                if key != last:
                    if last is not None:
                        self.narrator.say(
                            f"{self.narrator.clock()}  predictions: {streak} answer(s) {_label(last)}"
                        )
                    self.narrator.say(f"{self.narrator.clock()}  predictions: now {_label(key)}")
                    last, streak = key, 0
                streak += 1
                self._stop.wait(self.interval)

    def since(self, t: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= t]


def _label(key: tuple[int, str, str]) -> str:
    status, version, colour = key
    if status == 200:
        return f"answered by version {version} ({colour})"
    return f"failing: HTTP {status or colour}"


# ---- the tour ----------------------------------------------------------------------------------


class Demo:
    def __init__(self, stack: Stack, narrator: Narrator) -> None:
        from ferry_operator.cli import Cluster

        self.s = stack
        self.n = narrator
        self.cluster = Cluster(stack.kubeconfig, None)
        self.http = httpx.Client(base_url=stack.gateway_url, timeout=15)
        self.mlflow = httpx.Client(base_url=stack.mlflow_url, timeout=30)
        self.ns = stack.models_namespace
        self.name = stack.deployment
        self.pro = {"X-API-Key": stack.api_keys["dev-pro"]}
        self.bearer = {"Authorization": f"Bearer {stack.token}"}
        self.path = os.pathsep.join([stack.bin, str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.kubectl = self._which("kubectl")
        self.soft_failures: list[str] = []

    def _which(self, exe: str) -> str | None:
        for d in self.path.split(os.pathsep):
            if d and os.access(os.path.join(d, exe), os.X_OK):
                return os.path.join(d, exe)
        return None

    # -- helpers -----------------------------------------------------------------------------

    def md(self) -> dict[str, Any]:
        return self.cluster.get(self.ns, self.name)

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = self.md().get("status") or {}
        return st

    def active_version(self) -> str | None:
        return ((self.status().get("active") or {}).get("modelVersion")) or None

    def ferry(self, *args: str, show: bool = True) -> str:
        """``kubectl ferry ...`` exactly as printed (the plugin is the operator package's kubectl-ferry)."""
        flags = ["--kubeconfig", self.s.kubeconfig, "-n", self.ns]
        printed = ["kubectl", "ferry", *flags, *args]
        self.n.command(shlex.join(printed))
        run = printed if self.kubectl else ["kubectl-ferry", *flags, *args]
        proc = subprocess.run(
            run, env={**os.environ, "PATH": self.path}, capture_output=True, text=True, timeout=300
        )
        if show and proc.stdout.strip():
            self.n.block(proc.stdout)
        if proc.returncode != 0:
            raise DemoFailure(f"`{shlex.join(printed)}` exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def kubectl_patch(self, patch: dict[str, Any]) -> None:
        cmd = [
            "kubectl",
            "--kubeconfig",
            self.s.kubeconfig,
            "-n",
            self.ns,
            "patch",
            "modeldeployment",
            self.name,
            "--type",
            "merge",
            "-p",
            json.dumps(patch, separators=(",", ":")),
        ]
        self.n.command(shlex.join(cmd))
        if self.kubectl is None:
            raise DemoFailure(f"kubectl is not in stack.json's bin ({self.s.bin}): run `make up` again")
        proc = subprocess.run(
            [self.kubectl, *cmd[1:]], env={**os.environ, "PATH": self.path}, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise DemoFailure(f"kubectl patch failed: {proc.stderr.strip()}")
        self.n.block(proc.stdout)

    def curl(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> None:
        parts = ["curl", "-si"]
        if method != "GET":
            parts += ["-X", method]
        parts.append(self.s.gateway_url + path)
        bearer = False
        for k, v in headers.items():
            if k == "Authorization" and v == f"Bearer {self.s.token}":
                bearer = True  # printed as "$TOKEN" (set by step 0's export line), not the long JWT
            else:
                parts += ["-H", f"{k}: {v}"]
        if body is not None:
            parts += ["-d", json.dumps(body, separators=(",", ":"))]
        line = shlex.join(parts)
        if bearer:  # after the URL, where the other headers go
            url = shlex.quote(self.s.gateway_url + path)
            line = line.replace(url, f'{url} -H "Authorization: Bearer $TOKEN"', 1)
        self.n.command(line)

    def predict(self, headers: dict[str, str], protocol: str = "v1", echo: bool = True) -> httpx.Response:
        rows = PASSENGERS
        path = "/v1/models/titanic:predict" if protocol == "v1" else "/v2/models/titanic/infer"
        body = v1_body(rows) if protocol == "v1" else v2_body(rows)
        if echo:
            self.curl("POST", path, headers, body)
        return self.http.post(path, json=body, headers=headers)

    def move_alias(self, version: str) -> None:
        doc = {"name": self.s.registered_model, "alias": self.s.alias, "version": version}
        self.n.command(
            shlex.join(
                [
                    "curl",
                    "-s",
                    "-X",
                    "POST",
                    f"{self.s.mlflow_url}/api/2.0/mlflow/registered-models/alias",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    json.dumps(doc, separators=(",", ":")),
                ]
            )
        )
        r = self.mlflow.post("/api/2.0/mlflow/registered-models/alias", json=doc)
        if r.status_code != 200:
            raise DemoFailure(f"MLflow refused to move the alias: HTTP {r.status_code} {r.text[:300]}")
        self.n.ok(f"alias {self.s.alias} -> version {version}")

    def register(self, variant: str) -> str:
        """Train and register a new version as ``make train`` does (ferry_mlflow_example), in a child
        process run exactly as printed; MLflow's chatter is shown only if it fails."""
        code = (
            "import json, mlflow; from mlflow import MlflowClient; "
            "from ferry_mlflow_example import data, train; "
            "mlflow.set_experiment(train.EXPERIMENT); x, y = data.load(); "
            f"r = train.train_and_register({json.dumps(variant)}, x, y, MlflowClient()); "
            "print(json.dumps([r.version, r.accuracy]))"
        )
        self.n.command(f"MLFLOW_TRACKING_URI={self.s.mlflow_url} uv run python -c {shlex.quote(code)}")
        self.n.say("training and uploading the model (10-60 s) ...")
        started = time.monotonic()
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.s.mlflow_url}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900, cwd=REPO
            )
        except subprocess.TimeoutExpired:
            raise DemoFailure(
                f"training did not finish within 900s (MLflow at {self.s.mlflow_url})"
            ) from None
        lines = proc.stdout.strip().splitlines()
        try:
            version, accuracy = json.loads(lines[-1]) if proc.returncode == 0 and lines else (None, None)
        except ValueError:
            version, accuracy = None, None
        if version is None:
            tail = (proc.stdout + proc.stderr).strip()[-2000:]
            raise DemoFailure(f"training/registration failed (exit {proc.returncode}):\n{tail}")
        self.n.ok(
            f"registered models:/{self.s.registered_model}/{version} ({variant}, accuracy {accuracy:.3f}) "
            f"in {time.monotonic() - started:.0f}s"
        )
        return str(version)

    def watch(self, what: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """Print phase/colour changes and new Events as they happen until ``done(status)``."""
        self.n.say(f"watching until {what} (deadline {timeout:.0f}s); the same, by hand:")
        self.n.command(
            shlex.join(
                [
                    "kubectl",
                    "ferry",
                    "--kubeconfig",
                    self.s.kubeconfig,
                    "-n",
                    self.ns,
                    "status",
                    self.name,
                    "-w",
                ]
            )
        )
        seen_events: set[tuple[str, str, str]] = set()
        for e in self.cluster.events(self.ns, self.name):
            seen_events.add(_event_key(e))
        last = ""
        end = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while True:
            st = self.status()
            line = _phase_line(st)
            if line != last:
                self.n.say(f"{self.n.clock()}  {line}")
                last, quiet_since = line, time.monotonic()
            elif time.monotonic() - quiet_since > 30:
                self.n.say(f"{self.n.clock()}  ... unchanged for 30s ({end - time.monotonic():.0f}s left)")
                quiet_since = time.monotonic()
            for e in sorted(
                self.cluster.events(self.ns, self.name),
                key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
            ):
                key = _event_key(e)
                if key not in seen_events:
                    seen_events.add(key)
                    self.n.say(f"{self.n.clock()}  event {e.get('reason')}: {e.get('message')}")
                    quiet_since = time.monotonic()
            if done(st):
                return st
            if time.monotonic() > end:
                raise DemoFailure(f"{what}: not within {timeout:.0f}s; last seen: {line}")
            time.sleep(1)

    # -- the steps ---------------------------------------------------------------------------

    def step0_stack(self) -> None:
        self.n.step(0, "The stack `make up` started")
        self.n.say(f"gateway {self.s.gateway_url}   MLflow {self.s.mlflow_url}")
        self.n.say(f"ModelDeployment {self.ns}/{self.name} follows {self.s.registered_model}@{self.s.alias}")
        self.n.say("to run the commands below yourself:")
        self.n.command(f"export PATH={self.s.bin}:{REPO / '.venv' / 'bin'}:$PATH")
        self.n.command("TOKEN=$(jq -r .token .local/stack.json)   # a JWT for consumer dev-pro")
        st = self.watch("the deployment serves with no rollout in progress", _settled, 600)
        self.n.ok(f"version {st['active']['modelVersion']} serves from the {st['active']['color']} colour")
        if st.get("phase") != "Stable":
            self.n.notice(f"phase {st.get('phase')}: {_ready_message(st)}")

    def step1_predict(self) -> None:
        self.n.step(1, "A prediction through the gateway, KServe v1 and Open Inference Protocol v2")
        r = self.predict(self.pro, "v1")
        if r.status_code != 200:
            raise DemoFailure(f"v1 predict answered HTTP {r.status_code}: {r.text[:500]}")
        body = r.json()
        version, colour = answered_by(r)
        self.n.block(
            json.dumps(
                {k: body[k] for k in ("predictions", "probabilities", "model_version", "color") if k in body}
            )
        )
        self.n.notice(
            f"x-ferry-model-version: {version}, x-ferry-color: {colour}; the same in the body. "
            "The two passengers: a third-class man (0 = died) and a first-class woman (1 = survived)."
        )
        headers = self.bearer
        r = self.predict(headers, "v2")
        if r.status_code == 401:
            reason = (r.json().get("details") or [{}])[0].get("reason", "")
            self.n.notice(
                f"the token in stack.json was refused ({reason}; dev tokens live an hour): "
                "using the dev-pro key instead. `make up` writes a fresh one."
            )
            headers = self.pro
            r = self.predict(headers, "v2")
        if r.status_code != 200:
            raise DemoFailure(f"v2 infer answered HTTP {r.status_code}: {r.text[:500]}")
        outputs = {o["name"]: o["data"] for o in r.json().get("outputs", [])}
        self.n.block(json.dumps({"model_version": r.json().get("model_version"), "outputs": outputs}))
        self.n.ok(f"both protocols answered by version {answered_by(r)[0]} ({answered_by(r)[1]})")
        self.curl("GET", "/v1/models", self.pro)
        r = self.http.get("/v1/models", headers=self.pro)
        if r.status_code == 200:
            self.n.block(json.dumps(r.json()))
            self.n.notice("the gateway lists what the ModelDeployment says: version, colour, phase")

    def step2_denied(self) -> None:
        self.n.step(2, "Callers the gateway refuses: no credential, a bad token, too many requests")
        r = self.predict({}, "v1")
        self._expect_envelope(r, 401, "no credential")
        r = self.predict({"Authorization": "Bearer not.a.jwt"}, "v1")
        self._expect_envelope(r, 401, "a bad token")
        self.n.say("now the free tier's key, as fast as this client can send, until the limit answers:")
        free = {"X-API-Key": self.s.api_keys["dev-free"]}
        self.curl("POST", "/v1/models/titanic:predict", free, v1_body(PASSENGERS[:1]))
        self.n.command("# ... repeated until HTTP 429")
        admitted, last = 0, None
        end = time.monotonic() + 120
        while time.monotonic() < end and admitted < 5000:
            last = self.http.post("/v1/models/titanic:predict", json=v1_body(PASSENGERS[:1]), headers=free)
            if last.status_code == 429:
                break
            if last.status_code != 200:
                raise DemoFailure(f"dev-free got HTTP {last.status_code} before any 429: {last.text[:300]}")
            admitted += 1
        if last is None or last.status_code != 429:
            raise DemoFailure(f"no 429 after {admitted} requests with the dev-free key")
        self.n.ok(f"{admitted} admitted, then HTTP 429 {last.json().get('error_code')}")
        self.n.block("\n".join(f"{h}: {last.headers[h]}" for h in RATE_HEADERS if h in last.headers))
        self.n.block(json.dumps(last.json()))
        if "retry-after" not in last.headers:
            raise DemoFailure("the 429 has no Retry-After header")
        self.n.notice("Retry-After says when to come back; RateLimit-* and X-Quota-* show the budget left")

    def _expect_envelope(self, r: httpx.Response, status: int, what: str) -> None:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != status or not {"error_code", "message", "request_id"} <= set(body):
            raise DemoFailure(
                f"{what}: expected HTTP {status} in the error envelope, got {r.status_code} {r.text[:300]}"
            )
        self.n.block(json.dumps(body))
        self.n.ok(
            f"{what}: HTTP {status} {body['error_code']} ({(body.get('details') or [{}])[0].get('reason')})"
        )

    def step3_new_version(self) -> tuple[str, str]:
        self.n.step(3, "A new version in the registry, and the alias moved to it")
        spec = self.md().get("spec") or {}
        if not (spec.get("rollout") or {}).get("autoPromote", True):
            self.n.say("autoPromote is off (a previous tour stopped early?): turning it back on")
            self.kubectl_patch({"spec": {"rollout": {"autoPromote": True}}})
        before = self.active_version()
        if before is None:
            raise DemoFailure("no active version to roll out from")
        self.n.say("training the `balanced` pipeline (scaled, class-balanced, stronger regularisation):")
        version = self.register("balanced")
        self.move_alias(version)
        self.n.notice(
            f"nothing in Kubernetes was touched: the operator polls the registry and sees "
            f"{self.s.alias} move from version {before} to {version}"
        )
        return before, version

    def step4_rollout(self, before: str, version: str) -> None:
        self.n.step(4, f"The blue-green rollout from version {before} to {version}, under traffic")
        loop = PredictionLoop(self.s.gateway_url, self.pro, self.n).start()
        started = time.monotonic()
        try:
            self.watch(
                f"version {version} is active and Stable",
                lambda st: (
                    st.get("phase") == "Stable" and (st.get("active") or {}).get("modelVersion") == version
                ),
                900,
            )
            deadline_loop(
                f"predictions answered by version {version}",
                120,
                lambda: any(a.version == version for a in loop.since(started)),
            )
            switched = next(a.at for a in loop.since(started) if a.version == version)
            time.sleep(3)  # a few more answers after the switch, to show they stay on the new version
        finally:
            loop.stop()
        answers = loop.since(started)
        failed = [a for a in answers if a.status != 200]
        back = [a for a in answers if a.at > switched and a.version != version and a.status == 200]
        self.n.say(
            f"{len(answers)} predictions during the rollout: {len(failed)} failed, "
            f"{sum(a.version == before for a in answers)} from version {before}, "
            f"{sum(a.version == version for a in answers)} from version {version}"
        )
        if failed:
            self._soft(f"{len(failed)} predictions failed during the rollout (expected none)")
        if back:
            self._soft(f"{len(back)} answers came from the old version after the switch (expected none)")
        if not failed and not back:
            self.n.ok(f"no failed request; once version {version} answered, it answered every time")
        self.n.notice(
            "the old colour keeps running for scaleDownDelaySeconds: that is what makes a rollback instant"
        )
        self.ferry("status", self.name)

    def step5_rollback(self, before: str, version: str) -> None:
        self.n.step(5, f"Rollback: back to version {before}, at once")
        loop = PredictionLoop(self.s.gateway_url, self.pro, self.n).start()
        started = time.monotonic()
        try:
            self.ferry("rollback", self.name, "--wait")
            self.watch(
                f"version {before} is active again",
                lambda st: (
                    st.get("phase") == "Stable" and (st.get("active") or {}).get("modelVersion") == before
                ),
                600,
            )
            deadline_loop(
                f"predictions answered by version {before} again",
                120,
                lambda: any(a.version == before for a in loop.since(started)),
            )
            time.sleep(2)
        finally:
            loop.stop()
        answers = loop.since(started)
        failed = [a for a in answers if a.status != 200]
        if failed:
            self._soft(f"{len(failed)} predictions failed during the rollback (expected none)")
        else:
            self.n.ok(f"version {before} answers again; {len(answers)} predictions meanwhile, none failed")
        self.n.notice(
            f"the registry still says {self.s.alias} = {version}: Ferry will not roll version {version} "
            "out again until the alias moves or `kubectl ferry retry`"
        )
        self.ferry("history", self.name)

    def step6_abort(self, serving: str) -> str:
        self.n.step(6, "A rollout held for a human, then aborted")
        self.kubectl_patch({"spec": {"rollout": {"autoPromote": False}}})
        self.n.say("training the `baseline` pipeline again for one more version:")
        version = self.register("baseline")
        self.move_alias(version)
        self.watch(
            f"version {version} waits for promotion",
            lambda st: (
                st.get("phase") == "AwaitingPromotion"
                and (st.get("preview") or {}).get("modelVersion") == version
                and bool((st.get("preview") or {}).get("ready"))
            ),
            900,
        )
        r = self.predict(self.pro, "v1")
        if r.status_code != 200 or answered_by(r)[0] != serving:
            raise DemoFailure(
                f"while held, callers should get version {serving}: got {r.status_code} {answered_by(r)}"
            )
        self.n.ok(f"ordinary callers still get version {serving}")
        preview = {**self.pro, "X-Ferry-Preview": "true"}
        r = self.predict(preview, "v1")
        if r.status_code != 200 or answered_by(r)[0] != version:
            raise DemoFailure(
                f"the preview should answer version {version}: got {r.status_code} {r.text[:300]}"
            )
        self.n.ok(
            f"callers with the preview scope and X-Ferry-Preview reach version {version} "
            f"({answered_by(r)[1]})"
        )
        self.ferry("abort", self.name, "--wait")
        st = self.watch(
            "the preview is gone",
            lambda st: _settled(st) and (st.get("active") or {}).get("modelVersion") == serving,
            300,
        )
        r = self.predict(self.pro, "v1", echo=False)
        if r.status_code != 200 or answered_by(r)[0] != serving:
            raise DemoFailure(f"after the abort, callers should get version {serving}: got {answered_by(r)}")
        self.n.ok(f"aborted: version {serving} serves on, version {version} is refused until the alias moves")
        self.n.notice(f"phase {st.get('phase')}: {_ready_message(st)}")
        self.ferry("history", self.name)
        return version

    def step7_tidy(self, serving: str) -> None:
        self.n.step(7, "Tidying up, so the registry and the cluster agree again")
        self.move_alias(serving)
        self.kubectl_patch({"spec": {"rollout": {"autoPromote": True}}})
        st = self.watch(
            f"the operator has seen the alias on version {serving}, which serves",
            lambda st: (
                _settled(st)
                and (st.get("active") or {}).get("modelVersion") == serving
                and (st.get("model") or {}).get("version") == serving
            ),
            300,
        )
        if st.get("phase") != "Stable":
            self.n.notice(
                f"phase {st.get('phase')}: {_ready_message(st)}; it stays so until the next rollout, "
                "a rollback or `kubectl ferry retry`"
            )
        self.ferry("status", self.name)

    def _soft(self, message: str) -> None:
        self.soft_failures.append(message)
        self.n.fail(message)

    def run(self, only: set[int] | None = None) -> int:
        steps_in = only or set(range(8))
        try:
            if 0 in steps_in:
                self.step0_stack()
            if 1 in steps_in:
                self.step1_predict()
            if 2 in steps_in:
                self.step2_denied()
            if steps_in & {3, 4, 5, 6, 7}:
                before, version = self.step3_new_version()
                self.step4_rollout(before, version)
                self.step5_rollback(before, version)
                self.step6_abort(before)
                self.step7_tidy(before)
        except Exception as exc:
            self.n.fail(_explain(exc))
            self.n.out(
                f"\nthe tour stopped there; the components' logs: kubectl --kubeconfig {self.s.kubeconfig} "
                f"-n {self.s.namespace} logs deploy/..."
            )
            return 1
        self.n.out()
        if self.soft_failures:
            self.n.fail(
                f"the tour finished with {len(self.soft_failures)} problem(s): "
                + "; ".join(self.soft_failures)
            )
            return 1
        self.n.out("that was Ferry: `make test` runs every suite; `make down` removes the stack.")
        return 0


def _explain(exc: Exception) -> str:
    """What went wrong, in words: the demo's own failures as they are, the usual outside ones named."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, DemoFailure):
        return str(exc)
    if isinstance(exc, ApiException):
        return f"the Kubernetes API server said {exc.status} {exc.reason}: is the stack up (`make up`)?"
    if isinstance(exc, Urllib3Error | OSError):
        return f"the Kubernetes API server is unreachable ({exc}): is the stack up (`make up`)?"
    if isinstance(exc, httpx.HTTPError):
        return f"the gateway or MLflow did not answer ({exc!r}): is the stack up (`make up`)?"
    import traceback

    traceback.print_exc()
    return f"unexpected error {exc!r}"


def _settled(st: dict[str, Any]) -> bool:
    """The active colour serves and no rollout is in progress: Stable, or Degraded only because the
    last rollout was aborted (the operator's phase for "refused a version, the old one serves on")."""
    active = st.get("active") or {}
    if not active.get("ready") or st.get("preview"):
        return False
    return st.get("phase") == "Stable" or (st.get("phase") == "Degraded" and "aborted" in _ready_message(st))


def _ready_message(st: dict[str, Any]) -> str:
    ready: dict[str, Any] = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    return str(ready.get("message", ""))


def _event_key(e: dict[str, Any]) -> tuple[str, str, str]:
    return (str(e.get("reason")), str(e.get("message")), str(e.get("lastTimestamp") or e.get("eventTime")))


def _phase_line(st: dict[str, Any]) -> str:
    def colour(block: dict[str, Any] | None) -> str:
        if not block:
            return "-"
        ready = "ready" if block.get("ready") else "not ready"
        return f"{block.get('color')} v{block.get('modelVersion')} {ready}"

    phase = st.get("phase", "?")
    return f"phase {phase:<17} active {colour(st.get('active'))}, preview {colour(st.get('preview'))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--stack", type=Path, default=local_dir() / "stack.json", help="default: %(default)s")
    parser.add_argument(
        "--steps",
        default=None,
        help="comma-separated step numbers to run (0-2 stand alone; 3-7 run together), e.g. 1,2",
    )
    args = parser.parse_args(argv)
    narrator = Narrator(colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    try:
        stack = Stack.load(args.stack)
    except ValueError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    only = {int(s) for s in args.steps.split(",")} if args.steps else None
    return Demo(stack, narrator).run(only)


if __name__ == "__main__":
    sys.exit(main())
