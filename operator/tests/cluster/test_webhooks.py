"""Registry webhooks on the local cluster: a real MLflow server delivers to the real operator.

The operator polls the registry every 10 minutes here, so a rollout that starts within seconds of
an alias move was started by the webhook. Its receiver serves a certificate from a directory, as
from a mounted ``kubernetes.io/tls`` Secret; MLflow trusts the CA that signed it.
Order matters and is the file's: the refusals are shown before any webhook exists in MLflow (so
the registry has moved but only the test's forged deliveries arrive), then MLflow's own deliveries,
then polling alone with the receiver down.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    md_body,
    register_echo,
    wait_phase,
    wait_status,
)
from ferry_testing.servers import mlflow_server
from ferry_testing.webhooks import trusting
from kubernetes import client

SECRET = "cluster-tier-webhook-secret"
POLL_SECONDS = 600  # longer than any deadline below: what happens in time was not the poll
PROMPT = 60.0  # the deadline for "at once" on a loaded 2-core machine; the figure is printed
EVENTS = [ev.ALIAS_CREATED, ev.ALIAS_DELETED, ev.VERSION_CREATED]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """tls.crt and tls.key in a directory (as a mounted Secret), and the CA that signed them."""
    where = tmp_path_factory.mktemp("webhook-tls")
    ca, cert, key = webhook_tls.generate(["127.0.0.1", "localhost"])
    (where / "tls.crt").write_bytes(cert)
    (where / "tls.key").write_bytes(key)
    return where, ca


@pytest.fixture(scope="module")
def registry(tls: tuple[Path, bytes], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("mlflow-webhooks")
    with mlflow_server(workdir, env=trusting(tls[1], workdir)) as server:
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
    tls: tuple[Path, bytes],
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
            "FERRY_WEBHOOK_TLS_DIR": str(tls[0]),
        },
    )
    proc.start()
    yield Hooked(proc, f"https://127.0.0.1:{port}/hooks/mlflow")
    proc.stop()


def follow(api: client.ApiClient, ns: str, name: str, model: RegisteredModel, alias: str) -> None:
    """A ModelDeployment following ``alias`` (on the first version), Stable."""
    mlflow.MlflowClient(tracking_uri=model.tracking_uri).set_registered_model_alias(
        model.name, alias, model.versions[0]
    )
    body = md_body(name, {"name": model.name, "alias": alias})
    custom(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    wait_phase(api, ns, name, "Stable")


def rollout_to(api: client.ApiClient, ns: str, name: str, version: str) -> bool:
    st = get_md(api, ns, name).get("status", {})
    return version in (
        (st.get("preview") or {}).get("modelVersion"),
        (st.get("active") or {}).get("modelVersion"),
    )


def deliver(url: str, ca: bytes, body: dict[str, Any], **headers: str) -> httpx.Response:
    context = ssl.create_default_context(cadata=ca.decode())
    return httpx.post(
        url, content=httpx.Request("POST", url, json=body).content, headers=headers, verify=context
    )


def signed(body: dict[str, Any], *, sent_at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    content = httpx.Request("POST", "https://x", json=body).content
    did, ts = str(uuid.uuid4()), str(int(time.time() if sent_at is None else sent_at))
    return {
        "X-MLflow-Delivery-Id": did,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": ev.sign(secret, did, ts, content),
    }


def test_forged_stale_and_replayed_deliveries_start_nothing(
    api: client.ApiClient, namespace: str, hooked: Hooked, model: RegisteredModel, tls: tuple[Path, bytes]
) -> None:
    alias = f"a{uuid.uuid4().hex[:8]}"
    follow(api, namespace, "forged", model, alias)
    v2 = model.versions[1]
    # The registry moves; no webhook exists yet, so only the deliveries below reach the operator.
    mlflow.MlflowClient(tracking_uri=model.tracking_uri).set_registered_model_alias(model.name, alias, v2)
    url, ca = hooked.url, tls[1]
    event = {
        "entity": "model_version_alias",
        "action": "created",
        "data": {"name": model.name, "alias": alias, "version": v2},
    }

    wrong = deliver(url, ca, event, **signed(event, secret="an-attackers-guess-at-it"))
    assert wrong.status_code == 401 and "signature does not match" in wrong.json()["message"]
    unsigned = deliver(url, ca, event)
    assert unsigned.status_code == 401 and unsigned.json()["details"][0]["field"].startswith(
        "header x-mlflow-"
    )
    stale = deliver(url, ca, event, **signed(event, sent_at=time.time() - 3600))
    assert stale.status_code == 401 and "stale" in stale.json()["message"]
    other = {
        "entity": "model_version_alias",
        "action": "created",
        "data": {"name": "unrelated", "alias": "x", "version": "1"},
    }
    once = signed(other)
    assert deliver(url, ca, other, **once).status_code == 202
    replayed = deliver(url, ca, other, **once)
    assert replayed.status_code == 409 and replayed.json()["error_code"] == "CONFLICT"

    # All answered before this line; none re-resolved anything or moved the deployment.
    assert hooked.metric("ferry_operator_webhook_refreshes_total") == 0
    assert hooked.metric('ferry_operator_webhook_deliveries_total{result="unauthenticated"}') == 3
    st = get_md(api, namespace, "forged")["status"]
    assert st["active"]["modelVersion"] == model.versions[0] and st.get("preview") is None

    # One genuine delivery, and the move the registry already holds is rolled out at once.
    t0 = time.monotonic()
    assert deliver(url, ca, event, **signed(event)).json() == {"event": ev.ALIAS_CREATED, "deployments": 1}
    wait_for(
        "rollout to the moved alias", lambda: rollout_to(api, namespace, "forged", v2), PROMPT, interval=0.1
    )
    took = time.monotonic() - t0
    print(f"\n[webhooks] signed delivery -> rollout started: {took:.2f} s (poll {POLL_SECONDS} s)")


def plugin(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "kubectl-ferry"
    return subprocess.run(
        [str(exe), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=120
    )


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
    registered = plugin(
        kubeconfig, "webhook", "register", "--mlflow", model.tracking_uri, "--url", hooked.url,
        "--secret-file", str(secret),
    )  # fmt: skip
    assert registered.returncode == 0, registered.stdout + registered.stderr
    alias = f"a{uuid.uuid4().hex[:8]}"
    follow(api, namespace, "moved", model, alias)
    accepted = hooked.metric('ferry_operator_webhook_deliveries_total{result="accepted"}')

    t0 = time.monotonic()
    mlflow.MlflowClient(tracking_uri=model.tracking_uri).set_registered_model_alias(
        model.name, alias, model.versions[1]
    )
    wait_for(
        "rollout to the moved alias",
        lambda: rollout_to(api, namespace, "moved", model.versions[1]),
        PROMPT,
        interval=0.1,
    )
    took = time.monotonic() - t0
    assert hooked.metric('ferry_operator_webhook_deliveries_total{result="accepted"}') > accepted
    wait_status(
        api, namespace, "moved", "the move promoted",
        lambda st: st.get("phase") == "Stable" and st["active"]["modelVersion"] == model.versions[1],
    )  # fmt: skip
    print(f"\n[webhooks] MLflow alias move -> rollout started: {took:.2f} s (poll {POLL_SECONDS} s)")
    events = core(api).list_namespaced_event(namespace, field_selector="involvedObject.name=moved").items
    told = [e.message for e in events if e.reason == "RegistryNotified"]
    assert told and f"{model.name}@{alias} -> version {model.versions[1]}" in told[0], told

    status = plugin(kubeconfig, "webhook", "status", "--mlflow", model.tracking_uri, "-n", namespace)
    assert status.returncode == 0, status.stderr
    assert f"ferry  ACTIVE  {hooked.url}" in status.stdout
    assert (
        f"{namespace}/moved  MLflow webhook model_version_alias.created: {model.name}@{alias}"
        in status.stdout
    )


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
        mlflow.MlflowClient(tracking_uri=model.tracking_uri).set_registered_model_alias(
            model.name, alias, model.versions[1]
        )
        wait_for(
            "the poll's rollout",
            lambda: rollout_to(api, namespace, "polled", model.versions[1]),
            PROMPT,
            interval=0.5,
        )
    finally:
        polling.stop()
