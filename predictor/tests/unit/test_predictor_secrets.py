"""Credentials in URIs never reach the logs, not even through a failing model load."""

from __future__ import annotations

import logging

import pytest
from ferry_predictor.app import PredictorApp
from ferry_predictor.config import Config
from ferry_predictor.model import LoadedModel
from ferry_predictor.secrets import redact


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://bob:hunter2@mlflow:5000/api?x=1", "http://***@mlflow:5000/api?***"),
        ("s3://bucket/models/1?X-Amz-Signature=abc", "s3://bucket/models/1?***"),
        ("models:/titanic-survival@champion", "models:/titanic-survival@champion"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_hides_userinfo_and_query(uri: str, shown: str) -> None:
    assert redact(uri) == shown


def test_a_failing_load_is_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    tracking = "http://bob:hunter2@127.0.0.1:9/"
    config = Config("titanic", "models:/titanic-survival/1", tracking_uri=tracking)

    def loader(cfg: Config) -> LoadedModel:
        app.stop()  # one attempt is enough for this test
        raise ConnectionError(f"cannot reach {tracking}api/2.0/mlflow/registered-models")

    app = PredictorApp(config, loader=loader)
    with caplog.at_level(logging.INFO, logger="ferry_predictor"):
        app._load_until_loaded()
    assert app.model is None and app.load_error is not None
    assert "failed to load" in caplog.text and "cannot reach http://***@127.0.0.1:9/" in caplog.text
    assert "hunter2" not in caplog.text and "hunter2" not in app.load_error


def test_a_registry_token_in_a_load_error_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    config = Config("titanic", "models:/titanic-survival/1", credentials=("s3cr3t-token",))

    def loader(cfg: Config) -> LoadedModel:
        app.stop()
        raise PermissionError("token s3cr3t-token refused")

    app = PredictorApp(config, loader=loader)
    with caplog.at_level(logging.INFO, logger="ferry_predictor"):
        app._load_until_loaded()
    assert app.load_error is not None and "token *** refused" in app.load_error
    assert "s3cr3t-token" not in caplog.text
