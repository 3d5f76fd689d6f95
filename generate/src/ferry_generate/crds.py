"""The CRDs (manifests/crds/ and charts/ferry/crds/) and the ferry-mlflow runtime, from their models.

Both Ferry CRDs come out of ``ferry_common.crdschema``: ``structural()`` translates the
pydantic JSON Schema of ``ferry_operator.resource`` (ModelDeployment) and
``ferry_gateway.consumers.crd`` (Consumer) into structural schemas, and
``custom_resource_definition()`` wraps each. ``python -m ferry_generate`` writes them with every
other generated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ferry_common import contract, crdschema
from ferry_gateway.consumers.crd import consumer_crd
from ferry_operator import resource as r
from ferry_operator.builders import serving_runtime

from ferry_generate.header import yaml_header

JSON = dict[str, Any]


LABELS = {contract.LABEL_PART_OF: contract.PART_OF}


def modeldeployment_schema() -> JSON:
    spec = crdschema.structural(r.ModelDeploymentSpec.model_json_schema())
    status = crdschema.structural(r.ModelDeploymentStatus.model_json_schema())
    spec.pop("description", None)
    status.pop("description", None)
    status["description"] = "Written only by the operator, through the status subresource."
    return crdschema.resource_schema(
        "A model from the MLflow registry served on KServe with blue-green rollouts.",
        spec,
        status,
        **{
            "x-kubernetes-validations": [
                r.cel(
                    f"size(self.metadata.name) <= {r.MAX_NAME_LENGTH}"
                    f" && self.metadata.name.matches('{r.DNS1035}')",
                    f"metadata.name must be a DNS-1035 label of at most {r.MAX_NAME_LENGTH} characters "
                    "(lowercase letters, digits, '-'; starting with a letter) so that "
                    "'<name>-green-predictor' is a valid Service name",
                )
            ]
        },
    )


PRINTER_COLUMNS: list[JSON] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Version", "type": "string", "jsonPath": ".status.active.modelVersion"},
    {"name": "Color", "type": "string", "jsonPath": ".status.active.color"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Preview", "type": "string", "jsonPath": ".status.preview.modelVersion", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def modeldeployment_crd() -> JSON:
    return crdschema.custom_resource_definition(
        contract.MODEL_DEPLOYMENT,
        schema=modeldeployment_schema(),
        printer_columns=PRINTER_COLUMNS,
        status_subresource=True,
        labels=LABELS,
    )


def _peering_crd(kind: str, plural: str, scope: str) -> JSON:
    """kopf's peering resources, which the operator's leader election (``--peering``) uses."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev", "labels": dict(LABELS)},
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


def documents() -> dict[str, JSON]:
    """File name -> CRD, for every CRD Ferry ships."""
    return {
        f"{contract.MODEL_DEPLOYMENT.crd_name}.yaml": modeldeployment_crd(),
        "clusterkopfpeerings.kopf.dev.yaml": _peering_crd(
            "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"
        ),
        f"{contract.CONSUMER.crd_name}.yaml": consumer_crd(),
    }


class _NoAliases(yaml.SafeDumper):
    # Anchors (&id001) are legal YAML but unreadable in a CRD a human reviews.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=100)


SOURCES = {
    f"{contract.MODEL_DEPLOYMENT.crd_name}.yaml": "ferry_operator.resource",
    "clusterkopfpeerings.kopf.dev.yaml": "ferry_generate.crds",
    f"{contract.CONSUMER.crd_name}.yaml": "ferry_gateway.consumers.crd",
}


def render(name: str, doc: JSON) -> str:
    return yaml_header(SOURCES[name]) + dump(doc)


CRD_DIRS = (Path("manifests/crds"), Path("charts/ferry/crds"))
RUNTIME_OUTPUT = Path("manifests/runtime/ferry-mlflow.yaml")
# The chart reads the runtime's spec from this file and sets only the image, so the chart and
# the plain manifests cannot drift from ferry_common.runtime.
CHART_RUNTIME_OUTPUT = Path("charts/ferry/files/predictor-runtime-spec.yaml")


def runtime_text() -> str:
    return yaml_header("ferry_common.runtime") + dump(serving_runtime())


def chart_runtime_text() -> str:
    return yaml_header("ferry_common.runtime") + dump(serving_runtime(image="IMAGE-SET-BY-THE-CHART")["spec"])


def outputs() -> dict[Path, str]:
    """Path (from the repository root) -> content, for the CRDs and the runtime manifests."""
    rendered = {name: render(name, doc) for name, doc in documents().items()}
    files = {out / name: text for out in CRD_DIRS for name, text in rendered.items()}
    files[RUNTIME_OUTPUT] = runtime_text()
    files[CHART_RUNTIME_OUTPUT] = chart_runtime_text()
    return files
