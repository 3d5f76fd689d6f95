"""The READMEs' `kubectl ferry` lines are commands the plugin accepts, and the exit-code table
there is the plugin's (the commands themselves run against a cluster in tests/cluster/test_plugin.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from ferry_operator.cliargs import EXIT_MEANINGS, build_parser

ROOT = Path(__file__).resolve().parents[3]
READMES = [ROOT / "README.md", ROOT / "operator/README.md"]


def plugin_lines(path: Path) -> list[str]:
    """`kubectl ferry ...` in the README's sh blocks, without comments."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            found = re.search(r"kubectl ferry ([^#)]*)", line)
            if found:
                lines.append(found.group(1).strip())
    return lines


def test_the_operator_readme_shows_the_plugin() -> None:
    assert len(plugin_lines(ROOT / "operator/README.md")) >= 7


@pytest.mark.parametrize(
    "line", [line for path in READMES for line in plugin_lines(path)], ids=lambda line: line.split()[0]
)
def test_every_readme_plugin_line_parses(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(shlex.split(line))
    except SystemExit as exit_:
        assert exit_.code == 0, (line, capsys.readouterr().err)  # --help


def test_the_readme_exit_code_table_is_the_plugins() -> None:
    text = (ROOT / "operator/README.md").read_text()
    rows = re.findall(r"^  \| (\d) \| ", text, re.M)
    assert [int(r) for r in rows] == [int(c) for c in EXIT_MEANINGS]
