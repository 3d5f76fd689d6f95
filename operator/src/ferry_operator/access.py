"""Which namespaces may deploy which registered models: the tenant boundary on the registry (pure).

The operator resolves every model with its own registry credentials, so without a boundary a
ModelDeployment in any namespace could deploy any registered model, and read in its status which
models, aliases and versions exist. ``FERRY_MODEL_ACCESS`` maps namespaces to the registered-model
names they may deploy, as shell-style patterns (``fnmatch``, case-sensitive like MLflow's names):

    {"ml": ["*"], "team-a": ["team-a-*", "shared-*"], "*": ["{namespace}-*"]}

``"*"`` as a key applies to every namespace, on top of the namespace's own entry; ``{namespace}``
in a pattern stands for the ModelDeployment's namespace (models named after their team). A
namespace no entry names may deploy nothing. Unset (None) means no boundary: every namespace may
deploy every model (development, ``make run-operator``); the chart always sets it.

The decision reads only the namespace and the model's name, never the registry, and runs before
the registry is asked: a refusal reads the same, and costs the same, whether the model exists or
not, so a refused namespace learns nothing about the registry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

ANY_NAMESPACE = "*"
NAMESPACE_PLACEHOLDER = "{namespace}"
REASON = "ModelNotAllowed"
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class ModelAccess:
    """Namespace (or ``*``) -> the registered-model name patterns it may deploy."""

    rules: Mapping[str, tuple[str, ...]]

    def patterns(self, namespace: str) -> tuple[str, ...]:
        """Every pattern that applies in ``namespace``, with ``{namespace}`` filled in."""
        own = self.rules.get(namespace, ())
        every = self.rules.get(ANY_NAMESPACE, ()) if namespace != ANY_NAMESPACE else ()
        return tuple(p.replace(NAMESPACE_PLACEHOLDER, namespace) for p in (*own, *every))


def allowed(access: ModelAccess | None, namespace: str, model: str) -> bool:
    """May a ModelDeployment in ``namespace`` deploy the registered model ``model``?"""
    if access is None:
        return True
    return any(fnmatchcase(model, p) for p in access.patterns(namespace))


def refusal(namespace: str, model: str) -> str:
    """The one message for a refused model: built from the request alone, never from the registry."""
    return (
        f"namespace {namespace} may not deploy registered model {model!r}: the operator's model "
        f"access (FERRY_MODEL_ACCESS; chart value operator.modelAccess) allows this namespace no "
        f"model of that name"
    )


def parse(raw: str) -> ModelAccess:
    """``FERRY_MODEL_ACCESS``: a JSON object of namespace -> list of name patterns."""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}); expected an object of namespace -> [patterns]") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object of namespace -> [patterns]")
    rules: dict[str, tuple[str, ...]] = {}
    for namespace, patterns in doc.items():
        if namespace != ANY_NAMESPACE and not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"{namespace!r} is not a namespace name (nor '*')")
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"{namespace}: expected a list of non-empty name patterns")
        rules[namespace] = tuple(patterns)
    return ModelAccess(rules)
