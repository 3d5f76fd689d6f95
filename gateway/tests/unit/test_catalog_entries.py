"""ModelDeployment status read into catalog entries (pure)."""

from __future__ import annotations

from ferry_gateway.upstream.catalog import entries
from ferry_testing.gateway import MD_IRIS as IRIS
from ferry_testing.gateway import MD_TITANIC as TITANIC


def test_entries_from_status() -> None:
    got = entries([TITANIC, IRIS, {"metadata": {"name": "new"}}])
    assert got["titanic"].describe(False) == {
        "name": "titanic",
        "status": "Stable",
        "version": "3",
        "color": "blue",
        "ready": True,
    }
    assert got["iris"].describe(True)["preview"] == {"version": "2", "ready": True}
    assert (got["iris"].color, got["iris"].preview_color) == ("green", "blue")
    assert got["new"].phase == "Pending" and got["new"].version is None
