"""What the reconcile shell needs from the outside world, as Protocols.

``Reconciler`` depends on these, not on the concrete classes: ``kube.Kube`` and
``registry.Registry`` satisfy them in the operator, in-memory fakes in the tests. Parameters are
positional-only so an implementation may name them as it likes.
"""

from __future__ import annotations

from typing import Any, Protocol

from ferry_operator.registry import ResolvedVersion
from ferry_operator.resource import ModelRef

JSON = dict[str, Any]


class KubeAPI(Protocol):
    """The Kubernetes calls one reconcile pass makes (create-or-patch, 404 as None)."""

    async def get_md(self, namespace: str, name: str, /) -> JSON | None: ...

    async def patch_md_status(self, namespace: str, name: str, status: JSON, /) -> None: ...

    async def get_isvc(self, namespace: str, name: str, /) -> JSON | None: ...

    async def apply_isvc(self, desired: JSON, live: JSON | None, /) -> str: ...

    async def delete_isvc(self, namespace: str, name: str, /) -> None: ...

    async def ready_replicas(self, namespace: str, isvc: str, /) -> int | None: ...

    async def get_service(self, namespace: str, name: str, /) -> JSON | None: ...

    async def apply_service(self, desired: JSON, live: JSON | None, /) -> str: ...

    async def get_pdb(self, namespace: str, name: str, /) -> JSON | None: ...

    async def apply_pdb(self, desired: JSON, live: JSON | None, /) -> str: ...

    async def delete_pdb(self, namespace: str, name: str, /) -> None: ...

    async def get_network_policy(self, namespace: str, name: str, /) -> JSON | None: ...

    async def apply_network_policy(self, desired: JSON, live: JSON | None, /) -> str: ...

    async def delete_network_policy(self, namespace: str, name: str, /) -> None: ...

    async def post_event(self, md: JSON, type_: str, reason: str, message: str, /) -> None: ...


class RegistryAPI(Protocol):
    """The model registry as the reconcile asks it: resolve a reference, digest a version's
    artifacts (``ferry_common.digest``), fetch an input example."""

    async def resolve(self, ref: ModelRef, /) -> ResolvedVersion: ...

    async def artifact_digest(self, name: str, version: str, /) -> str: ...

    async def input_example(self, resolved: ResolvedVersion, /) -> Any | None: ...
