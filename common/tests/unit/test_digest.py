"""The artifact digest: one string for one set of files, whatever the order they are listed in,
and another for any change a tampered artifact store could make."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from ferry_common.digest import SKIPPED, Entry, digest, directory_digest, valid
from hypothesis import given
from hypothesis import strategies as st


def entry(path: str, data: bytes) -> Entry:
    return Entry(path, len(data), hashlib.sha256(data).hexdigest())


MODEL = {
    "MLmodel": b"flavors:\n  sklearn: {}\n",
    "model.pkl": b"\x80\x04pickled",
    "input_example.json": b'{"columns": ["a"], "data": [[1]]}',
    "extra_files/ferry_constraints.json": b"{}",
}


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@given(st.permutations(list(MODEL.items())))
def test_order_of_listing_does_not_matter(items: list[tuple[str, bytes]]) -> None:
    assert digest(entry(p, d) for p, d in items) == digest(entry(p, d) for p, d in MODEL.items())


def test_format_is_stable() -> None:
    got = digest(entry(p, d) for p, d in MODEL.items())
    assert valid(got) and got.startswith("sha256:")
    # Pinned: the operator and predictors of different releases must keep agreeing.
    assert digest([]) == "sha256:" + hashlib.sha256(b"[]").hexdigest()
    assert digest([Entry("a", 1, "00")]) == "sha256:" + hashlib.sha256(b'[["a",1,"00"]]').hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: {**f, "model.pkl": b"\x80\x04pickleD"}, id="one-byte"),
        pytest.param(lambda f: {**f, "model.pkl": f["model.pkl"] + b"\n"}, id="appended"),
        pytest.param(
            lambda f: {("model2.pkl" if k == "model.pkl" else k): v for k, v in f.items()}, id="renamed"
        ),
        pytest.param(lambda f: {**f, "python_env.yaml": b""}, id="empty-file-added"),
        pytest.param(lambda f: {**f, "code/evil.py": b"import os"}, id="nested-file-added"),
        pytest.param(lambda f: {k: v for k, v in f.items() if k != "input_example.json"}, id="removed"),
        pytest.param(
            lambda f: {**f, "sub/registered_model_meta": b"x"}, id="meta-name-below-the-root-counts"
        ),
    ],
)
def test_any_change_gives_another_digest(
    tmp_path: Path, change: Callable[[dict[str, bytes]], dict[str, bytes]]
) -> None:
    before = directory_digest(write(tmp_path / "a", MODEL))
    after = directory_digest(write(tmp_path / "b", change(MODEL)))
    assert after != before


def test_mlflow_download_marker_is_left_out(tmp_path: Path) -> None:
    stored = directory_digest(write(tmp_path / "store", MODEL))
    (meta,) = SKIPPED
    downloaded = write(tmp_path / "download", {**MODEL, meta: b"model_name: m\nmodel_version: '3'\n"})
    assert directory_digest(downloaded) == stored


def test_directory_and_listed_entries_agree(tmp_path: Path) -> None:
    assert directory_digest(write(tmp_path, MODEL)) == digest(entry(p, d) for p, d in MODEL.items())


def test_empty_directories_do_not_count(tmp_path: Path) -> None:
    root = write(tmp_path / "m", MODEL)
    before = directory_digest(root)
    (root / "empty").mkdir()
    assert directory_digest(root) == before


@pytest.mark.parametrize(
    "value", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64, "a" * 64, ""]
)
def test_malformed_digests_are_not_valid(value: str) -> None:
    assert not valid(value)
