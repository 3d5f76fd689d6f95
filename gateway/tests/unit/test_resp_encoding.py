"""How the limiter's Redis client writes commands: RESP arrays of bulk strings (pure)."""

from __future__ import annotations

from ferry_gateway.limits.resp import encode


def test_encoding_is_resp_arrays_of_bulk_strings() -> None:
    assert encode(["SET", "k", 12, b"\r\n"]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\r\n\r\n"
