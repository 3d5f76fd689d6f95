"""JSON Schema (as pydantic writes it) -> Kubernetes structural schema, and the CRD around it.

The one translator for every Ferry CRD (ModelDeployment, Consumer). Pure functions over plain
dicts, standard library only, so nothing here needs pydantic.

A structural schema differs from pydantic's JSON Schema in a few ways:

- no ``$ref``/``$defs``: references are inlined (sibling keys such as ``description`` or
  ``default`` win over the definition's);
- no ``title``, no ``const`` (``enum: [x]`` instead), and ``additionalProperties`` only as a
  schema for map values (never ``false`` next to ``properties``: the API server prunes unknown
  fields anyway);
- an object with neither ``properties`` nor ``additionalProperties`` must say
  ``x-kubernetes-preserve-unknown-fields``;
- a union with null (``X | None``) is not a union: Kubernetes says "unset" by absence. The
  branch becomes plain ``X``; a ``null`` default is dropped. ``nullable: true`` is written only
  where null means something absence does not: the field has a non-null default (null then
  overrides it instead of being defaulted) or no default at all (explicit null is a value). Without
  ``nullable`` the API server prunes a null before defaulting, which is what ``None`` means to the
  pydantic model (absent = ``None``);
- int-or-string (a Kubernetes quantity) is the one union Kubernetes allows: a node marked
  ``x-ferry-quantity`` (``int | Annotated[str, pattern]``) becomes
  ``anyOf: [integer, string]`` with ``x-kubernetes-int-or-string`` and the string branch's pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ferry_common.contract import GROUP, VERSION, Resource

JSON = dict[str, Any]

QUANTITY_MARKER = "x-ferry-quantity"
_DROP = frozenset({"title", "additionalProperties", QUANTITY_MARKER})
_NO_DEFAULT = object()


def structural(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> JSON:
    """Translate a pydantic JSON Schema node (and its children) into a structural schema node."""
    defs = defs if defs is not None else schema.get("$defs", {})
    node = dict(schema)
    node.pop("$defs", None)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # sibling keys (default, description) win over the definition's
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            with_null = len(node.pop("anyOf")) > 1
            default = node.get("default", _NO_DEFAULT)
            if default is None:
                node.pop("default")
            node = {**structural(branches[0], defs), **node}
            if with_null and default is not None:  # null overrides a default, or is a required value
                node["nullable"] = True
    if node.get(QUANTITY_MARKER):
        return int_or_string(_string_pattern(node))
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        out["additionalProperties"] = structural(additional, defs)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def int_or_string(pattern: str | None) -> JSON:
    """Kubernetes' int-or-string (as resource.Quantity is), the string constrained by ``pattern``."""
    out: JSON = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if pattern is not None:
        out["pattern"] = pattern
    out["x-kubernetes-int-or-string"] = True
    return out


def _string_pattern(node: Mapping[str, Any]) -> str | None:
    for branch in node.get("anyOf", ()):
        if branch.get("type") == "string" and "pattern" in branch:
            pattern: str = branch["pattern"]
            return pattern
    found = node.get("pattern")
    return found if isinstance(found, str) else None


def custom_resource_definition(
    resource: Resource,
    *,
    schema: JSON,
    printer_columns: Sequence[JSON] = (),
    status_subresource: bool = False,
    labels: Mapping[str, str] | None = None,
    categories: Sequence[str] = ("ferry",),
) -> JSON:
    """The CustomResourceDefinition of ``resource``: one namespaced version (Ferry's) with ``schema``."""
    served: JSON = {"name": VERSION, "served": True, "storage": True}
    if status_subresource:
        served["subresources"] = {"status": {}}
    if printer_columns:
        served["additionalPrinterColumns"] = list(printer_columns)
    served["schema"] = {"openAPIV3Schema": schema}
    metadata: JSON = {"name": resource.crd_name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": resource.list_kind,
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": list(categories),
            },
            "versions": [served],
        },
    }


def resource_schema(description: str, spec: JSON, status: JSON | None = None, **extra: Any) -> JSON:
    """The top-level openAPIV3Schema of a custom resource: apiVersion, kind, metadata, spec (required)."""
    properties: JSON = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": properties,
        **extra,
    }
