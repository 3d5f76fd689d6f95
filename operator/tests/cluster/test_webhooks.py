"""Registry webhooks on the local cluster: a real MLflow server delivers to the real operator.

The operator polls the registry every 10 minutes here, so a rollout that starts within seconds of
an alias move was started by the webhook. Its receiver serves a certificate from a directory, as
from a mounted ``kubernetes.io/tls`` Secret; MLflow trusts the CA that signed it.
Order matters and is the file's: the refusals are shown before any webhook exists in MLflow (so
the registry has moved but only the test's forged deliveries arrive), then MLflow's own deliveries,
then polling alone with the receiver down.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
from ferry_common.contract import GROUP, VERSION
from ferry_devcluster.procs import Server, free_port, wait_for
from ferry_operator import registry_events as ev
from ferry_operator import webhook_tls
from ferry_testing.operator import (
    PLURAL,
    OperatorProcess,
    RegisteredModel,
    core,
    custom,
    get_md,
    kubectl_ferry,
    md_body,
    register_echo,
    wait_phase,
    wait_status,
)
from ferry_testing.servers import mlflow_server
from ferry_testing.webhooks import signed, trusting
from kubernetes import client

SECRET = "cluster-tier-webhook-secret"
POLL_SECONDS = 600  # longer than any deadline below: what happens in time was not the poll
# The deadline for "at once" on a loaded 2-core machine, far below the poll; `make bench-rollout`
# measures how long it really takes.
PROMPT = 60.0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> webhook_tls.Material:
    """tls.crt and tls.key in one directory (as a mounted Secret), and the CA that signed them."""
    return webhook_tls.self_made(["127.0.0.1", "localhost"], None, tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def registry(tls: webhook_tls.Material, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("mlflow-webhooks")
    assert tls.ca_pem is not None
    with mlflow_server(workdir, env=trusting(tls.ca_pem, workdir)) as server:
        yield server


@pytest.fixture(scope="module")
def model(registry: Server) -> RegisteredModel:
    return register_echo(registry.url, "ferry-hooked")


@dataclass
class Hooked:
    proc: OperatorProcess
    url: str  # where MLflow delivers

    def metric(self, series: str) -> float:
        return self.proc.metric(series)


@pytest.fixture(scope="module")
def hooked(
    kubeconfig: str,
    installed: None,
    model: RegisteredModel,
    tls: webhook_tls.Material,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hooked]:
    port = free_port()
    proc = OperatorProcess(
        kubeconfig,
        model.tracking_uri,
        tmp_path_factory.mktemp("op") / "op.log",
        env={
            "FERRY_REGISTRY_POLL_SECONDS": str(POLL_SECONDS),
            "FERRY_WEBHOOK_SECRET": SECRET,
            "FERRY_WEBHOOK_HOST": "127.0.0.1",
            "FERRY_WEBHOOK_PORT": str(port),
            "FERRY_WEBHOOK_TLS_DIR": str(tls.cert_file.parent),
        },
    )
    proc.start()
    yield Hooked(proc, f"https://127.0.0.1:{port}/hooks/mlflow")
    proc.stop()


def follow(api: client.ApiClient, ns: str, name: str, model: RegisteredModel, alias: str) -> None:
    """A ModelDeployment following ``alias`` (on the first version), Stable."""
    move(model, alias, model.versions[0])
    body = md_body(name, {"name": model.name, "alias": alias})
    custom(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    wait_phase(api, ns, name, "Stable")


def rolls_out(api: client.ApiClient, ns: str, name: str, version: str, interval: float = 0.1) -> None:
    """Wait (PROMPT at most) until the operator has begun rolling ``version`` out, or has done so."""

    def begun() -> bool:
        st = get_md(api, ns, name).get("status", {})
        return version in (
            (st.get("preview") or {}).get("modelVersion"),
            (st.get("active") or {}).get("modelVersion"),
        )

    wait_for(f"{name}: rollout to version {version}", begun, PROMPT, interval=interval)


def move(model: RegisteredModel, alias: str, version: str) -> None:
    mlflow.MlflowClient(tracking_uri=model.tracking_uri).set_registered_model_alias(
        model.name, alias, version
    )


def deliver(url: str, ca: bytes, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    context = ssl.create_default_context(cadata=ca.decode())
    return httpx.post(url, content=body, headers=headers or {}, verify=context)


def event(name: str, alias: str, version: str) -> bytes:
    """An alias-created body as MLflow sends it."""
    data = {"name": name, "alias": alias, "version": version}
    return json.dumps({"entity": "model_version_alias", "action": "created", "data": data}).encode()


def test_forged_stale_and_replayed_deliveries_start_nothing(
    api: client.ApiClient, namespace: str, hooked: Hooked, model: RegisteredModel, tls: webhook_tls.Material
) -> None:
    alias = f"a{uuid.uuid4().hex[:8]}"
    follow(api, namespace, "forged", model, alias)
    v2 = model.versions[1]
    # The registry moves; no webhook exists yet, so only the deliveries below reach the operator.
    move(model, alias, v2)
    url, ca = hooked.url, tls.ca_pem or b""
    moved = event(model.name, alias, v2)

    wrong = deliver(url, ca, moved, signed("an-attackers-guess-at-it", moved))
    assert wrong.status_code == 401 and "signature does not match" in wrong.json()["message"]
    unsigned = deliver(url, ca, moved)
    assert unsigned.status_code == 401
    assert unsigned.json()["details"][0]["field"].startswith("header x-mlflow-")
    stale = deliver(url, ca, moved, signed(SECRET, moved, sent_at=time.time() - 3600))
    assert stale.status_code == 401 and "stale" in stale.json()["message"]
    other = event("unrelated", "x", "1")
    once = signed(SECRET, other)
    assert deliver(url, ca, other, once).status_code == 202
    replayed = deliver(url, ca, other, once)
    assert replayed.status_code == 409 and replayed.json()["error_code"] == "CONFLICT"

    # All answered before this line; none re-resolved anything or moved the deployment.
    assert hooked.metric("ferry_operator_webhook_refreshes_total") == 0
    assert hooked.metric('ferry_operator_webhook_deliveries_total{result="unauthenticated"}') == 3
    st = get_md(api, namespace, "forged")["status"]
    assert st["active"]["modelVersion"] == model.versions[0] and st.get("preview") is None

    # One genuine delivery, and the move the registry already holds is rolled out at once.
    genuine = deliver(url, ca, moved, signed(SECRET, moved))
    assert genuine.json() == {"event": ev.ALIAS_CREATED, "deployments": 1}
    rolls_out(api, namespace, "forged", v2)


def test_an_alias_move_in_mlflow_starts_the_rollout_at_once(
    api: client.ApiClient,
    namespace: str,
    hooked: Hooked,
    model: RegisteredModel,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    registered = kubectl_ferry(
        "--kubeconfig", kubeconfig, "webhook", "register", "--mlflow", model.tracking_uri,
        "--url", hooked.url, "--secret-file", str(secret),
    )  # fmt: skip
    assert registered.returncode == 0, registered.stdout + registered.stderr
    alias = f"a{uuid.uuid4().hex[:8]}"
    follow(api, namespace, "moved", model, alias)
    accepted = hooked.metric('ferry_operator_webhook_deliveries_total{result="accepted"}')

    move(model, alias, model.versions[1])
    rolls_out(api, namespace, "moved", model.versions[1])
    assert hooked.metric('ferry_operator_webhook_deliveries_total{result="accepted"}') > accepted
    wait_status(
        api, namespace, "moved", "the move promoted",
        lambda st: st.get("phase") == "Stable" and st["active"]["modelVersion"] == model.versions[1],
    )  # fmt: skip
    events = core(api).list_namespaced_event(namespace, field_selector="involvedObject.name=moved").items
    told = [e.message for e in events if e.reason == "RegistryNotified"]
    assert told and f"{model.name}@{alias} -> version {model.versions[1]}" in told[0], told

    status = kubectl_ferry(
        "--kubeconfig", kubeconfig, "webhook", "status", "--mlflow", model.tracking_uri, "-n", namespace
    )
    assert status.returncode == 0, status.stderr
    assert f"ferry  ACTIVE  {hooked.url}" in status.stdout
    notified = f"{namespace}/moved  MLflow webhook model_version_alias.created: {model.name}@{alias}"
    assert notified in status.stdout


def test_with_the_receiver_down_the_poll_still_catches_the_move(
    api: client.ApiClient,
    namespace: str,
    hooked: Hooked,
    model: RegisteredModel,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    hooked.proc.stop()  # MLflow's deliveries to it now fail (connection refused) and are given up
    polling = OperatorProcess(
        kubeconfig, model.tracking_uri, tmp_path / "op.log", env={"FERRY_REGISTRY_POLL_SECONDS": "5"}
    )
    polling.start()
    try:
        alias = f"a{uuid.uuid4().hex[:8]}"
        follow(api, namespace, "polled", model, alias)
        move(model, alias, model.versions[1])
        rolls_out(api, namespace, "polled", model.versions[1], interval=0.5)
    finally:
        polling.stop()
