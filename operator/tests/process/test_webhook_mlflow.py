"""A real MLflow server delivers registry webhooks to the operator's real HTTPS receiver.

The receiver runs as the operator runs it (``app.webhook_server``: a self-made CA and certificate
for 127.0.0.1, the CA written to a file); MLflow is told to trust that CA the way an administrator
would (``ferry_testing.webhooks``), and the webhook is created with MLflow's own client.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import Server, wait_for
from ferry_operator import app
from ferry_operator import registry_events as ev
from ferry_operator.config import WebhookConfig
from ferry_testing.gateway import LoopThread
from ferry_testing.operator import kubectl_ferry
from ferry_testing.servers import mlflow_server
from ferry_testing.webhooks import trusting
from mlflow import MlflowClient

SECRET = "the-operators-webhook-secret"
EVENTS = list(ev.EVENTS)


class Running:
    """The receiver on its own event loop thread; what it acted on, in order."""

    def __init__(self, ca_file: Path) -> None:
        self.ca_file = ca_file
        self.events: list[ev.RegistryEvent] = []
        config = WebhookConfig(secret=SECRET, host="127.0.0.1", port=0, ca_file=ca_file)
        self.server = app.webhook_server(config, self._on_event)
        self.loop = LoopThread()
        self.loop.run(self.server.start())
        self.url = f"https://127.0.0.1:{self.server.port}/hooks/mlflow"

    def _on_event(self, event: ev.RegistryEvent) -> list[ev.Key]:
        self.events.append(event)
        return []

    def stop(self) -> None:
        self.loop.run(self.server.stop())
        self.loop.stop()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("webhook") / "webhook-ca.pem")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mlflow(receiver: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("mlflow-webhooks")
    with mlflow_server(workdir, env=trusting(receiver.ca_file.read_bytes(), workdir)) as server:
        yield server


def model_with_versions(client: MlflowClient, name: str, count: int) -> list[str]:
    client.create_registered_model(name)
    return [
        client.create_model_version(name, source=f"s3://ferry-test/{name}/{i}").version for i in range(count)
    ]


def test_the_signature_is_mlflows() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = '{"entity": "model_version_alias"}'
    assert ev.sign(SECRET, "id-1", "1780000000", body.encode()) == _generate_hmac_signature(
        SECRET, "id-1", "1780000000", body
    )


def test_an_alias_move_in_mlflow_reaches_the_receiver_verified(receiver: Running, mlflow: Server) -> None:
    client = MlflowClient(tracking_uri=mlflow.url)
    v1, v2 = model_with_versions(client, "webhook-moved", 2)
    client.create_webhook("ferry", receiver.url, EVENTS, secret=SECRET)
    client.set_registered_model_alias("webhook-moved", "champion", v1)
    client.set_registered_model_alias("webhook-moved", "champion", v2)  # reassigned: created again
    client.delete_registered_model_alias("webhook-moved", "champion")

    def seen() -> list[tuple[str, str | None, str | None]]:
        return [(e.kind, e.alias, e.version) for e in receiver.events if e.model == "webhook-moved"]

    wanted = [
        (ev.ALIAS_CREATED, "champion", v1),
        (ev.ALIAS_CREATED, "champion", v2),
        (ev.ALIAS_DELETED, "champion", None),
    ]
    wait_for("MLflow's three alias deliveries", lambda: sorted(seen()) == sorted(wanted), timeout=60)


def test_mlflows_test_delivery_is_accepted_and_a_wrong_secret_is_refused(
    receiver: Running, mlflow: Server
) -> None:
    client = MlflowClient(tracking_uri=mlflow.url)
    good = client.create_webhook("ferry-test", receiver.url, [ev.ALIAS_CREATED], secret=SECRET)
    result = client.test_webhook(good.webhook_id)
    assert result.success and result.response_status == 202, result

    bad = client.create_webhook(
        "not-ferry", receiver.url, [ev.ALIAS_CREATED], secret="some-other-secret-entirely"
    )
    refused = client.test_webhook(bad.webhook_id)
    assert refused.response_status == 401 and not refused.success
    body: dict[str, Any] = json.loads(refused.response_body or "{}")
    assert body["error_code"] == "UNAUTHENTICATED" and "signature does not match" in body["message"]

    unsigned = client.create_webhook("unsigned", receiver.url, [ev.ALIAS_CREATED])
    assert client.test_webhook(unsigned.webhook_id).response_status == 401


def test_the_endpoint_answers_the_envelope_to_anything_else(receiver: Running) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=receiver.ca_file)) as http:
        assert http.get(receiver.url).status_code == 405
        missing = http.post(receiver.url.replace("/hooks/mlflow", "/other"), content=b"{}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"
        huge = http.post(receiver.url, content=b"x" * (ev.MAX_BODY_BYTES + 1))
        assert huge.status_code == 413 and huge.json()["error_code"] == "PAYLOAD_TOO_LARGE"


def test_the_plugin_registers_the_webhook_and_mlflow_test_delivers_to_it(
    receiver: Running, mlflow: Server, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    args = ["webhook", "register", "--mlflow", mlflow.url, "--url", receiver.url, "--name", "by-plugin"]
    first = kubectl_ferry(*args, "--secret-file", str(secret))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "created MLflow webhook 'by-plugin'" in first.stdout and "test delivery: 202" in first.stdout
    again = kubectl_ferry(*args, "--secret-file", "-", stdin=SECRET)  # the same name: brought up to date
    assert again.returncode == 0 and "updated MLflow webhook 'by-plugin'" in again.stdout
    hooks = [w for w in MlflowClient(tracking_uri=mlflow.url).list_webhooks() if w.name == "by-plugin"]
    assert len(hooks) == 1 and sorted(str(e) for e in hooks[0].events) == sorted(EVENTS)


def test_the_plugin_says_why_mlflow_cannot_deliver(receiver: Running, mlflow: Server, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-operators-secret-at-all")
    args = ["webhook", "register", "--mlflow", mlflow.url, "--url", receiver.url, "--name", "wrong"]
    result = kubectl_ferry(*args, "--secret-file", str(wrong))
    assert result.returncode == 1 and "test delivery failed (401)" in result.stdout
    assert "hint: the secret differs from the operator's FERRY_WEBHOOK_SECRET" in result.stdout
    assert "not-the-operators-secret-at-all" not in result.stdout + result.stderr

    short = tmp_path / "short"
    short.write_text("tiny")
    refused = kubectl_ferry(*args, "--secret-file", str(short))
    assert refused.returncode == 2 and "at least 16 characters" in refused.stderr
    missing = kubectl_ferry("webhook", "register", "--mlflow", mlflow.url)
    assert missing.returncode == 2 and "needs --url and --secret-file" in missing.stderr
    down = kubectl_ferry(*args, "--secret-file", str(wrong), "--mlflow", "http://127.0.0.1:9")
    assert down.returncode == 4 and "cannot reach MLflow" in down.stderr
