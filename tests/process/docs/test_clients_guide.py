"""docs/clients.md, run as a newcomer runs it: every block, as written, against a real gateway
(ferry_testing.gateway, with a wall clock so Retry-After means seconds) on the session's Redis, in
front of a ``ferry-predictor`` serving the registered Titanic champion from the session's MLflow,
with real API keys and an RS256 JWT. The guide's setup reads ``.local/stack.json``, written here as
``make up`` writes it. The 401, 422, 429 and 503 paths are made to happen, and checked in what the
snippet prints and on the gateway's own counters."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import free_port, port_open, wait_for
from ferry_gateway import metrics
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.limits.tiers import parse_limits
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing import browser, gateway_jwt, snippets
from ferry_testing.chart import champion_registered
from ferry_testing.gateway import (
    MD_TITANIC,
    PEPPER,
    FakeClock,
    GatewayServer,
    Keys,
    build_app,
    consumer_index,
)
from ferry_testing.predictor import ready

BIN = Path(sys.executable).parent


class WallClock(FakeClock):
    """The real time: the guide's 429 handling waits Retry-After seconds and must then succeed."""

    def __call__(self) -> float:
        return time.time()


@dataclass
class Deployment:
    gateway: str
    server: GatewayServer
    catalog: ModelCatalog
    keys: Keys
    token: str  # a JWT for consumer "analyst" (tier pro, scope predict)
    cwd: Path  # holds .local/stack.json, as `make up` leaves it

    def key(self, consumer: str) -> str:
        return self.keys.by_consumer[consumer]

    def set_titanic(self, doc: dict[str, Any]) -> None:
        """Change the ModelDeployment status the gateway sees, as its watch would."""
        self.server.on_loop(lambda: self.catalog.update({"titanic": doc}))


CONSUMERS = [
    Consumer("acme", "pro", frozenset({"predict"})),
    # One request per burst and one a second: a snippet's second call in a row meets a 429 (each
    # client's test has its own consumer, so its first call finds a fresh burst).
    Consumer("tiny-kserve", "tiny", frozenset({"predict"})),
    Consumer("tiny-triton", "tiny", frozenset({"predict"})),
    # One every three seconds: a call right after the test spent the burst meets a 429.
    Consumer("slow-curl", "slow", frozenset({"predict"})),
]
LIMITS = parse_limits(
    {
        "tiers": {
            "tiny": {"perMinute": 60, "burst": 1, "perDay": 1000},
            "slow": {"perMinute": 20, "burst": 1, "perDay": 1000},
        }
    }
)


