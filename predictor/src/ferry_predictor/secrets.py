"""Keep credentials out of logs: URIs may carry ``user:password@`` or signed query strings."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
