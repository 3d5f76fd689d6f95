"""Gateway test fixtures: a predictor stand-in on loopback shared by the module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ferry_testing.gateway import Upstream


@pytest.fixture(scope="session")
def active_upstream() -> Iterator[Upstream]:
    up = Upstream(mode="echo", name="active")
    yield up
    up.close()


@pytest.fixture(scope="session")
def preview_upstream() -> Iterator[Upstream]:
    up = Upstream(mode="echo", name="preview")
    yield up
    up.close()
