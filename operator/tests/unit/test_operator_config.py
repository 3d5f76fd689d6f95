"""The operator's one configuration table: defaults, validation before kopf starts, ``--help``,
and the JSON log lines (kopf's own included)."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import kopf
import pytest
from ferry_common import logs
from ferry_common.envconfig import ConfigError
from ferry_operator import __main__ as op_main
from ferry_operator import app, config, logsetup
from ferry_operator.builders import PredictorSettings
from ferry_operator.config import OperatorConfig
from ferry_operator.registry import RegistryConfig

PACKAGE = Path(op_main.__file__).parent


def test_the_table_defaults_are_the_dataclass_defaults() -> None:
    uri = "http://127.0.0.1:5000"
    assert config.load({}) == OperatorConfig(RegistryConfig(uri), PredictorSettings(uri))


def test_every_variable_is_read_into_the_config() -> None:
    env = {
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLFLOW_TRACKING_TOKEN": "t",
        "FERRY_REGISTRY_POLL_SECONDS": "2",
        "FERRY_PREDICTOR_TRACKING_URI": "http://mlflow.ml:5000",
        "FERRY_SMOKE_TESTER": "ferry_testing.smoke:factory",
        "FERRY_METRICS_PORT": "0",
        "FERRY_WATCH_SERVER_TIMEOUT": "20",
        "FERRY_PEERING_PRIORITY": "-1",
        "FERRY_API_THREADS": "4",
        "KUBECONFIG": "/k",
    }
    c = config.load(env)
    assert (c.registry.tracking_uri, c.registry.token, c.predictor.tracking_uri) == (
        "http://mlflow:5000",
        "t",
        "http://mlflow.ml:5000",
    )
    assert (c.poll_seconds, c.smoke_tester, c.metrics_port) == (2.0, "ferry_testing.smoke:factory", 0)
    assert (c.watch_server_timeout, c.peering_priority, c.api_threads, c.kubeconfig) == (20, -1, 4, "/k")


def test_help_lists_every_variable_of_the_table() -> None:
    text = op_main.parser().format_help()
    for var in config.TABLE:
        assert var.name in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FERRY_REGISTRY_POLL_SECONDS", "0"),
        ("FERRY_REGISTRY_TIMEOUT_SECONDS", "soon"),
        ("FERRY_METRICS_PORT", "70000"),
        ("FERRY_API_THREADS", "0"),
        ("FERRY_WATCH_SERVER_TIMEOUT", "-5"),
        ("FERRY_PEERING_PRIORITY", "high"),
        ("FERRY_SMOKE_TESTER", "nonsense"),
        ("FERRY_WEBHOOK_SECRET", "short"),
        ("FERRY_WEBHOOK_PORT", "99999"),
        ("FERRY_WEBHOOK_MAX_AGE_SECONDS", "0"),
        ("FERRY_WEBHOOK_CERT_HOSTS", " , "),
    ],
)
def test_a_bad_value_stops_before_kopf_starts_and_names_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    started: list[Any] = []
    monkeypatch.setattr(kopf, "run", lambda **kw: started.append(kw))
    with pytest.raises(SystemExit) as exit_:
        op_main.main(["--standalone"])
    assert exit_.value.code == 2 and name in capsys.readouterr().err
    assert started == []


def test_the_loaded_config_reaches_the_handlers_through_kopfs_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_REGISTRY_POLL_SECONDS", "7")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(logsetup, "configure", lambda verbose: None)
    assert op_main.main(["--standalone"]) == 0
    memo = seen["memo"]
    assert isinstance(memo, app.Memo) and memo.config.poll_seconds == 7.0 and memo.parts is None


def test_the_environment_is_read_only_in_config() -> None:
    readers = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\.get")
    found = [
        p.name
        for p in sorted(PACKAGE.glob("*.py"))
        if p.name != "config.py" and readers.search(p.read_text())
    ]
    assert found == []


def test_log_lines_are_json_with_the_component_and_the_model() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logsetup.configure(verbose=False)
        stream = io.StringIO()
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        with logs.bind(namespace="ml", model="titanic"):
            logging.getLogger("ferry.reconcile").info("phase Stable")
        ref = {"kind": "ModelDeployment", "name": "iris", "namespace": "dev"}
        logging.getLogger("kopf.objects").info("Handler succeeded.", extra={"k8s_ref": ref})
        ours, kopfs = (json.loads(line) for line in stream.getvalue().splitlines())
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("kopf.objects").filters.clear()
        logging.getLogger("asyncio").disabled = False
    assert (ours["component"], ours["model"], ours["namespace"], ours["msg"]) == (
        "operator",
        "titanic",
        "ml",
        "phase Stable",
    )
    assert (kopfs["component"], kopfs["model"], kopfs["namespace"]) == ("operator", "iris", "dev")


def test_no_webhook_secret_means_no_receiver_and_polling_only() -> None:
    assert config.load({}).webhook is None


def test_the_webhook_settings_are_read_and_the_secret_never_printed() -> None:
    secret = "0123456789abcdef-secret"
    c = config.load(
        {
            "FERRY_WEBHOOK_SECRET": secret,
            "FERRY_WEBHOOK_HOST": "127.0.0.1",
            "FERRY_WEBHOOK_PORT": "9443",
            "FERRY_WEBHOOK_TLS_DIR": "/tls",
            "FERRY_WEBHOOK_CERT_HOSTS": "ferry-operator.ferry.svc, localhost",
            "FERRY_WEBHOOK_CA_FILE": "/out/ca.pem",
            "FERRY_WEBHOOK_MAX_AGE_SECONDS": "60",
        }
    )
    hook = c.webhook
    assert hook is not None
    assert (hook.secret, hook.host, hook.port, hook.tls_dir, hook.ca_file, hook.max_age_seconds) == (
        secret, "127.0.0.1", 9443, Path("/tls"), Path("/out/ca.pem"), 60.0,
    )  # fmt: skip
    assert hook.cert_hosts == ("ferry-operator.ferry.svc", "localhost")
    assert secret not in repr(c) and secret not in str(hook)


def test_a_short_webhook_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as err:
        config.load({"FERRY_WEBHOOK_SECRET": "tiny-secret"})
    assert err.value.name == "FERRY_WEBHOOK_SECRET" and "tiny-secret" not in str(err.value)
    assert "at least 16 characters" in str(err.value)
