"""One table of environment variables: defaults, parsing, errors that name the variable, --help."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_common import envconfig
from ferry_common.envconfig import ConfigError, Var, help_text, load, or_exit

TABLE = (
    Var("APP_PORT", "port to listen on", "8080", envconfig.port),
    Var("APP_NAME", "a name"),
    Var("APP_RATIO", "a ratio", "0.5", envconfig.positive_float),
    Var("APP_TOKEN", "a secret number", None, int, secret=True),
    Var("APP_PASSWORD", "a secret with a default", "built-in-secret", secret=True),
    Var("APP_FLAG", "on or off", "false", envconfig.boolean),
)


def test_defaults_and_unset_variables() -> None:
    assert load(TABLE, {}) == {
        "APP_PORT": 8080,
        "APP_NAME": None,
        "APP_RATIO": 0.5,
        "APP_TOKEN": None,
        "APP_PASSWORD": "built-in-secret",
        "APP_FLAG": False,
    }


def test_values_are_parsed() -> None:
    values = load(TABLE, {"APP_PORT": "9000", "APP_NAME": "x", "APP_TOKEN": "42", "APP_FLAG": "yes"})
    assert (values["APP_PORT"], values["APP_NAME"], values["APP_TOKEN"], values["APP_FLAG"]) == (
        9000,
        "x",
        42,
        True,
    )


def test_an_empty_value_means_the_default() -> None:
    assert load(TABLE[:1], {"APP_PORT": ""}) == {"APP_PORT": 8080}


def test_a_parse_error_names_the_variable_and_the_value() -> None:
    with pytest.raises(ConfigError) as exc:
        load(TABLE, {"APP_PORT": "http"})
    assert exc.value.name == "APP_PORT"
    assert str(exc.value) == "APP_PORT: 'http': expected a whole number"


def test_a_secret_value_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as exc:
        load(TABLE, {"APP_TOKEN": "hunter2"})  # int() quotes its input in its own message
    assert exc.value.name == "APP_TOKEN"
    assert "hunter2" not in str(exc.value) and "<hidden>" in str(exc.value)


def test_help_text_lists_every_variable_and_no_secret_default() -> None:
    text = help_text(TABLE)
    assert text.splitlines()[0] == "Environment:"
    for var in TABLE:
        assert var.name in text and var.help in text
    assert "(default: 8080)" in text and "built-in-secret" not in text
    assert help_text(TABLE, title="Settings").startswith("Settings:")


def test_or_exit_exits_2_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc, or_exit("prog"):
        load(TABLE, {"APP_RATIO": "0"})
    assert exc.value.code == 2
    assert capsys.readouterr().err == "prog: invalid configuration: APP_RATIO: '0': must be > 0\n"


def test_or_exit_lets_other_errors_through() -> None:
    with pytest.raises(KeyError), or_exit("prog"):
        raise KeyError("x")


def test_environment_is_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_NAME", "from-env")
    assert envconfig.environment()["APP_NAME"] == "from-env"
    assert load(TABLE[1:2]) == {"APP_NAME": "from-env"}


@pytest.mark.parametrize(
    ("parse", "raw", "value"),
    [
        (envconfig.positive_float, "1.5", 1.5),
        (envconfig.positive_int, "3", 3),
        (envconfig.non_negative_int, "0", 0),
        (envconfig.port, "65535", 65535),
        (envconfig.boolean, " On ", True),
        (envconfig.boolean, "0", False),
        (envconfig.choice("json", "text"), "JSON", "json"),
        (envconfig.csv, " a, ,b ,", ("a", "b")),
        (envconfig.csv, "", ()),
    ],
)
def test_parsers_accept(parse: Any, raw: str, value: Any) -> None:
    assert parse(raw) == value


@pytest.mark.parametrize(
    ("parse", "raw", "reason"),
    [
        (envconfig.positive_float, "x", "expected a number"),
        (envconfig.positive_float, "0", "must be > 0"),
        (envconfig.positive_float, "nan", "must be > 0"),
        (envconfig.positive_int, "0", "must be > 0"),
        (envconfig.positive_int, "-3", "must be > 0"),
        (envconfig.positive_int, "1.5", "expected a whole number"),
        (envconfig.non_negative_int, "-1", "must be >= 0"),
        (envconfig.port, "65536", "port number"),
        (envconfig.boolean, "maybe", "expected true or false"),
        (envconfig.choice("json", "text"), "xml", "must be one of json, text"),
    ],
)
def test_parsers_refuse_with_a_reason(parse: Any, raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse(raw)
