"""Container images built on this machine, without a registry or a Docker engine.

* ``localhost/ferry/pause`` - Kubernetes' own pause.c (from the pinned k8s.io/kubernetes module),
  compiled static: containerd's sandbox image.
* ``localhost/ferry/base`` - a minimal Debian bookworm root filesystem from debootstrap with
  Python 3.11: the base of every Ferry image.
* ``localhost/ferry/ferry-{operator,gateway,predictor}:dev`` - the root Containerfile (one build
  argument, COMPONENT, per component) and ``ferry-mlflow:dev`` - mlflow/Containerfile, built on
  that base with buildah (daemonless: vfs storage, chroot isolation, a
  private storage root under the cache), and ``localhost/ferry/redis:7`` (Debian's redis-server on
  the base) for the chart's dev Redis.

Each is an OCI archive cached under ``~/.cache/ferry/images`` keyed by what goes into it, and
imported into containerd with ``ctr images import``; kubelet never pulls (imagePullPolicy Never).
``chart_overrides()`` gives the ``helm --set`` pairs that point charts/ferry at them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import tools, versions
from .paths import REPO, cache_dir

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


# --- Ferry's own images (buildah) -------------------------------------------------------------

PREFIX = "localhost/ferry"
TAG = "dev"
# Archives kept per image, newest first: the current one and a couple superseded (another
# checkout or branch may still want them); older ones are deleted after each build.
KEEP_ARCHIVES = 3


@dataclass(frozen=True)
class FerryImage:
    """One image built from a Containerfile whose paths are relative to the repository root."""

    name: str
    containerfile: str
    # What the Containerfile COPYs (files or directories): the whole build context.
    sources: tuple[str, ...]
    tag: str = TAG
    # --build-arg pairs (the root Containerfile's COMPONENT); part of the content key.
    build_args: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        return f"{PREFIX}/{self.name}:{self.tag}"


def _component(component: str) -> FerryImage:
    """A component's image from the root Containerfile: COMPONENT picks it, and the build
    context is the workspace files and the two distributions' sources that Containerfile COPYs."""
    sources = (
        "pyproject.toml",
        "uv.lock",
        "common/pyproject.toml",
        "common/src",
        f"{component}/pyproject.toml",
        f"{component}/src",
    )
    return FerryImage(f"ferry-{component}", "Containerfile", sources, build_args=(("COMPONENT", component),))


OPERATOR = _component("operator")
GATEWAY = _component("gateway")
PREDICTOR = _component("predictor")
MLFLOW = FerryImage("ferry-mlflow", "mlflow/Containerfile", ())
REDIS = FerryImage("redis", "devcluster/src/ferry_devcluster/redis.Containerfile", (), tag="7")
FERRY_IMAGES = (OPERATOR, GATEWAY, PREDICTOR, MLFLOW, REDIS)


def _source_files(paths: tuple[str, ...]) -> list[str]:
    """Repo-relative files under ``paths``: tracked plus untracked-but-not-ignored, as they are on
    disk now (so uncommitted edits count), without deleted ones."""
    if not paths:
        return []
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = {f for f in out.split("\0") if f}
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but caches
        files = set()
        for p in paths:
            root = REPO / p
            found = [root] if root.is_file() else [f for f in root.rglob("*") if f.is_file()]
            files |= {
                str(f.relative_to(REPO)) for f in found if "__pycache__" not in f.parts and f.suffix != ".pyc"
            }
    return sorted(f for f in files if (REPO / f).is_file())


def _key(image: FerryImage, base: Path, files: list[str]) -> str:
    """A hash of everything that goes into ``image``: base, Containerfile, build context."""
    h = hashlib.sha256(f"{image.ref}\0{base.name}\0".encode())
    for name, value in image.build_args:
        h.update(f"--build-arg {name}={value}\0".encode())
    for rel in (image.containerfile, *files):
        h.update(rel.encode() + b"\0" + hashlib.sha256((REPO / rel).read_bytes()).digest())
    return h.hexdigest()[:12]


