"""The digest of an MLflow model's artifacts: what the operator records for a version and a
predictor checks before it loads (unpickles) anything.

Both sides must arrive at the same string from different places: the operator from the artifact
store, file by file over MLflow's artifact proxy (it has no mlflow client), the predictor from the
directory MLflow downloaded. So the digest is defined over what both can see, the files and
nothing else: sha256 over the sorted list of ``[relative POSIX path, size, sha256 of the file]``
as compact JSON, written ``sha256:<hex>``. Directories, timestamps and modes do not count.

MLflow adds one file of its own on download, ``registered_model_meta`` (the registered name and
version, written next to ``MLmodel`` by ``ModelsArtifactRepository``); it is not in the store, so
it is left out at the root. Anything else that differs (a byte, a name, a file more or less)
gives another digest.

``digest`` is pure (the operator feeds it hashes it streamed); ``directory_digest`` reads a tree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sha256:"
PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
# Written by MLflow's client on download, never part of the stored artifacts (see above).
SKIPPED = frozenset({"registered_model_meta"})
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One artifact file: its path relative to the model's root (``/``-separated), size, sha256."""

    path: str
    size: int
    sha256: str


def digest(entries: Iterable[Entry]) -> str:
    """``sha256:<hex>`` over the entries in path order; ``SKIPPED`` files at the root are left out."""
    rows = sorted(
        ([e.path.strip("/"), e.size, e.sha256] for e in entries if e.path.strip("/") not in SKIPPED),
        key=lambda row: str(row[0]),
    )
    canonical = json.dumps(rows, separators=(",", ":"), ensure_ascii=True).encode()
    return PREFIX + hashlib.sha256(canonical).hexdigest()


def file_entry(root: Path, path: Path) -> Entry:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Entry(path.relative_to(root).as_posix(), size, h.hexdigest())


def directory_digest(root: Path) -> str:
    """The digest of every regular file under ``root`` (symbolic links are followed, as a loader would)."""
    return digest(file_entry(root, p) for p in sorted(root.rglob("*")) if p.is_file())


def valid(value: str) -> bool:
    """Whether ``value`` is a digest in this module's format (lower-case hex)."""
    return PATTERN.fullmatch(value) is not None
