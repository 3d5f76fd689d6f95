"""A consumers file the gateway refuses on reload is not only logged: the last good copy keeps
serving, and ferry_gateway_consumers_file_rejected says so until the file is fixed (issue 13,
finding 12), which FerryGatewayConsumersFileRejected alerts on."""

from __future__ import annotations

from pathlib import Path

import pytest
from ferry_gateway import cli, metrics
from ferry_gateway.consumers.registry import ConsumerRegistry
from ferry_testing.gateway import PEPPER


def _rejected() -> float | None:
    return metrics.REGISTRY.get_sample_value(metrics.CONSUMERS_REJECTED_NAME)


def test_a_refused_reload_keeps_the_last_good_copy_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_API_KEY_PEPPER", PEPPER.decode())
    file = tmp_path / "consumers.yaml"
    assert cli.main(["keys", "create", "--consumer", "shop", "--file", str(file)]) == 0
    key = capsys.readouterr().out.strip()
    registry = ConsumerRegistry(PEPPER, path=file)
    assert registry.authenticate_key(key).name == "shop" and _rejected() == 0

    good = file.read_text()
    file.write_text(good + "  - name: Not A Name\n")  # a broken edit
    assert registry.authenticate_key(key).name == "shop"  # the last good copy still decides
    assert _rejected() == 1
    assert b"ferry_gateway_consumers_file_rejected 1.0" in metrics.exposition()[0]

    file.write_text(good + "\n")  # fixed (a new size: seen as a change)
    assert registry.authenticate_key(key).name == "shop"
    assert _rejected() == 0