def archive_path(image: FerryImage) -> Path:
    """Where ``image``'s archive for the current sources is (or will be) cached."""
    files = _source_files(image.sources)
    return images_dir() / f"{image.name}-{_key(image, base_archive(), files)}.tar"


def _buildah_dir() -> Path:
    d = cache_dir() / "buildah"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _buildah() -> list[str]:
    """buildah on a private storage root: no daemon, no system configuration touched."""
    if shutil.which("buildah") is None:
        raise SystemExit("Ferry's images need buildah: apt-get install buildah (or `make deps`)")
    run = Path("/run")
    runroot = run / f"ferry-buildah-{os.getuid()}" if os.access(run, os.W_OK) else _buildah_dir() / "runroot"
    return [
        "buildah",
        "--root",
        str(_buildah_dir() / "root"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
    ]


@contextlib.contextmanager
def _buildah_lock() -> Iterator[None]:
    """One build at a time in the shared root, since each ends by removing everything in it."""
    with open(_buildah_dir() / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _host_trust_volumes() -> list[str]:
    """``--volume`` flags giving RUN steps this host's CA bundle and pip/uv settings.

    Where TLS is re-signed by a proxy, pip and uv inside the build only trust it through the
    host's certificates; each is mounted only when the host has it. uv reads /etc/uv/uv.toml.
    """
    flags: list[str] = []
    certs = Path("/etc/ssl/certs")
    if certs.is_dir():
        flags += ["--volume", f"{certs}:{certs}:ro"]
        uv_dir = _buildah_dir() / "uv-config"
        uv_dir.mkdir(exist_ok=True)
        (uv_dir / "uv.toml").write_text("system-certs = true\n")
        flags += ["--volume", f"{uv_dir}:/etc/uv:ro"]
    if Path("/etc/pip.conf").is_file():
        flags += ["--volume", "/etc/pip.conf:/etc/pip.conf:ro"]
    return flags


def _stage_context(image: FerryImage, files: list[str], into: Path) -> None:
    """A copy of exactly the hashed files, laid out as in the repository (the Containerfiles' COPY
    paths are relative to its root): what the key covers is all the build can see."""
    for rel in [*files, image.containerfile]:
        dest = into / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def build_image(image: FerryImage, force: bool = False) -> Path:
    """``image``'s OCI archive, built with buildah unless cached for the current sources."""
    base = base_archive()
    files = _source_files(image.sources)
    out = images_dir() / f"{image.name}-{_key(image, base, files)}.tar"
    if out.exists() and not force:
        log(f"{image.name} cached ({out.name}, {_mb(out.stat().st_size)})")
        return out
    t0 = time.monotonic()
    logfile = images_dir() / f"build-{image.name}.log"
    log(f"building {image.ref} from {image.containerfile} (log: {logfile})")
    buildah = _buildah()
    with _buildah_lock():
        if out.exists() and not force:  # another process built it while we waited for the lock
            log(f"{image.name} built meanwhile by another process ({out.name})")
            return out
        # Under the lock, any build context or partial archive left is from an interrupted build.
        partial = [p for i in FERRY_IMAGES for p in images_dir().glob(f"{i.name}-*.tmp")]
        for stale in [*images_dir().glob("ctx-*"), *partial]:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        ctx = tempfile.mkdtemp(dir=images_dir(), prefix=f"ctx-{image.name}-")
        tmp = out.with_suffix(".tmp")
        try:
            _stage_context(image, files, Path(ctx))
            _run_logged(
                [
                    *buildah,
                    "bud",
                    "--isolation",
                    "chroot",
                    "--layers=false",
                    "--format",
                    "oci",
                    *_host_trust_volumes(),
                    "--build-arg",
                    f"BASE=oci-archive:{base}",
                    *[f for name, value in image.build_args for f in ("--build-arg", f"{name}={value}")],
                    "-f",
                    str(Path(ctx) / image.containerfile),
                    "-t",
                    image.ref,
                    ctx,
                ],
                logfile,
                image.name,
            )
            tmp.unlink(missing_ok=True)
            _run_logged(
                [*buildah, "push", image.ref, f"oci-archive:{tmp}:{image.tag}"],
                logfile,
                image.name,
                append=True,
            )
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(ctx, ignore_errors=True)
            # vfs keeps a full copy of every layer: leave nothing behind between builds.
            subprocess.run([*buildah, "rm", "--all"], capture_output=True)
            subprocess.run([*buildah, "rmi", "--all", "--force"], capture_output=True)
    old = sorted(images_dir().glob(f"{image.name}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[KEEP_ARCHIVES:]:
        stale.unlink(missing_ok=True)
    log(f"{image.name} built in {time.monotonic() - t0:.0f}s, {_mb(out.stat().st_size)}")
    return out


_STEP = re.compile(r"(\[\d+/\d+\] )?STEP \d+/\d+: ")


def _run_logged(argv: list[str], logfile: Path, name: str, append: bool = False) -> None:
    """Run a build step, its whole output to ``logfile`` and its STEP lines to the terminal."""
    with open(logfile, "a" if append else "w") as logf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            logf.write(line)
            if _STEP.match(line):
                log(f"  {name}: {line.strip()[:150]}")
        rc = proc.wait()
    if rc != 0:
        tail = logfile.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name}: buildah {argv[7]} failed (exit {rc}); full log {logfile}:\n{tail}")


def ferry_images(force: bool = False) -> dict[str, Path]:
    """Ferry's images (and the dev Redis): ref -> OCI archive, building what is missing."""
    return {image.ref: build_image(image, force=force) for image in FERRY_IMAGES}


def cached_ferry_images() -> dict[str, Path]:
    """The Ferry images already built for the current sources (builds nothing)."""
    return {image.ref: p for image in FERRY_IMAGES if (p := archive_path(image)).exists()}


def real_node_ctr() -> list[str] | None:
    """``ctr`` pointed at the running real node's containerd, or None when it is not up."""
    from .cluster import REAL

    sock = REAL.state_dir / "containerd" / "containerd.sock"
    ctr = ["ctr", "--address", str(sock)]
    if not sock.exists() or subprocess.run([*ctr, "version"], capture_output=True).returncode != 0:
        return None
    return ctr


def content_ref(image: FerryImage) -> str:
    """``image``'s reference tagged by the content key (``...:dev-1a2b3c4d5e6f``).

    The chart is pointed at these, so a rebuilt image changes the pod templates and `helm
    upgrade` rolls the pods; a fixed tag would leave them running the old image.
    """
    key = archive_path(image).stem.rsplit("-", 1)[1]
    return f"{PREFIX}/{image.name}:{image.tag}-{key}"


def import_all(ctr: list[str], archives: dict[str, Path]) -> None:
    by_ref = {i.ref: i for i in FERRY_IMAGES}
    for ref, archive in archives.items():
        t0 = time.monotonic()
        import_into(ctr, ref, archive)
        if (image := by_ref.get(ref)) is not None:
            _run(*ctr, "-n", "k8s.io", "images", "tag", "--force", ref, content_ref(image))
        log(f"imported {ref} in {time.monotonic() - t0:.0f}s")


def import_ferry_images(force: bool = False) -> None:
    """Build what is missing, then import pause, base and Ferry's images into the real node."""
    archives = {**ensure_images(), **ferry_images(force=force)}
    ctr = real_node_ctr()
    if ctr is None:
        raise SystemExit("the real node is not up: `make start-cluster NODE=real` first")
    import_all(ctr, archives)


def chart_overrides() -> dict[str, str]:
    """``helm --set`` pairs pointing charts/ferry at these images (by content tag), never pulled."""
    sets = {"image.registry": PREFIX, "image.pullPolicy": "Never"}
    for key, image in (("operator", OPERATOR), ("gateway", GATEWAY), ("predictor", PREDICTOR)):
        # A repository with a "/" is taken as the full reference (the chart's ferry.image helper).
        repo, tag = content_ref(image).rsplit(":", 1)
        sets[f"{key}.image.repository"] = repo
        sets[f"{key}.image.tag"] = tag
    sets["mlflow.image"] = content_ref(MLFLOW)
    sets["redis.image"] = content_ref(REDIS)
    return sets
