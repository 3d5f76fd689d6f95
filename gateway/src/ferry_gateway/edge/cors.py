"""CORS: which web pages may call the gateway from a browser, decided before anything else.

The policy (``CorsPolicy``, from ``parse_policy``) and every verdict on it (``origin_allowed``,
``preflight``, ``response_headers``) are plain functions of data; ``Cors`` is the thin ASGI class
around them. It sits right inside ``RequestIds``, so a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) is answered here, 204 or a 403 envelope naming the refused
field, and never reaches authentication, the limiter or the access counters.

Origins are exact (``https://app.example.com``, ``http://localhost:3000``), ``scheme://host:*``
for any port of that scheme and host, or ``*`` for any origin (refused with credentials: a
browser would reject it, and echoing every origin with credentials would hand every page on the
web the caller's cookies). An empty policy allows no origin and adds no header to any response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ferry_common.asgi import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from ferry_common.errors import ErrorCode, FerryError, FieldError

from ferry_gateway.edge.errors import render_error
from ferry_gateway.edge.request import RequestContext, context

DEFAULT_METHODS = ("GET", "POST")
DEFAULT_ALLOW_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "X-Ferry-Preview",
    "X-Request-Id",
    "Inference-Header-Content-Length",
)
# Access-Control-Expose-Headers takes names, not patterns: the X-RateLimit-* and X-Quota-* families
# are spelled out.
DEFAULT_EXPOSE_HEADERS = (
    "X-Request-Id",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Quota-Limit",
    "X-Quota-Remaining",
    "X-Quota-Reset",
    "Inference-Header-Content-Length",
)
DEFAULT_MAX_AGE = 600
DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")

# Headers a browser sends without asking (the Fetch standard's CORS-safelisted request headers).
_SAFELISTED = frozenset({"accept", "accept-language", "content-language", "content-type"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: method and header names
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# A host as browsers serialise it in Origin: lower-case DNS name, IPv4, or bracketed IPv6.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = -1


@dataclass(frozen=True)
class Origin:
    """An origin as a browser sends it; ``port`` None when it is the scheme's default (omitted)."""

    scheme: str
    host: str
    port: int | None


@dataclass(frozen=True)
class OriginPattern:
    """An allowed origin; ``port`` ANY_PORT for ``scheme://host:*``."""

    scheme: str
    host: str
    port: int | None

    def matches(self, origin: Origin) -> bool:
        if origin.scheme != self.scheme or origin.host != self.host:
            return False
        return self.port == ANY_PORT or origin.port == self.port


def parse_origin(raw: str) -> Origin | None:
    """The Origin header's value as an Origin; None for ``null`` or anything malformed."""
    scheme, sep, rest = raw.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme) or not rest:
        return None
    host, port = _split_port(rest)
    if host is None or not _HOST.fullmatch(host):
        return None
    if port is not None:
        if not port.isdigit() or len(port) > 5 or int(port) > 65535 or (len(port) > 1 and port[0] == "0"):
            return None
        number: int | None = int(port)
        if number == _DEFAULT_PORTS.get(scheme):
            number = None  # browsers omit the default port; tolerate a client that sends it
        return Origin(scheme, host, number)
    return Origin(scheme, host, None)


def _split_port(rest: str) -> tuple[str | None, str | None]:
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            return None, None
        host, tail = rest[: end + 1], rest[end + 1 :]
        if not tail:
            return host, None
        return (host, tail[1:]) if tail.startswith(":") else (None, None)
    host, sep, port = rest.partition(":")
    return host, (port if sep else None)


