"""Build the local cluster's binaries from their published Go modules, cached by version.

Nothing third-party enters the checkout: each tool is built in a throwaway module under the
cache directory, and the files we need from a module (CRDs, kwok stages) are read from the Go
module cache at run time.

Kubernetes' own go.mod replaces its staging modules with ``./staging/...`` paths, so it cannot
be consumed directly; the throwaway module re-points each staging module at its published
``v0.N.P`` twin, derived from the release's go.mod rather than a hand-kept list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import versions
from .paths import cache_dir

GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}


def log(msg: str) -> None:
    print(f"[tools {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def go(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, **GO_ENV, **(extra_env or {})}
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"go {' '.join(args[:3])} ... failed in {cwd} (exit {proc.returncode})")
    return proc.stdout


def module_dir(module: str, version: str) -> Path:
    """Download a module (if needed) into the Go module cache and return its directory."""
    out = go(["mod", "download", "-json", f"{module}@{version}"], cwd=Path.cwd())
    return Path(json.loads(out)["Dir"])


def module_gomod(module: str, version: str) -> str:
    out = go(["mod", "download", "-json", f"{module}@{version}"], cwd=Path.cwd())
    return Path(json.loads(out)["GoMod"]).read_text()


@dataclass(frozen=True)
class Tool:
    """One cache entry: a set of binaries built together from one throwaway module."""

    key: str
    binaries: tuple[str, ...]

    @property
    def bindir(self) -> Path:
        return cache_dir() / "tools" / self.key / "bin"

    def built(self) -> bool:
        return all((self.bindir / b).is_file() for b in self.binaries)


def _staging_replaces(kubernetes_gomod: str, staging_version: str) -> list[str]:
    mods = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)
    return [f"{m} => {m} {staging_version}" for m in mods]


def _write_module(
    workdir: Path, name: str, requires: Iterable[str], replaces: Iterable[str], excludes: Iterable[str] = ()
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [f"module ferry.local/{name}", "", "go 1.26.0", ""]
    lines += [f"require {r}" for r in requires]
    lines += [f"replace {r}" for r in replaces]
    lines += [f"exclude {e}" for e in excludes]
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    # A file that imports nothing keeps `go mod tidy` from dropping our requirements; the
    # command packages are named explicitly at build time instead.
    (workdir / "tools.go").write_text(f"package {name.replace('-', '')}\n")


K8S_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
)
CONTROL_PLANE = Tool(f"control-plane-{versions.KUBERNETES}-etcd-{versions.ETCD}", (*K8S_COMMANDS, "etcd"))
KWOK = Tool(f"kwok-{versions.KWOK}", ("kwok",))
HELM = Tool(f"helm-{versions.HELM}", ("helm",))
KSERVE = Tool(f"kserve-{versions.KSERVE}", ("kserve-manager",))
COREDNS = Tool(f"coredns-{versions.COREDNS}", ("coredns",))
METRICS_SERVER = Tool(f"metrics-server-{versions.METRICS_SERVER}", ("metrics-server",))
KUBE_ROUTER = Tool(f"kube-router-{versions.KUBE_ROUTER}", ("kube-router",))
ALL = (CONTROL_PLANE, KWOK, HELM, KSERVE, COREDNS, METRICS_SERVER, KUBE_ROUTER)


def build_control_plane() -> None:
    """Kubernetes' three control-plane commands, kubectl and etcd in one Go invocation.

    Building them together lets the compiler share the large common dependency graph (grpc,
    protobuf, apimachinery) instead of compiling it once per binary.
    """
    k8s = versions.KUBERNETES
    staging = "v0" + k8s[2:]  # v1.36.3 -> v0.36.3
    major, minor = k8s[1:].split(".")[:2]
    work = cache_dir() / "build" / CONTROL_PLANE.key
    etcd_gomod = module_gomod("go.etcd.io/etcd/server/v3", versions.ETCD)
    etcd_replaces = [
        f"{m} => {m} {versions.ETCD}"
        for m in re.findall(r"^\s*(go\.etcd\.io/etcd/[\w./-]+)\s+=>\s+\.\./", etcd_gomod, re.M)
    ]
    _write_module(
        work,
        "control-plane",
        requires=[f"k8s.io/kubernetes {k8s}", f"go.etcd.io/etcd/server/v3 {versions.ETCD}"],
        replaces=_staging_replaces(module_gomod("k8s.io/kubernetes", k8s), staging) + etcd_replaces,
    )
    log("resolving Kubernetes + etcd modules (first run downloads ~1 GB)")
    go(
        [
            "get",
            *[f"k8s.io/kubernetes/cmd/{c}@{k8s}" for c in K8S_COMMANDS],
            f"go.etcd.io/etcd/server/v3@{versions.ETCD}",
        ],
        work,
    )
    ldflags = " ".join(
        [
            f"-X k8s.io/component-base/version.gitVersion={k8s}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            f"-X k8s.io/client-go/pkg/version.gitVersion={k8s}",
            "-s -w",
        ]
    )
    out = CONTROL_PLANE.bindir
    out.mkdir(parents=True, exist_ok=True)
    log(f"compiling {', '.join(K8S_COMMANDS)}, etcd")
    go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(out) + "/",
            *[f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS],
            "go.etcd.io/etcd/server/v3",
        ],
        work,
    )
    # The etcd server's main package lives in a directory called "server".
    (out / "server").replace(out / "etcd")


def _go_install(tool: Tool, package: str, version: str, ldflags: str = "") -> None:
    """For modules without replace directives, `go install pkg@version` is the whole build."""
    tool.bindir.mkdir(parents=True, exist_ok=True)
    go(
        ["install", "-trimpath", f"-ldflags=-s -w {ldflags}".strip(), f"{package}@{version}"],
        Path.cwd(),
        {"GOBIN": str(tool.bindir)},
    )


def build_kwok() -> None:
    _go_install(KWOK, "sigs.k8s.io/kwok/cmd/kwok", versions.KWOK)


def build_coredns() -> None:
    _go_install(COREDNS, "github.com/coredns/coredns", versions.COREDNS)


def build_metrics_server() -> None:
    _go_install(METRICS_SERVER, "sigs.k8s.io/metrics-server/cmd/metrics-server", versions.METRICS_SERVER)


def build_kube_router() -> None:
    module = "github.com/cloudnativelabs/kube-router/v2"
    _go_install(
        KUBE_ROUTER,
        f"{module}/cmd/kube-router",
        versions.KUBE_ROUTER,
        f"-X {module}/pkg/version.Version={versions.KUBE_ROUTER}",
    )


def build_helm() -> None:
    work = cache_dir() / "build" / HELM.key
    _write_module(work, "helmbuild", requires=[f"helm.sh/helm/v3 {versions.HELM}"], replaces=[])
    go(["get", f"helm.sh/helm/v3/cmd/helm@{versions.HELM}"], work)
    minor = versions.KUBERNETES.split(".")[1]
    ldflags = " ".join(
        [
            f"-X helm.sh/helm/v3/internal/version.version={versions.HELM}",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor}",
            "-s -w",
        ]
    )
    HELM.bindir.mkdir(parents=True, exist_ok=True)
    go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(HELM.bindir / "helm"),
            "helm.sh/helm/v3/cmd/helm",
        ],
        work,
    )


def build_kserve() -> None:
    work = cache_dir() / "build" / KSERVE.key
    gomod = module_gomod("github.com/kserve/kserve", versions.KSERVE)
    # Repeat KServe's own replace directives: they pin controller-runtime and friends to the
    # versions its code compiles against.
    replaces = re.findall(r"^replace\s+(\S+\s+=>\s+\S+\s+\S+)", gomod, re.M)
    _write_module(
        work,
        "kservebuild",
        requires=[f"github.com/kserve/kserve {versions.KSERVE}"],
        replaces=replaces,
        excludes=versions.KSERVE_EXCLUDES,
    )
    go(["get", f"github.com/kserve/kserve/cmd/manager@{versions.KSERVE}"], work)
    KSERVE.bindir.mkdir(parents=True, exist_ok=True)
    go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(KSERVE.bindir / "kserve-manager"),
            "github.com/kserve/kserve/cmd/manager",
        ],
        work,
    )


BUILDERS = {
    CONTROL_PLANE: build_control_plane,
    KWOK: build_kwok,
    HELM: build_helm,
    KSERVE: build_kserve,
    COREDNS: build_coredns,
    METRICS_SERVER: build_metrics_server,
    KUBE_ROUTER: build_kube_router,
}


def kserve_dir() -> Path:
    """The KServe module source, for its CRDs and reference configuration."""
    return module_dir("github.com/kserve/kserve", versions.KSERVE)


def kwok_dir() -> Path:
    """The kwok module source, for its stage definitions."""
    return module_dir("sigs.k8s.io/kwok", versions.KWOK)


def ensure_tools(force: bool = False) -> dict[str, float]:
    """Build whatever is missing; return seconds spent per tool (0 for cache hits)."""
    if shutil.which("go") is None:
        raise SystemExit("go is not on PATH: install Go 1.26 (see README)")
    timings: dict[str, float] = {}
    total = time.monotonic()
    for i, tool in enumerate(ALL, 1):
        if tool.built() and not force:
            log(f"[{i}/{len(ALL)}] {tool.key}: cached in {tool.bindir}")
            timings[tool.key] = 0.0
            continue
        log(f"[{i}/{len(ALL)}] {tool.key}: building ...")
        t0 = time.monotonic()
        BUILDERS[tool]()
        timings[tool.key] = time.monotonic() - t0
        missing = [b for b in tool.binaries if not (tool.bindir / b).is_file()]
        if missing:
            raise SystemExit(f"{tool.key}: build finished but {missing} missing in {tool.bindir}")
        log(f"[{i}/{len(ALL)}] {tool.key}: built in {timings[tool.key]:.0f}s")
    log(f"all tools ready in {time.monotonic() - total:.0f}s")
    return timings


def bin_path(name: str) -> Path:
    for tool in ALL:
        if name in tool.binaries:
            return tool.bindir / name
    raise KeyError(name)
