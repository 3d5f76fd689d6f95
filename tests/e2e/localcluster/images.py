"""Container images built on this machine, without a registry or a Docker engine.

* ``localhost/ferry/pause`` - Kubernetes' own pause.c (from the pinned k8s.io/kubernetes module),
  compiled static: containerd's sandbox image.
* ``localhost/ferry/base`` - a minimal Debian bookworm root filesystem from debootstrap with
  Python 3.11: the base of every Ferry image.

Each is an OCI archive cached under ``~/.cache/ferry/images`` keyed by what goes into it, and
imported into containerd with ``ctr images import``; kubelet never pulls (imagePullPolicy Never).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from . import tools, versions
from .paths import cache_dir

PAUSE = "localhost/ferry/pause:3.10"
BASE = "localhost/ferry/base:bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "tzdata")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def images_dir() -> Path:
    d = cache_dir() / "images"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _run(*argv: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _oci_archive(rootfs: Path, ref: str, out: Path, entrypoint: str | None = None) -> None:
    """Pack a directory as a single-layer OCI image archive tagged ``ref``'s tag."""
    tag = ref.rsplit(":", 1)[1]
    layout = out.with_suffix(".oci")
    shutil.rmtree(layout, ignore_errors=True)
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:{tag}")
    _run("umoci", "insert", "--rootless", "--image", f"{layout}:{tag}", str(rootfs), "/")
    if entrypoint:
        _run("umoci", "config", "--image", f"{layout}:{tag}", f"--config.entrypoint={entrypoint}")
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for child in sorted(layout.iterdir()):
            tar.add(child, arcname=child.name)
    tmp.replace(out)
    shutil.rmtree(layout, ignore_errors=True)


def pause_archive() -> Path:
    out = images_dir() / f"pause-{versions.KUBERNETES}.tar"
    if out.exists():
        return out
    t0 = time.monotonic()
    src = tools.module_dir("k8s.io/kubernetes", versions.KUBERNETES) / "build" / "pause" / "linux" / "pause.c"
    work = images_dir() / "build-pause"
    shutil.rmtree(work, ignore_errors=True)
    (work / "rootfs").mkdir(parents=True)
    _run("gcc", "-Os", "-static", "-DVERSION=3.10", "-o", str(work / "rootfs" / "pause"), str(src))
    _oci_archive(work / "rootfs", PAUSE, out, entrypoint="/pause")
    shutil.rmtree(work, ignore_errors=True)
    log(f"pause image built in {time.monotonic() - t0:.0f}s")
    return out


def base_archive() -> Path:
    key = hashlib.sha256(" ".join(BASE_PACKAGES).encode()).hexdigest()[:10]
    out = images_dir() / f"base-bookworm-{key}.tar"
    if out.exists():
        return out
    t0 = time.monotonic()
    work = images_dir() / "build-base"
    shutil.rmtree(work, ignore_errors=True)
    log("debootstrap bookworm (minbase + python3), about 3 minutes the first time")
    _run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        "bookworm",
        str(work / "rootfs"),
        DEBIAN_MIRROR,
    )
    # Nothing in an image runs apt; its lists and caches only add size.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(work / "rootfs" / junk, ignore_errors=True)
    _oci_archive(work / "rootfs", BASE, out)
    shutil.rmtree(work, ignore_errors=True)
    log(f"base image built in {time.monotonic() - t0:.0f}s")
    return out


def ensure_images() -> dict[str, Path]:
    return {PAUSE: pause_archive(), BASE: base_archive()}


def import_into(ctr: list[str], ref: str, archive: Path) -> None:
    """Import an archive into containerd's k8s.io namespace under ``ref``."""
    _run(*ctr, "-n", "k8s.io", "images", "import", f"--base-name={ref.rsplit(':', 1)[0]}", str(archive))
