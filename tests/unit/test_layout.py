"""The layout rules a newcomer relies on, checked over the source tree (issue 12).

- the environment is read only in each component's config module (and the one reader in
  ferry_common.envconfig), so every setting is documented and validated in one table;
- no product package imports the dev-only packages (the dev cluster, test helpers, generators);
- no PYTHONPATH or mypy_path reaches into test folders: everything imports as an installed package.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {
    "ferry_common": ROOT / "common/src/ferry_common",
    "ferry_operator": ROOT / "operator/src/ferry_operator",
    "ferry_gateway": ROOT / "gateway/src/ferry_gateway",
    "ferry_predictor": ROOT / "predictor/src/ferry_predictor",
}
DEV_ONLY = ("ferry_devcluster", "ferry_testing", "ferry_generate")
# The one reader of the process environment, and each component's config module.
ENV_READERS = {PRODUCT["ferry_common"] / "envconfig.py"} | {p / "config.py" for p in PRODUCT.values()}


def _sources() -> Iterator[Path]:
    for root in PRODUCT.values():
        yield from sorted(root.rglob("*.py"))


def _environment_reads(tree: ast.AST) -> list[int]:
    """Line numbers of os.environ / os.getenv / os.putenv / environ imported from os."""
    names = ("environ", "getenv", "putenv", "environb")
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines.extend(node.lineno for a in node.names if a.name in names)
    return lines


def test_the_environment_is_read_only_in_config_modules() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources()
        if path not in ENV_READERS
        for line in _environment_reads(ast.parse(path.read_text(), str(path)))
    ]
    assert not offenders, f"environment read outside a config module: {offenders}"


def test_the_environment_check_finds_a_read() -> None:
    """The check above is not vacuous: each spelling of an environment read is found."""
    for code in ("import os\nos.environ['X']", "import os\nos.getenv('X')", "from os import environ"):
        assert _environment_reads(ast.parse(code)), code
    assert not _environment_reads(ast.parse("import os\nos.path.join('a')"))


def _imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("dev_package", DEV_ONLY)
def test_no_product_package_imports_a_dev_only_package(dev_package: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources()
        for module in _imported_modules(ast.parse(path.read_text(), str(path)))
        if module == dev_package or module.startswith(dev_package + ".")
    ]
    assert not offenders, f"{dev_package} imported by product code: {offenders}"


def test_no_python_path_into_test_folders() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert "pythonpath" not in config["pytest"]["ini_options"]
    assert "mypy_path" not in config["mypy"] or not any("tests" in p for p in config["mypy"]["mypy_path"])
    for conftest in ROOT.glob("conftest.py"):
        assert "PYTHONPATH" not in conftest.read_text()
