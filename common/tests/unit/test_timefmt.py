"""RFC 3339 as Kubernetes writes it: UTC with a trailing Z, seconds or milliseconds."""

from __future__ import annotations

import re

import pytest
from ferry_common.timefmt import format_time, parse_time
from hypothesis import given
from hypothesis import strategies as st

# 1970 to 9999: what datetime and RFC 3339's four-digit years hold.
SECONDS = st.integers(0, 253402300799)
# Up to 2106: below 2**32 a float holds a Unix time to better than half a microsecond, so a
# millisecond survives the float; past it (year 2242 and on) .001 can come back as .000999.
MILLI_SECONDS = st.integers(0, 2**32 - 1)


def test_format_is_utc_with_z() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1.5, "milliseconds") == "1970-01-01T00:00:01.500Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", format_time())


@given(SECONDS)
def test_seconds_round_trip(t: int) -> None:
    text = format_time(t)
    assert text.endswith("Z") and parse_time(text) == t


@given(MILLI_SECONDS, st.integers(0, 999))
def test_milliseconds_round_trip(t: int, ms: int) -> None:
    text = format_time(t + ms / 1000, "milliseconds")
    assert text.endswith(f".{ms:03d}Z")
    assert round(parse_time(text) * 1000) == t * 1000 + ms


def test_seconds_precision_truncates() -> None:
    assert format_time(59.999) == "1970-01-01T00:00:59Z"


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T07:48:09Z",
        "2026-12-03T07:48:09z",
        "2026-12-03T07:48:09+00:00",
        "2026-12-03T08:48:09+01:00",
    ],
)
def test_offsets_are_honoured(text: str) -> None:
    assert parse_time(text) == parse_time("2026-12-03T07:48:09Z") == 1796284089


def test_a_naive_timestamp_is_utc() -> None:
    assert parse_time("2026-12-03T07:48:09") == parse_time("2026-12-03T07:48:09Z")


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-03T07:48:09Z", "12/03/2026"])
def test_bad_input_names_the_text(text: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_time(text)
    assert repr(text) in str(exc.value) and "RFC 3339" in str(exc.value)