def parse_pattern(raw: str) -> OriginPattern:
    """One allowed origin (``scheme://host[:port]`` or ``scheme://host:*``); ValueError says why."""
    text = raw.strip()
    if text.endswith("/"):
        raise ValueError(f"{raw!r}: an origin has no path (drop the trailing '/')")
    wildcard = text.endswith(":*")
    origin = parse_origin(text[:-2] if wildcard else text)
    if origin is None or text != text.lower():
        raise ValueError(
            f"{raw!r}: not an origin; expected scheme://host[:port] or scheme://host:* in lower case"
        )
    return OriginPattern(origin.scheme, origin.host, ANY_PORT if wildcard else origin.port)


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins, methods and request headers are allowed; what responses expose."""

    origins: tuple[OriginPattern, ...] = ()
    any_origin: bool = False
    methods: tuple[str, ...] = DEFAULT_METHODS
    allow_headers: tuple[str, ...] = DEFAULT_ALLOW_HEADERS
    expose_headers: tuple[str, ...] = DEFAULT_EXPOSE_HEADERS
    credentials: bool = False
    max_age: int = DEFAULT_MAX_AGE

    @property
    def enabled(self) -> bool:
        return self.any_origin or bool(self.origins)

    @property
    def varies(self) -> bool:
        """Whether a response's CORS headers depend on the request's Origin (caches must know)."""
        return self.enabled and not (self.any_origin and not self.credentials)


class CredentialsWithWildcard(ValueError):
    """``*`` with credentials: refused, browsers reject it and it would expose every caller."""


def parse_policy(
    origins: Iterable[str] = (),
    *,
    methods: Iterable[str] = DEFAULT_METHODS,
    allow_headers: Iterable[str] = DEFAULT_ALLOW_HEADERS,
    expose_headers: Iterable[str] = DEFAULT_EXPOSE_HEADERS,
    credentials: bool = False,
    max_age: int = DEFAULT_MAX_AGE,
) -> CorsPolicy:
    """A policy from configuration; ValueError (CredentialsWithWildcard for ``*`` + credentials)."""
    raw = [o.strip() for o in origins if o.strip()]
    any_origin = "*" in raw
    if any_origin and credentials:
        raise CredentialsWithWildcard("'*' cannot be combined with credentials; list the origins")
    patterns = tuple(dict.fromkeys(parse_pattern(o) for o in raw if o != "*"))
    method_list = tuple(dict.fromkeys(_token(m, "method").upper() for m in methods))
    if not method_list:
        raise ValueError("at least one method")
    if max_age < 0:
        raise ValueError("max age must be >= 0")
    return CorsPolicy(
        origins=patterns,
        any_origin=any_origin,
        methods=method_list,
        allow_headers=tuple(dict.fromkeys(_token(h, "header") for h in allow_headers)),
        expose_headers=tuple(dict.fromkeys(_token(h, "header") for h in expose_headers)),
        credentials=credentials,
        max_age=max_age,
    )


def _token(raw: str, what: str) -> str:
    text = raw.strip()
    if not _TOKEN.match(text):
        raise ValueError(f"{raw!r}: not a {what} name")
    return text


def parse_origins(raw: str) -> tuple[str, ...]:
    """FERRY_CORS_ALLOW_ORIGINS: comma-separated patterns, each checked (ValueError names it)."""
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    for item in items:
        if item != "*":
            parse_pattern(item)
    return items


def parse_tokens(raw: str) -> tuple[str, ...]:
    """FERRY_CORS_ALLOW_METHODS / _HEADERS / EXPOSE_HEADERS: comma-separated names."""
    items = tuple(_token(part, "method or header") for part in raw.split(",") if part.strip())
    if not items:
        raise ValueError("at least one name")
    return items


def origin_allowed(policy: CorsPolicy, raw_origin: str) -> bool:
    if policy.any_origin:
        return True
    origin = parse_origin(raw_origin)
    return origin is not None and any(p.matches(origin) for p in policy.origins)


def _allow_origin(policy: CorsPolicy, raw_origin: str) -> RawHeaders:
    if policy.any_origin and not policy.credentials:
        out: RawHeaders = [(b"access-control-allow-origin", b"*")]
    else:
        out = [(b"access-control-allow-origin", raw_origin.encode("latin-1"))]
    if policy.credentials:
        out.append((b"access-control-allow-credentials", b"true"))
    return out


PREFLIGHT_VARY = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


def preflight(
    policy: CorsPolicy, raw_origin: str, method: str, request_headers: str | None
) -> RawHeaders | FieldError:
    """The 204's headers for an allowed preflight, else the first refused field and why."""
    if not origin_allowed(policy, raw_origin):
        if not policy.enabled:
            return FieldError("origin", "no origin may call this gateway from a browser (CORS is off)")
        return FieldError("origin", f"origin {raw_origin[:200]!r} is not allowed")
    if method not in policy.methods:
        return FieldError(
            "access-control-request-method",
            f"method {method[:32]!r} is not allowed; allowed: {', '.join(policy.methods)}",
        )
    allowed = {h.lower() for h in policy.allow_headers} | _SAFELISTED
    for name in (h.strip().lower() for h in (request_headers or "").split(",")):
        if name and name not in allowed:
            return FieldError("access-control-request-headers", f"header {name[:64]!r} is not allowed")
    out = _allow_origin(policy, raw_origin)
    out += [
        (b"access-control-allow-methods", ", ".join(policy.methods).encode()),
        (b"access-control-max-age", str(policy.max_age).encode()),
        PREFLIGHT_VARY,
    ]
    if policy.allow_headers:
        out.append((b"access-control-allow-headers", ", ".join(policy.allow_headers).encode()))
    return out


