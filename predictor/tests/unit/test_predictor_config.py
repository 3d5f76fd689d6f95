"""The predictor's one config module: flags and environment read once, validated before serving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ferry_common.contract import PredictorEnv
from ferry_common.envconfig import ConfigError
from ferry_predictor import __main__ as entry
from ferry_predictor.config import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BODY_BYTES, ENV, load, parser

SRC = Path(entry.__file__).parent
BASE = {"MODEL_URI": "models:/titanic-survival/1", "FERRY_MODEL_DIR": "/tmp/ferry-test-model"}


def test_the_operators_environment_becomes_the_config() -> None:
    env = {
        **BASE,
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "FERRY_COLOR": "green",
        "FERRY_MODEL_VERSION": "7",
        "FERRY_MODEL_NAME": "titanic",
    }
    c = load(["--model_name=titanic-green", "--http_port=9000"], env)
    assert (c.model_name, c.model_uri, c.tracking_uri) == ("titanic", BASE["MODEL_URI"], "http://mlflow:5000")
    assert (c.color, c.version_override, c.http_port, c.host) == ("green", "7", 9000, "0.0.0.0")
    assert c.workdir == Path("/tmp/ferry-test-model")
    assert (c.max_body_bytes, c.max_batch_rows) == (DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BATCH_ROWS)
    assert (c.body_timeout_seconds, c.log_level, c.credentials) == (30.0, "info", ())


def test_defaults_without_the_optional_variables() -> None:
    c = load(["--model_name=m"], {"MODEL_URI": "runs:/abc/model"})
    assert (c.model_name, c.tracking_uri, c.color, c.version_override) == ("m", None, "", None)
    assert c.workdir.is_dir() and c.workdir.name.startswith("ferry-model-")
    assert (c.http_port, c.metrics_port) == (8080, 8082)  # as the ServingRuntime runs it
    assert load(["--model_name=m", "--metrics_port=0"], BASE).metrics_port == 0
    c.workdir.rmdir()


def test_flags_win_over_their_variables() -> None:
    env = {**BASE, "FERRY_MAX_BODY_BYTES": "10", "FERRY_MAX_BATCH_ROWS": "5", "FERRY_LOG_LEVEL": "debug"}
    assert (load(["--model_name=m"], env).max_body_bytes, load(["--model_name=m"], env).log_level) == (
        10,
        "debug",
    )
    c = load(["--model_name=m", "--max_body_bytes=20", "--max_batch_rows=6", "--log_level=error"], env)
    assert (c.max_body_bytes, c.max_batch_rows, c.log_level) == (20, 6, "error")


@pytest.mark.parametrize(
    ("argv", "env", "name"),
    [
        ([], {}, "MODEL_URI"),
        ([], {"FERRY_MAX_BODY_BYTES": "0"}, "FERRY_MAX_BODY_BYTES"),
        ([], {"FERRY_MAX_BATCH_ROWS": "many"}, "FERRY_MAX_BATCH_ROWS"),
        ([], {"FERRY_BODY_TIMEOUT_SECONDS": "-1"}, "FERRY_BODY_TIMEOUT_SECONDS"),
        ([], {"FERRY_LOG_LEVEL": "loud"}, "FERRY_LOG_LEVEL"),
        ([], {"FERRY_SHUTDOWN_TIMEOUT_SECONDS": "0"}, "FERRY_SHUTDOWN_TIMEOUT_SECONDS"),
        (["--max_body_bytes=-5"], {}, "--max_body_bytes"),
        (["--max_batch_rows=0"], {}, "--max_batch_rows"),
        (["--http_port=70000"], {}, "--http_port"),
        (["--metrics_port=x"], {}, "--metrics_port"),
        # metrics never share the port predictions are served on (issue 13, finding 2)
        (["--http_port=9000", "--metrics_port=9000"], {}, "--metrics_port"),
        (["--metrics_port=8080"], {}, "--metrics_port"),
        ([], {"FERRY_ARTIFACT_DIGEST": "sha256:ABC"}, "FERRY_ARTIFACT_DIGEST"),
        ([], {"FERRY_ARTIFACT_DIGEST": "a" * 64}, "FERRY_ARTIFACT_DIGEST"),
    ],
)
def test_a_bad_value_is_named(argv: list[str], env: dict[str, str], name: str) -> None:
    environ = {**BASE, **env} if name != "MODEL_URI" else {}
    with pytest.raises(ConfigError) as exc:
        load(["--model_name=m", *argv], environ)
    assert exc.value.name == name


def test_the_artifact_digest_is_read_when_the_operator_sets_it() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    assert load(["--model_name=m"], {**BASE, "FERRY_ARTIFACT_DIGEST": digest}).artifact_digest == digest
    assert load(["--model_name=m"], BASE).artifact_digest is None


def test_a_bad_value_exits_2_naming_it_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[object] = []
    monkeypatch.setattr(entry, "serve", started.append)
    monkeypatch.setenv("MODEL_URI", "models:/m/1")
    monkeypatch.setenv("FERRY_MAX_BATCH_ROWS", "lots")
    with pytest.raises(SystemExit) as exc:
        entry.main(["--model_name=m"])
    assert exc.value.code == 2 and started == []
    assert "FERRY_MAX_BATCH_ROWS" in capsys.readouterr().err


def test_credentials_are_kept_for_scrubbing_and_never_shown() -> None:
    env = {**BASE, "MLFLOW_TRACKING_URI": "http://bob:hunter2@mlflow/", "MLFLOW_TRACKING_TOKEN": "t0ken"}
    c = load(["--model_name=m"], env)
    assert c.credentials == ("t0ken",)
    assert "t0ken" not in repr(c) and "hunter2" not in repr(c)


def test_help_lists_every_variable_of_the_one_table() -> None:
    text = parser().format_help()
    for var in ENV:
        assert var.name in text
    for name in vars(PredictorEnv).values():
        if isinstance(name, str) and name.isupper():
            assert name in text  # everything the operator sets is documented here
    for flag in ("--model_name", "--http_port", "--grpc_port", "--workers", "--max_body_bytes"):
        assert flag in text


def test_the_environment_is_read_nowhere_else_in_the_package() -> None:
    reads = re.compile(r"os\.environ|getenv|envconfig\.environment\(")
    offenders = [p.name for p in SRC.glob("*.py") if p.name != "config.py" and reads.search(p.read_text())]
    assert offenders == []


def test_the_body_limit_is_the_one_the_gateway_applies_before_spending_quota() -> None:
    # issue 13, finding 12: the same constant is the gateway's default, so no body the gateway
    # forwards (and bills) by default is one the predictor refuses with 413
    from ferry_common.contract import MAX_BODY_BYTES

    assert DEFAULT_MAX_BODY_BYTES == MAX_BODY_BYTES
    assert load(["--model_name=m"], BASE).max_body_bytes == MAX_BODY_BYTES


def test_the_shutdown_drain_fits_in_the_pods_grace_period() -> None:
    """A SIGTERM waits for requests in flight at most this long; the pod the operator makes gives
    it the preStop delay plus this, before the kubelet's SIGKILL (ferry_common.runtime)."""
    from ferry_common import runtime

    c = load(["--model_name=m"], BASE)
    assert c.shutdown_timeout_seconds == runtime.DRAIN_SECONDS
    assert runtime.PRESTOP_SECONDS + c.shutdown_timeout_seconds < runtime.TERMINATION_GRACE_SECONDS
    assert (
        load(["--model_name=m"], {**BASE, "FERRY_SHUTDOWN_TIMEOUT_SECONDS": "7"}).shutdown_timeout_seconds
        == 7
    )
