"""The plain-YAML install (manifests/install/), rendered from the chart with `helm template`.

CRDs stay out: manifests/crds holds them (ferry_generate.crds), so regenerating a CRD does not
make this install stale.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ferry_generate.header import yaml_header

CHART = Path("charts/ferry")
OUTPUT_DIR = Path("manifests/install")
NAMESPACE = "ferry"
RELEASE = "ferry"


@dataclass(frozen=True)
class Variant:
    file: str
    values: tuple[str, ...]
    about: str
    sets: tuple[str, ...] = ()


VARIANTS = (
    Variant(
        "ferry.yaml",
        (),
        "Production shape (values.yaml): create the Secrets ferry-gateway (FERRY_API_KEY_PEPPER) and\n"
        "# ferry-redis (REDIS_URL) in namespace ferry, and point mlflow at your registry, before applying.",
    ),
    Variant(
        "ferry-dev.yaml",
        ("values-dev.yaml",),
        "Development (values-dev.yaml): in-cluster Redis and MLflow, gateway in dev mode. Not for prod.\n"
        "# Without MLflow's registry webhooks (the operator polls): they need a Secret and a\n"
        "# registration first, which `make up` makes (operator README, Registry webhooks).",
        # Applied as is, nothing creates the webhook's shared secret: the operator would not start.
        ("operator.webhook.enabled=false",),
    ),
)


def helm_binary() -> str:
    found = shutil.which("helm")
    if found:
        return found
    missing = "helm not found on PATH{}: run `make tools` (or pass --helm)"
    try:
        from ferry_devcluster import tools  # the project's own helm build (make tools)
    except ImportError as exc:
        raise SystemExit(missing.format("")) from exc
    built = tools.bin_path("helm")
    if not built.is_file():
        raise SystemExit(missing.format(f" nor at {built}"))
    return str(built)


def render(variant: Variant, root: Path = Path("."), helm: str | None = None) -> str:
    # No `helm test` hook: a plain apply would run the test pod once, as an ordinary Pod.
    cmd = [helm or helm_binary(), "template", RELEASE, str(root / CHART), "--namespace", NAMESPACE]
    cmd.append("--skip-tests")
    for v in variant.values:
        cmd += ["-f", str(root / CHART / v)]
    for kv in variant.sets:
        cmd += ["--set", kv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    header = (
        yaml_header("charts/ferry (helm template)") + f"# {variant.about}\n"
        "# The CRDs are not in here: `make generate` writes them into manifests/crds.\n"
        "#   kubectl apply --server-side -f manifests/crds\n"
        f"#   kubectl apply --server-side -f {OUTPUT_DIR / variant.file}\n"
        "---\n"
        f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
        "  labels:\n    app.kubernetes.io/part-of: ferry\n"
    )
    return header + out


def outputs(root: Path = Path("."), helm: str | None = None) -> dict[str, str]:
    return {v.file: render(v, root, helm) for v in VARIANTS}
