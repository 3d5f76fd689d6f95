"""Generate the CRDs (manifests/crds/ and charts/ferry/crds/) from the typed models.

``python -m ferry_operator.crdgen`` writes them; ``--check`` exits 1 when the committed files are
stale. Pydantic's JSON Schema is close to, but not, a Kubernetes *structural* schema: no
``$ref``, no ``anyOf`` with null for optional fields, no ``additionalProperties: false`` next to
``properties``, and quantities are int-or-string. ``structural()`` performs that translation.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ferry_operator import resource as r
from ferry_operator.builders import serving_runtime

JSON = dict[str, Any]

_DROP = {"title", "additionalProperties", "x-ferry-quantity"}


def structural(schema: JSON, defs: JSON | None = None) -> JSON:
    """Translate a pydantic JSON Schema node (and its children) into a structural schema node."""
    defs = defs if defs is not None else schema.get("$defs", {})
    node = dict(schema)
    node.pop("$defs", None)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # sibling keys (default, description) win over the definition's
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:  # Optional[X]: absence, not null, is how Kubernetes says "unset"
            node.pop("anyOf")
            if node.get("default", 0) is None:
                node.pop("default")
            node = {**structural(branches[0], defs), **node}
    if node.get("x-ferry-quantity"):
        return _quantity()
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        else:
            out[key] = value
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = structural(additional, defs)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _quantity() -> JSON:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": r.QUANTITY,
        "x-kubernetes-int-or-string": True,
    }


def modeldeployment_schema() -> JSON:
    spec = structural(r.ModelDeploymentSpec.model_json_schema())
    status = structural(r.ModelDeploymentStatus.model_json_schema())
    spec.pop("description", None)
    status.pop("description", None)
    status["description"] = "Written only by the operator, through the status subresource."
    return {
        "type": "object",
        "description": "A model from the MLflow registry served on KServe with blue-green rollouts.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [
            r.cel(
                f"size(self.metadata.name) <= {r.MAX_NAME_LENGTH}"
                f" && self.metadata.name.matches('{r.DNS1035}')",
                f"metadata.name must be a DNS-1035 label of at most {r.MAX_NAME_LENGTH} characters "
                "(lowercase letters, digits, '-'; starting with a letter) so that "
                "'<name>-green-predictor' is a valid Service name",
            )
        ],
    }


PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Version", "type": "string", "jsonPath": ".status.active.modelVersion"},
    {"name": "Color", "type": "string", "jsonPath": ".status.active.color"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Preview", "type": "string", "jsonPath": ".status.preview.modelVersion", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def modeldeployment_crd() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{r.PLURAL}.{r.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "ferry"},
        },
        "spec": {
            "group": r.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": r.KIND,
                "listKind": f"{r.KIND}List",
                "plural": r.PLURAL,
                "singular": r.SINGULAR,
                "shortNames": r.SHORT_NAMES,
                "categories": ["ferry"],
            },
            "versions": [
                {
                    "name": r.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": modeldeployment_schema()},
                }
            ],
        },
    }


def _peering_crd(kind: str, plural: str, scope: str) -> JSON:
    """kopf's peering resources, which the operator's leader election (``--peering``) uses."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev", "labels": {"app.kubernetes.io/part-of": "ferry"}},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def _consumer_crd() -> JSON | None:
    """The gateway's Consumer CRD, when the gateway distribution defines it."""
    try:
        module = importlib.import_module("ferry_gateway.consumer_crd")
    except ImportError:
        return None
    build: Callable[[], JSON] = module.consumer_crd
    return build()


def documents() -> dict[str, JSON]:
    """File name -> CRD, for every CRD Ferry ships."""
    docs = {
        f"{r.PLURAL}.{r.GROUP}.yaml": modeldeployment_crd(),
        "clusterkopfpeerings.kopf.dev.yaml": _peering_crd(
            "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"
        ),
    }
    consumer = _consumer_crd()
    if consumer is not None:
        docs[f"{consumer['metadata']['name']}.yaml"] = consumer
    return docs


HEADER = "# Generated by `make manifests` from ferry_operator.resource; do not edit by hand.\n"


class _NoAliases(yaml.SafeDumper):
    # Anchors (&id001) are legal YAML but unreadable in a CRD a human reviews.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(doc: JSON) -> str:
    return HEADER + yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=100)


DEFAULT_OUTPUTS = (Path("manifests/crds"), Path("charts/ferry/crds"))
RUNTIME_OUTPUT = Path("manifests/runtime/ferry-mlflow.yaml")
# The chart reads the runtime's spec from this file and sets only the image, so the chart and
# the plain manifests cannot drift from ferry_common.runtime.
CHART_RUNTIME_OUTPUT = Path("charts/ferry/files/predictor-runtime-spec.yaml")
RUNTIME_HEADER = HEADER.replace("ferry_operator.resource", "ferry_common.runtime")


def runtime_text() -> str:
    return RUNTIME_HEADER + yaml.dump(serving_runtime(), Dumper=_NoAliases, sort_keys=False, width=100)


def chart_runtime_text() -> str:
    return RUNTIME_HEADER + yaml.dump(
        serving_runtime(image="IMAGE-SET-BY-THE-CHART")["spec"], Dumper=_NoAliases, sort_keys=False, width=100
    )


def _generated_files() -> dict[Path, str]:
    return {RUNTIME_OUTPUT: runtime_text(), CHART_RUNTIME_OUTPUT: chart_runtime_text()}


def stale(outputs: tuple[Path, ...] = DEFAULT_OUTPUTS, root: Path = Path(".")) -> list[str]:
    """Files missing, different, or left over from a CRD no longer generated."""
    problems = []
    expected = {name: render(doc) for name, doc in documents().items()}
    for out in outputs:
        for name, text in expected.items():
            path = root / out / name
            if not path.exists() or path.read_text() != text:
                problems.append(str(out / name))
        for path in sorted((root / out).glob("*.yaml")):
            if path.name not in expected:
                problems.append(f"{out / path.name} (no longer generated)")
    for rel, text in _generated_files().items():
        path = root / rel
        if not path.exists() or path.read_text() != text:
            problems.append(str(rel))
    return problems


def write(outputs: tuple[Path, ...] = DEFAULT_OUTPUTS, root: Path = Path(".")) -> list[Path]:
    written = []
    for out in outputs:
        (root / out).mkdir(parents=True, exist_ok=True)
        for name, doc in documents().items():
            path = root / out / name
            path.write_text(render(doc))
            written.append(path)
    for rel, text in _generated_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferry_operator.crdgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed CRDs differ from the models"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(root=args.root)
        for p in problems:
            print(f"stale: {p}", file=sys.stderr)
        if problems:
            print("run `make manifests` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(root=args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