@pytest.fixture(scope="session")
def predictor_url(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Iterator[str]:
    champion_registered(mlflow_uri)
    work = tmp_path_factory.mktemp("guide-predictor")
    port = free_port()
    env = {
        **os.environ,
        "MODEL_URI": "models:/titanic-survival@champion",
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "FERRY_COLOR": "blue",
        "FERRY_MODEL_DIR": str(work / "model"),
    }
    with (work / "predictor.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "ferry-predictor"), "--model_name=titanic", f"--http_port={port}", "--host=127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("ferry-predictor", lambda: proc.poll() is not None or ready(url), timeout=120, interval=0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"ferry-predictor exited:\n{(work / 'predictor.log').read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def deployment(
    redis_url: str, predictor_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    keys = Keys()
    catalog = ModelCatalog()
    catalog.update({"titanic": MD_TITANIC})
    app = build_app(
        redis_url,
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, keys)),
        upstreams=Upstreams({"titanic": predictor_url}),
        jwks=gateway_jwt.JWKS,
        limits=LIMITS,
        clock=WallClock(),
        catalog=catalog,
    )
    server = GatewayServer(app)
    token = gateway_jwt.sign(
        gateway_jwt.claims(sub="analyst", tier="pro", scope="predict", exp=int(time.time()) + 3600)
    )
    cwd = tmp_path_factory.mktemp("guide")
    (cwd / ".local").mkdir()
    stack = {"gateway_url": server.url, "token": token, "api_keys": {"dev-pro": keys.by_consumer["acme"]}}
    (cwd / ".local" / "stack.json").write_text(json.dumps(stack))
    yield Deployment(server.url, server, catalog, keys, token, cwd)
    server.close()


@pytest.fixture(scope="module")
def fail_closed_gateway(predictor_url: str, deployment: Deployment) -> Iterator[str]:
    """A gateway refusing rather than admitting without its limiter (FERRY_RATE_LIMIT_FAILURE_MODE
    closed, as in prod), whose Redis is gone: every prediction is a 503 SERVICE_UNAVAILABLE. Same
    consumers and keys as ``deployment``."""
    app = build_app(
        f"redis://127.0.0.1:{free_port()}/0",
        registry=ConsumerRegistry(PEPPER, consumer_index(CONSUMERS, deployment.keys)),
        upstreams=Upstreams({"titanic": predictor_url}),
        limits=LIMITS,
        clock=WallClock(),
        fail_open=False,
    )
    server = GatewayServer(app)
    yield server.url
    server.close()


@pytest.fixture(scope="module")
def dev_gateway(
    redis_url: str, predictor_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``ferry-gateway --dev`` in front of the same predictor, as the browser meets it: the
    consts a page would hold (GATEWAY, API_KEY, TOKEN): dev-free's key, on a free tier of one
    request every five seconds (so a page's second call meets a 429 with a Retry-After above
    the snippet's fallback of 1), and a dev-pro JWT."""
    from ferry_gateway.consumers.registry import DEV_KEYS

    work = tmp_path_factory.mktemp("guide-dev-gateway")
    limits = work / "limits.json"
    limits.write_text(json.dumps({"tiers": {"free": {"perMinute": 12, "burst": 1, "perDay": 1000}}}))
    env = {**os.environ, "REDIS_URL": redis_url, "FERRY_DEV_DIR": str(work / "dev")}
    port = free_port()
    with (work / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "ferry-gateway"),
                "--dev",
                "--port",
                str(port),
                "--upstream",
                f"titanic={predictor_url}",
                "--limits",
                str(limits),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("ferry-gateway --dev", lambda: proc.poll() is None and port_open(port), timeout=30)
        token = subprocess.run(
            [str(BIN / "ferry"), "token", "--consumer", "dev-pro"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        yield {"GATEWAY": f"http://127.0.0.1:{port}", "API_KEY": DEV_KEYS["dev-free"], "TOKEN": token}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """An empty page on another origin than the gateway's (localhost, not 127.0.0.1, and its own port)."""
    import http.server

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>a page on another origin</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()


GUIDE = snippets.claim(
    "docs/clients.md",
    "setup",
    "curl-predict",
    "curl-errors",
    "curl-retry",
    "curl-health",
    "kserve-infer",
    "kserve-errors",
    "kserve-health",
    "triton-infer-json",
    "triton-infer-binary",
    "triton-errors",
    "triton-health",
    "fetch-predict",
)
# The bodies the READMEs' quick starts send, through this gateway to the real model (the quick
# starts themselves run in namespaces of their own: test_quick_starts.py).
QUICK_START = snippets.claim("gateway/README.md", "quick-start")
TRY_IT = snippets.claim("README.md", "try-it")
PASSENGER = {"pclass": 3, "sex": "male", "age": 22, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"}
# What the operator's status says while a ModelDeployment's first colour is still coming up.
DEPLOYING = {"metadata": {"name": "titanic"}, "status": {"phase": "Deploying"}}


@pytest.fixture(scope="module")
def env(deployment: Deployment) -> dict[str, str]:
    """What the guide's setup block leaves in the shell, run where `make up` wrote stack.json."""
    exported = GUIDE.exports("setup", cwd=deployment.cwd)
    return {k: exported[k] for k in ("GATEWAY", "API_KEY", "TOKEN")}


def served(consumer: str, status: int) -> float:
    """Requests the gateway answered with this status for this consumer, so far (any model label:
    a 503 from routing is counted before the model is)."""
    total = 0.0
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            if sample.name == metrics.REQUESTS_NAME and sample.labels.get("consumer") == consumer:
                total += sample.value if sample.labels.get("status") == str(status) else 0.0
    return total


@contextmanager
def until_refused(consumer: str, status: int) -> Iterator[None]:
    """Yields at once; on leaving, waits until the gateway has refused ``consumer`` with ``status``
    once more than when it entered."""
    before = served(consumer, status)
    yield
    wait_for(f"a {status} for {consumer}", lambda: served(consumer, status) > before, timeout=60)


@contextmanager
def deploying(deployment: Deployment, consumer: str) -> Iterator[None]:
    """The model is not serving (its ModelDeployment's first colour is coming up: 503
    MODEL_NOT_READY, Retry-After 5) until the gateway has refused ``consumer`` once; then it is."""
    deployment.set_titanic(DEPLOYING)

    def ready_again() -> None:
        with until_refused(consumer, 503):
            pass
        deployment.set_titanic(MD_TITANIC)

    try:
        with _in_thread(ready_again):
            yield
    finally:
        deployment.set_titanic(MD_TITANIC)


@contextmanager
def _in_thread(fn: Any) -> Iterator[None]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    thread.join(timeout=70)
    if errors:
        raise errors[0]


def as_consumer(env: dict[str, str], deployment: Deployment, consumer: str) -> dict[str, str]:
    return {**env, "API_KEY": deployment.key(consumer)}


# ---- setup and curl ---------------------------------------------------------------------------


def test_setup_reads_what_make_up_wrote(env: dict[str, str], deployment: Deployment) -> None:
    assert env == {
        "GATEWAY": deployment.gateway,
        "API_KEY": deployment.key("acme"),
        "TOKEN": deployment.token,
    }


def test_curl_predicts_with_an_api_key_and_a_jwt(env: dict[str, str]) -> None:
    v1, v2 = snippets.json_docs(GUIDE.bash("curl-predict", env).stdout)
    assert v1["predictions"] == [0] and v1["model_name"] == "titanic"
    assert v2["outputs"][0]["name"] == "predictions" and v2["outputs"][0]["data"] == [1]


def test_curl_errors_print_what_the_guide_says(env: dict[str, str]) -> None:
    block = GUIDE.block("curl-errors").code
    promised = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    assert GUIDE.bash("curl-errors", env).stdout.splitlines() == promised


def test_curl_retry_waits_out_a_429(env: dict[str, str], deployment: Deployment) -> None:
    spent = httpx.post(
        f"{deployment.gateway}/v1/models/titanic:predict",
        json={"instances": [PASSENGER]},
        headers={"X-API-Key": deployment.key("slow-curl")},
        timeout=10,
    )
    assert spent.status_code == 200
    with until_refused("slow-curl", 429):  # fails unless curl really met the 429
        out = GUIDE.bash("curl-retry", as_consumer(env, deployment, "slow-curl")).stdout
    assert json.loads(out)["predictions"] == [1]


def test_curl_retry_waits_out_a_503_while_the_model_deploys(
    env: dict[str, str], deployment: Deployment
) -> None:
    with deploying(deployment, "acme"):  # fails unless the snippet really met a 503
        out = GUIDE.bash("curl-retry", env).stdout
    assert json.loads(out)["predictions"] == [1]


def test_curl_health_needs_no_credential_and_models_do(env: dict[str, str]) -> None:
    lines = GUIDE.bash("curl-health", env).stdout.splitlines()
    assert json.loads(lines[0]) == {"ready": True}
    assert lines[1] == "[+]redis ok" and lines[-3] == "readyz check passed", lines
    assert json.loads(lines[-2]) == {"name": "titanic", "ready": True}
    assert json.loads(lines[-1]) == ["pclass", "sex", "age", "sibsp", "parch", "fare", "embarked"]


# ---- kserve ------------------------------------------------------------------------------------


def test_kserve_infers_over_v1_and_v2_with_both_credentials(env: dict[str, str]) -> None:
    out = GUIDE.python("kserve-infer", env).stdout.splitlines()
    assert out == ["v1 [1]", "v1 [1]", "v2 [1]", "v2 [1]"]


def test_kserve_errors_wait_out_a_429_and_name_bad_fields(
    env: dict[str, str], deployment: Deployment
) -> None:
    out = GUIDE.python("kserve-errors", as_consumer(env, deployment, "tiny-kserve")).stdout.splitlines()
    # the second call follows the first at once, so it meets the limit
    assert out == [
        "[0]",
        "429 RATE_LIMITED: retrying in 1s",
        "422 instances[0].pclass: must be one of [1, 2, 3], got 4",
        "[]",
    ]


def test_kserve_errors_stop_on_a_401(env: dict[str, str]) -> None:
    ran = GUIDE.python("kserve-errors", {**env, "API_KEY": "fry_not_a_key"}, check=False)
    assert ran.returncode == 1 and "401 invalid_api_key: check API_KEY or TOKEN" in ran.stderr


def test_kserve_errors_wait_out_a_503(env: dict[str, str], deployment: Deployment) -> None:
    with deploying(deployment, "acme"):
        out = GUIDE.python("kserve-errors", env).stdout.splitlines()
    assert out[:2] == ["503 MODEL_NOT_READY: retrying in 5s", "[0]"]


def test_kserve_errors_give_up_when_the_limiter_stays_unavailable(
    env: dict[str, str], fail_closed_gateway: str
) -> None:
    gone = {**env, "GATEWAY": fail_closed_gateway}
    ran = GUIDE.python("kserve-errors", gone, check=False, timeout=60)
    assert ran.returncode == 1 and "still refused after 5 attempts" in ran.stderr
    assert ran.stdout.splitlines()[0].startswith("503 SERVICE_UNAVAILABLE: retrying in ")


def test_kserve_health(env: dict[str, str], deployment: Deployment) -> None:
    out = GUIDE.python("kserve-health", env).stdout.splitlines()
    assert out == [
        "v1 live True",
        "v1 model ready True",
        "v2 live True",
        "v2 ready True",
        "v2 model ready True",
    ]
    deployment.set_titanic(DEPLOYING)
    try:
        out = GUIDE.python("kserve-health", env).stdout.splitlines()
    finally:
        deployment.set_titanic(MD_TITANIC)
    assert "v1 model ready False" in out and "v2 model ready False" in out


# ---- tritonclient ------------------------------------------------------------------------------


def test_triton_infers_as_json_with_both_credentials(env: dict[str, str]) -> None:
    assert GUIDE.python("triton-infer-json", env).stdout.splitlines() == ["[1]", "[1]"]


def test_triton_infers_with_binary_tensors(env: dict[str, str]) -> None:
    assert GUIDE.python("triton-infer-binary", env).stdout.splitlines() == ["[0] (1, 2)", "[0] (1, 2)"]


def test_triton_errors_wait_out_a_429_and_name_bad_fields(
    env: dict[str, str], deployment: Deployment
) -> None:
    out = GUIDE.python("triton-errors", as_consumer(env, deployment, "tiny-triton")).stdout.splitlines()
    assert out == [
        "[0]",
        "429 RATE_LIMITED: retrying in 1s",
        "422 inputs[1](sex).data[0]: must be one of ['male', 'female'], got 'cat'",
    ]


def test_triton_errors_stop_on_a_401(env: dict[str, str]) -> None:
    ran = GUIDE.python("triton-errors", {**env, "API_KEY": "fry_not_a_key"}, check=False)
    assert ran.returncode == 1 and "401 the API key is not known" in ran.stderr


def test_triton_health_and_metadata(env: dict[str, str]) -> None:
    out = GUIDE.python("triton-health", env).stdout.splitlines()
    assert out[:2] == ["live True ready True", "model ready True"]
    assert out[2].startswith("[('pclass', 'INT64'), ('sex', 'BYTES')")


# ---- fetch from a page on another origin -----------------------------------------------------


def test_fetch_from_another_origin(dev_gateway: dict[str, str], page_origin: str) -> None:
    # The page is on another origin, so every call is preflighted; the
    # gateway is `ferry-gateway --dev`, which allows http://localhost:* as the chart's dev values do.
    with browser.chromium() as driver:
        driver.get(page_origin)
        logs = run_fetch(driver, dev_gateway)
    check_fetch_logs(logs)


def test_fetch_snippet_on_the_gateways_own_origin(dev_gateway: dict[str, str]) -> None:
    # The same block from a page the gateway itself serves (no CORS involved): the snippet's own
    # handling (both credentials, the 429 wait, the 422 details) is checked before CORS lands.
    with browser.chromium() as driver:
        driver.get(f"{dev_gateway['GATEWAY']}/healthz")
        logs = run_fetch(driver, dev_gateway)
    check_fetch_logs(logs)


def run_fetch(driver: Any, consts: dict[str, str]) -> list[str]:
    """The fetch block, right after dev-free's one request in five seconds was spent."""
    httpx.post(
        f"{consts['GATEWAY']}/v1/models/titanic:predict",
        json={"instances": [PASSENGER]},
        headers={"X-API-Key": consts["API_KEY"]},
        timeout=10,
    )
    return GUIDE.browser("fetch-predict", driver, consts, timeout=60)


def check_fetch_logs(logs: list[str]) -> None:
    assert logs[0] == "[1]"  # the JWT
    # the API key meets the 429, and waits what Retry-After says (readable: the gateway exposes it)
    assert (
        logs[1].startswith("429 RATE_LIMITED: retrying in ") and logs[1] != "429 RATE_LIMITED: retrying in 1s"
    )
    assert logs[2:] == ["[1]", "422 instances[0].pclass: must be one of [1, 2, 3], got 4", "null"]


# ---- the READMEs' curl bodies --------------------------------------------------------------------


def curl_posts(block: str) -> list[tuple[str, str]]:
    """(path, body) of every curl line in a shell block that sends a body with -d."""
    posts = []
    for command in block.replace("\\\n", " ").splitlines():
        words = shlex.split(command.split(" # ", 1)[0]) if "curl" in command else []
        if "-d" in words:
            url = next(w for w in words if "/models/" in w)
            posts.append((url[url.index("/v") :], words[words.index("-d") + 1]))
    return posts


@pytest.mark.parametrize("readme", ["gateway", "root"])
def test_readme_quick_start_bodies_predict(readme: str, deployment: Deployment) -> None:
    block = QUICK_START.text("quick-start") if readme == "gateway" else TRY_IT.text("try-it")
    posts = curl_posts(block)
    assert posts, "the quick start sends no body"
    for path, body in posts:
        resp = httpx.post(
            deployment.gateway + path, content=body, headers={"X-API-Key": deployment.key("acme")}, timeout=10
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["predictions"] == [0]