def response_headers(policy: CorsPolicy, raw_origin: str | None) -> RawHeaders:
    """What an actual (non-preflight) response gains: the allow and expose headers for an
    allowed origin; ``Vary: Origin`` on every response whose headers depend on the origin."""
    out: RawHeaders = []
    if raw_origin is not None and origin_allowed(policy, raw_origin):
        out += _allow_origin(policy, raw_origin)
        if policy.expose_headers:
            out.append((b"access-control-expose-headers", ", ".join(policy.expose_headers).encode()))
    if policy.varies:
        out.append((b"vary", b"Origin"))
    return out


def merge_vary(headers: RawHeaders, extra: RawHeaders) -> RawHeaders:
    """``headers`` + ``extra``, with one Vary naming every field once (case-insensitively), and
    no ``Access-Control-*`` from inside: only this policy says which pages may read a response
    (a predictor's own CORS headers are passed back with its answer otherwise)."""
    inner = [(k, v) for k, v in headers if not k.lower().startswith(b"access-control-")]
    vary: list[str] = []
    out: RawHeaders = []
    for k, v in [*inner, *extra]:
        if k.lower() == b"vary":
            for name in v.decode("latin-1").split(","):
                name = name.strip()
                if name and name.lower() not in (n.lower() for n in vary):
                    vary.append(name)
        else:
            out.append((k, v))
    if vary:
        out.append((b"vary", ", ".join(vary).encode("latin-1")))
    return out


class Cors:
    """The ASGI shell: preflights answered here, the CORS headers added to every other response."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = context(scope)
        origin = ctx.headers.get(b"origin")
        if origin is not None and scope["method"] == "OPTIONS":
            requested = ctx.headers.get(b"access-control-request-method")
            if requested is not None:
                await self._preflight(send, ctx, origin, requested)
                return
        extra = response_headers(self.policy, origin.decode("latin-1") if origin is not None else None)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = merge_vary(list(message.get("headers", [])), extra)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, ctx: RequestContext, origin: bytes, requested: bytes) -> None:
        verdict = preflight(
            self.policy,
            origin.decode("latin-1"),
            requested.decode("latin-1"),
            ctx.headers[b"access-control-request-headers"].decode("latin-1")
            if b"access-control-request-headers" in ctx.headers
            else None,
        )
        if isinstance(verdict, FieldError):
            message = "CORS preflight refused: " + verdict.reason
            vary = {"vary": PREFLIGHT_VARY[1].decode()}
            await render_error(send, FerryError(ErrorCode.FORBIDDEN, message, [verdict], vary), ctx)
            return
        ctx.status = 204
        ctx.started_response = True
        headers: RawHeaders = [(b"x-request-id", ctx.request_id.encode()), *verdict]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
