"""The CORS policy as pure functions, and the Cors edge class called in-process."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
import pytest
from ferry_common.asgi import Message, Scope
from ferry_common.errors import FieldError
from ferry_gateway import config
from ferry_gateway.config import ConfigError
from ferry_gateway.edge.cors import (
    ANY_PORT,
    DEFAULT_ALLOW_HEADERS,
    DEV_ORIGINS,
    Cors,
    CorsPolicy,
    CredentialsWithWildcard,
    Origin,
    merge_vary,
    origin_allowed,
    parse_origin,
    parse_pattern,
    parse_policy,
    preflight,
    response_headers,
)
from ferry_gateway.edge.request_id import RequestIds
from hypothesis import given
from hypothesis import strategies as st

DEV = parse_policy(DEV_ORIGINS)
SITE = parse_policy(["https://app.example.com", "http://localhost:3000"], credentials=True)


# ---- origins and patterns --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("http://localhost:3000", Origin("http", "localhost", 3000)),
        ("https://app.example.com", Origin("https", "app.example.com", None)),
        ("https://app.example.com:443", Origin("https", "app.example.com", None)),
        ("http://127.0.0.1:8080", Origin("http", "127.0.0.1", 8080)),
        ("http://[::1]:5173", Origin("http", "[::1]", 5173)),
        ("http://[::1]", Origin("http", "[::1]", None)),
    ],
)
def test_origins_parse_as_browsers_send_them(raw: str, parsed: Origin) -> None:
    assert parse_origin(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        "null",
        "",
        "localhost:3000",
        "http://",
        "http://localhost:",
        "http://localhost:0080",
        "http://localhost:99999",
        "http://localhost:3000/",
        "http://localhost:3000/path",
        "http://user@localhost",
        "http://localhost:80@evil.com",
        "http://local host",
        "http://LOCALHOST",
        "http://[::1",
        "http://[::1]x",
        "http://-bad.example",
        # a trailing newline: `$` alone would let it through into Access-Control-Allow-Origin
        "http://localhost\n",
        "http\n://localhost",
    ],
)
def test_malformed_origins_are_refused(raw: str) -> None:
    assert parse_origin(raw) is None


def test_patterns() -> None:
    assert parse_pattern("http://localhost:*").port == ANY_PORT
    assert parse_pattern("https://app.example.com").port is None
    assert parse_pattern("http://localhost:3000").port == 3000
    for bad, why in [
        ("http://localhost:3000/", "no path"),
        ("https://App.example.com", "lower case"),
        ("*.example.com", "not an origin"),
        ("https://*.example.com", "not an origin"),
        ("localhost:*", "not an origin"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_pattern(bad)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://localhost", True),
        ("http://127.0.0.1:1", True),
        ("https://localhost:5173", False),
        ("http://localhost.evil.com", False),
        ("http://localhost.evil.com:5173", False),
        ("http://evil-localhost:5173", False),
        ("http://127.0.0.1.nip.io:80", False),
        ("http://localhost:5173@evil.com", False),
        ("http://[::1]:5173", False),
        ("null", False),
    ],
)
def test_dev_patterns_mean_any_port_of_that_scheme_and_host_only(origin: str, allowed: bool) -> None:
    assert origin_allowed(DEV, origin) is allowed


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)
_scheme = st.sampled_from(["http", "https", "ws", "chrome-extension"])
_port = st.one_of(st.none(), st.integers(1, 65535))


def _serialise(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


@given(
    _scheme,
    _host,
    st.one_of(st.none(), st.integers(1, 65535), st.just(ANY_PORT)),
    _scheme,
    _host,
    _port,
    st.text(max_size=12),
)
def test_no_pattern_matches_another_scheme_or_host(
    p_scheme: str,
    p_host: str,
    p_port: int | None,
    o_scheme: str,
    o_host: str,
    o_port: int | None,
    junk: str,
) -> None:
    pattern = f"{p_scheme}://{p_host}" + (":*" if p_port == ANY_PORT else (f":{p_port}" if p_port else ""))
    policy = parse_policy([pattern])
    for origin in (
        _serialise(o_scheme, o_host, o_port),
        _serialise(o_scheme, o_host, o_port) + junk,
        _serialise(p_scheme, p_host + "." + o_host, o_port),  # the pattern's host as a subdomain
        _serialise(p_scheme, o_host + "." + p_host, o_port),  # ... or a suffix
        _serialise(p_scheme, p_host + "-" + o_host, o_port),
    ):
        parsed = parse_origin(origin)
        if origin_allowed(policy, origin):
            assert parsed is not None
            assert (parsed.scheme, parsed.host) == (p_scheme, p_host), (pattern, origin)
            if p_port != ANY_PORT:
                default = {"http": 80, "https": 443}.get(p_scheme)
                assert parsed.port in ({p_port, None} if p_port == default else {p_port}), (pattern, origin)


@given(_scheme, _host, _port, st.integers(1, 65535))
def test_a_pattern_matches_its_own_origin_on_every_port_it_names(
    scheme: str, host: str, port: int | None, other: int
) -> None:
    origin = _serialise(scheme, host, port)
    assert origin_allowed(parse_policy([origin]), origin)
    assert origin_allowed(parse_policy([f"{scheme}://{host}:*"]), _serialise(scheme, host, other))


@given(st.text(max_size=40))
def test_any_text_as_origin_never_crashes_and_empty_policy_allows_nothing(raw: str) -> None:
    parse_origin(raw)
    assert not origin_allowed(CorsPolicy(), raw)
    assert origin_allowed(parse_policy(["*"]), raw)


# ---- the policy ------------------------------------------------------------------------------


def test_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(CredentialsWithWildcard):
        parse_policy(["*"], credentials=True)
    with pytest.raises(ValueError, match="method name"):
        parse_policy(["http://a.test"], methods=["GET POST"])
    assert parse_policy(["http://a.test", "http://a.test"]).origins == (parse_pattern("http://a.test"),)


def _h(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in headers}


def test_preflight_allowed_echoes_the_origin_with_methods_headers_and_max_age() -> None:
    verdict = preflight(SITE, "http://localhost:3000", "POST", "x-api-key, content-type")
    assert not isinstance(verdict, FieldError)
    h = _h(verdict)
    assert h["access-control-allow-origin"] == "http://localhost:3000"
    assert h["access-control-allow-credentials"] == "true"
    assert h["access-control-allow-methods"] == "GET, POST"
    assert h["access-control-allow-headers"] == ", ".join(DEFAULT_ALLOW_HEADERS)
    assert h["access-control-max-age"] == "600"
    assert h["vary"] == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def test_preflight_with_a_wildcard_policy_answers_star() -> None:
    verdict = preflight(parse_policy(["*"]), "https://anyone.test", "GET", None)
    assert not isinstance(verdict, FieldError)
    assert _h(verdict)["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in _h(verdict)


@pytest.mark.parametrize(
    ("policy", "origin", "method", "headers", "field"),
    [
        (SITE, "https://evil.test", "POST", None, "origin"),
        (CorsPolicy(), "http://localhost:3000", "POST", None, "origin"),
        (SITE, "https://app.example.com", "DELETE", None, "access-control-request-method"),
        (SITE, "https://app.example.com", "post", None, "access-control-request-method"),
        (SITE, "https://app.example.com", "POST", "x-api-key, x-secret", "access-control-request-headers"),
    ],
)
def test_preflight_refusals_name_the_field(
    policy: CorsPolicy, origin: str, method: str, headers: str | None, field: str
) -> None:
    verdict = preflight(policy, origin, method, headers)
    assert isinstance(verdict, FieldError) and verdict.field == field


def test_safelisted_request_headers_need_no_permission() -> None:
    assert not isinstance(
        preflight(SITE, "https://app.example.com", "GET", "accept, Accept-Language"), FieldError
    )


def test_actual_responses_gain_allow_expose_and_vary_only_when_the_policy_is_on() -> None:
    h = _h(response_headers(SITE, "https://app.example.com"))
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert "X-RateLimit-Remaining" in h["access-control-expose-headers"]
    assert h["vary"] == "Origin"
    # another origin, or none: no permission, but Vary still, as the answer depends on the origin
    assert _h(response_headers(SITE, "https://evil.test")) == {"vary": "Origin"}
    assert _h(response_headers(SITE, None)) == {"vary": "Origin"}
    # CORS off: no header at all
    assert response_headers(CorsPolicy(), "https://app.example.com") == []
    # `*` without credentials: the same answer for every origin, nothing to vary on
    star = _h(response_headers(parse_policy(["*"]), "https://x.test"))
    assert star["access-control-allow-origin"] == "*" and "vary" not in star


def test_cors_headers_from_inside_never_pass() -> None:
    inner = [
        (b"access-control-allow-origin", b"*"),
        (b"Access-Control-Allow-Credentials", b"true"),
        (b"a", b"1"),
    ]
    assert merge_vary(inner, []) == [(b"a", b"1")]
    _, headers, _ = call(Cors(Inner(headers=inner), CorsPolicy()), "POST", {"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in headers and "access-control-allow-credentials" not in headers


def test_vary_is_merged_not_repeated() -> None:
    merged = merge_vary(
        [(b"content-type", b"x"), (b"Vary", b"Accept-Encoding, origin")], [(b"vary", b"Origin")]
    )
    assert merged == [(b"content-type", b"x"), (b"vary", b"Accept-Encoding, origin")]


# ---- configuration ---------------------------------------------------------------------------


def test_config_defaults_none_dev_allows_localhost_and_errors_name_the_variable() -> None:
    assert not config.load(None, {}).cors.enabled
    assert config.load(argparse.Namespace(dev=True), {}).cors == DEV
    env = {"FERRY_CORS_ALLOW_ORIGINS": "https://a.test, http://localhost:*", "FERRY_CORS_MAX_AGE": "60"}
    policy = config.load(None, env).cors
    assert origin_allowed(policy, "http://localhost:1234") and policy.max_age == 60
    # an explicit list replaces the dev default
    assert not origin_allowed(config.load(argparse.Namespace(dev=True), env).cors, "http://127.0.0.1:1")
    for bad, name in [
        (
            {"FERRY_CORS_ALLOW_ORIGINS": "*", "FERRY_CORS_ALLOW_CREDENTIALS": "true"},
            "FERRY_CORS_ALLOW_CREDENTIALS",
        ),
        ({"FERRY_CORS_ALLOW_ORIGINS": "https://a.test/"}, "FERRY_CORS_ALLOW_ORIGINS"),
        ({"FERRY_CORS_ALLOW_METHODS": "GET,PO ST"}, "FERRY_CORS_ALLOW_METHODS"),
        ({"FERRY_CORS_MAX_AGE": "-1"}, "FERRY_CORS_MAX_AGE"),
        ({"FERRY_CORS_ALLOW_CREDENTIALS": "maybe"}, "FERRY_CORS_ALLOW_CREDENTIALS"),
    ]:
        with pytest.raises(ConfigError) as err:
            config.load(None, bad)
        assert err.value.name == name
    assert "'*'" in str(_error({"FERRY_CORS_ALLOW_ORIGINS": "*", "FERRY_CORS_ALLOW_CREDENTIALS": "1"}))


def _error(env: dict[str, str]) -> ConfigError:
    try:
        config.load(None, env)
    except ConfigError as exc:
        return exc
    raise AssertionError("no error")


def test_help_lists_the_cors_variables() -> None:
    text = config.help_text()
    for name in (
        "FERRY_CORS_ALLOW_ORIGINS",
        "FERRY_CORS_ALLOW_METHODS",
        "FERRY_CORS_ALLOW_HEADERS",
        "FERRY_CORS_EXPOSE_HEADERS",
        "FERRY_CORS_ALLOW_CREDENTIALS",
        "FERRY_CORS_MAX_AGE",
    ):
        assert name in text


# ---- the edge class, in-process --------------------------------------------------------------


class Inner:
    """Stands for everything behind CORS (auth, limiter, routes): records that it was reached."""

    def __init__(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.calls = 0
        self.status = status
        self.headers = headers or []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": list(self.headers)})
        await send({"type": "http.response.body", "body": b"{}"})


def call(app: Any, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": "/v1/models/titanic:predict",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(RequestIds(app)(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], _h(start["headers"]), body


PREFLIGHT = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}


def test_preflight_is_answered_without_reaching_the_app() -> None:
    inner = Inner()
    status, headers, body = call(Cors(inner, DEV), "OPTIONS", PREFLIGHT)
    assert status == 204 and body == b"" and inner.calls == 0
    assert headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "x-request-id" in headers


def test_refused_preflight_is_a_403_envelope_without_reaching_the_app() -> None:
    inner = Inner()
    status, headers, body = call(
        Cors(inner, DEV), "OPTIONS", {**PREFLIGHT, "Origin": "http://localhost.evil.com"}
    )
    envelope = orjson.loads(body)
    assert status == 403 and inner.calls == 0
    assert envelope["error_code"] == "FORBIDDEN" and envelope["details"][0]["field"] == "origin"
    assert envelope["request_id"] == headers["x-request-id"]
    assert "access-control-allow-origin" not in headers
    status, _, body = call(Cors(inner, CorsPolicy()), "OPTIONS", PREFLIGHT)
    assert status == 403 and "CORS is off" in orjson.loads(body)["message"] and inner.calls == 0


def test_options_without_a_preflight_header_goes_on_to_the_app() -> None:
    inner = Inner(status=405)
    status, _, _ = call(Cors(inner, DEV), "OPTIONS", {"Origin": "http://localhost:5173"})
    assert status == 405 and inner.calls == 1


def test_actual_responses_errors_included_carry_the_allow_origin() -> None:
    inner = Inner(status=401, headers=[(b"content-type", b"application/json"), (b"vary", b"Accept")])
    status, headers, _ = call(Cors(inner, DEV), "POST", {"Origin": "http://127.0.0.1:9000"})
    assert status == 401
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:9000"
    assert headers["vary"] == "Accept, Origin"
    _, off, _ = call(Cors(Inner(), CorsPolicy()), "POST", {"Origin": "http://127.0.0.1:9000"})
    assert not any(k.startswith("access-control") or k == "vary" for k in off)
