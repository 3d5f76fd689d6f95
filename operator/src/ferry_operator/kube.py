"""The Kubernetes API as the reconcile needs it: a few async calls, 404/409 made harmless.

The official client is synchronous; calls run in threads so the operator's event loop (kopf's)
stays free. Every write is create-or-patch and only happens when the live object differs from
the desired one (``contains``), so a second reconcile pass writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from ferry_common.contract import (
    API_VERSION,
    GROUP,
    ISVC_API_VERSION,
    ISVC_GROUP,
    MODEL_DEPLOYMENT,
    VERSION,
)
from ferry_common.timefmt import format_time
from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

JSON = dict[str, Any]
# KServe's InferenceService as the custom-objects API addresses it.
ISVC_VERSION = ISVC_API_VERSION.rpartition("/")[2]
ISVC_PLURAL = "inferenceservices"

# Every API call is bounded: a connection cut without a FIN or RST (an API server restarted or
# unreachable, the operator's own network moved) would otherwise block its worker thread, and
# with it that ModelDeployment's reconcile loop, forever. Seconds, for the whole request.
REQUEST_TIMEOUT = 30.0


def contains(live: Any, desired: Any) -> bool:
    """True when every field we set is present with the same value (defaults added by others are fine)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    return bool(live == desired) or str(live) == str(desired)


def load_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    if kubeconfig is None:
        try:
            kube_config.load_incluster_config()
            return k8s.ApiClient()
        except kube_config.ConfigException:
            pass
    api: k8s.ApiClient = kube_config.new_client_from_config(config_file=kubeconfig)
    return api


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call in a thread, bounded by ``REQUEST_TIMEOUT``.

    The client's (partial) stubs are not worth fighting here. The timeout is passed per call: the
    generated API methods take ``_request_timeout`` and the client has no default for it.
    """
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    return await asyncio.to_thread(fn, *args, **kwargs)


def _none_on_404(exc: ApiException) -> None:
    if exc.status != 404:
        raise exc


class Kube:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.policy = k8s.PolicyV1Api(api)
        self.networking = k8s.NetworkingV1Api(api)

    # ---- ModelDeployments ----

    async def get_md(self, namespace: str, name: str) -> JSON | None:
        try:
            md: JSON = await _call(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                MODEL_DEPLOYMENT.plural,
                name,
            )
            return md
        except ApiException as exc:
            _none_on_404(exc)
            return None

    async def patch_md_status(self, namespace: str, name: str, status: JSON) -> None:
        try:
            await _call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                MODEL_DEPLOYMENT.plural,
                name,
                {"status": status},
            )
        except ApiException as exc:
            _none_on_404(exc)

    async def patch_md_annotations(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> None:
        await _call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MODEL_DEPLOYMENT.plural,
            name,
            {"metadata": {"annotations": annotations}},
        )

    # ---- InferenceServices ----

    async def get_isvc(self, namespace: str, name: str) -> JSON | None:
        try:
            isvc: JSON = await _call(
                self.custom.get_namespaced_custom_object,
                ISVC_GROUP,
                ISVC_VERSION,
                namespace,
                ISVC_PLURAL,
                name,
            )
            return isvc
        except ApiException as exc:
            _none_on_404(exc)
            return None

    async def apply_isvc(self, desired: JSON, live: JSON | None) -> str:
        """Create or patch; returns what it did ("created", "patched", "unchanged")."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if live is None:
            try:
                await _call(
                    self.custom.create_namespaced_custom_object,
                    ISVC_GROUP,
                    ISVC_VERSION,
                    ns,
                    ISVC_PLURAL,
                    desired,
                )
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise
                return "unchanged"  # someone (an earlier pass) created it: converge next pass
        want = {
            # ownerReferences too: a predecessor's object (same name, re-created) is adopted
            "metadata": {k: desired["metadata"][k] for k in ("labels", "annotations", "ownerReferences")},
            "spec": desired["spec"],
        }
        stale = _stale_predictor_keys(live, desired)
        if contains(live, want) and not stale:
            return "unchanged"
        if stale:
            # A merge patch keeps keys it does not mention: an InferenceService written by an
            # operator that used `model` must lose it when `containers` replaces it, and back.
            want = {
                **want,
                "spec": {**desired["spec"], "predictor": {**desired["spec"]["predictor"], **stale}},
            }
        await _call(
            self.custom.patch_namespaced_custom_object,
            ISVC_GROUP,
            ISVC_VERSION,
            ns,
            ISVC_PLURAL,
            name,
            want,
        )
        return "patched"

    async def delete_isvc(self, namespace: str, name: str) -> None:
        try:
            await _call(
                self.custom.delete_namespaced_custom_object,
                ISVC_GROUP,
                ISVC_VERSION,
                namespace,
                ISVC_PLURAL,
                name,
                propagation_policy="Background",
            )
        except ApiException as exc:
            _none_on_404(exc)

    async def ready_replicas(self, namespace: str, isvc: str) -> int | None:
        """Ready pods of a colour (KServe's raw Deployment is `<isvc>-predictor`)."""
        try:
            dep = await _call(self.apps.read_namespaced_deployment, f"{isvc}-predictor", namespace)
        except ApiException as exc:
            _none_on_404(exc)
            return None
        return int(dep.status.ready_replicas or 0) if dep.status else 0

    # ---- Services ----

    async def get_service(self, namespace: str, name: str) -> JSON | None:
        try:
            svc = await _call(self.core.read_namespaced_service, name, namespace)
        except ApiException as exc:
            _none_on_404(exc)
            return None
        result: JSON = self.core.api_client.sanitize_for_serialization(svc)
        return result

    async def apply_service(self, desired: JSON, live: JSON | None) -> str:
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if live is None:
            try:
                await _call(self.core.create_namespaced_service, ns, desired)
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise
                return "unchanged"
        want = {
            "metadata": {k: desired["metadata"][k] for k in ("labels", "ownerReferences")},
            "spec": {"selector": desired["spec"]["selector"], "ports": desired["spec"]["ports"]},
        }
        if contains(live, want):
            return "unchanged"
        await _call(self.core.patch_namespaced_service, name, ns, want)
        return "patched"

    # ---- PodDisruptionBudgets (one per colour, builders.pod_disruption_budget) ----

    async def get_pdb(self, namespace: str, name: str) -> JSON | None:
        try:
            pdb = await _call(self.policy.read_namespaced_pod_disruption_budget, name, namespace)
        except ApiException as exc:
            _none_on_404(exc)
            return None
        result: JSON = self.core.api_client.sanitize_for_serialization(pdb)
        return result

    async def apply_pdb(self, desired: JSON, live: JSON | None) -> str:
        """Create or patch; the caller has checked that ``live`` (if any) is ours (Owner.controls)."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if live is None:
            try:
                await _call(self.policy.create_namespaced_pod_disruption_budget, ns, desired)
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise
                return "unchanged"
        want = {
            "metadata": {k: desired["metadata"][k] for k in ("labels", "ownerReferences")},
            "spec": desired["spec"],
        }
        if contains(live, want):
            return "unchanged"
        await _call(self.policy.patch_namespaced_pod_disruption_budget, name, ns, want)
        return "patched"

    async def delete_pdb(self, namespace: str, name: str) -> None:
        try:
            await _call(self.policy.delete_namespaced_pod_disruption_budget, name, namespace)
        except ApiException as exc:
            _none_on_404(exc)

    # ---- NetworkPolicies (the predictor network policy, netpolicy.py) ----

    async def get_network_policy(self, namespace: str, name: str) -> JSON | None:
        try:
            policy = await _call(self.networking.read_namespaced_network_policy, name, namespace)
        except ApiException as exc:
            _none_on_404(exc)
            return None
        result: JSON = self.core.api_client.sanitize_for_serialization(policy)
        return result

    async def apply_network_policy(self, desired: JSON, live: JSON | None) -> str:
        """Create or patch; the caller has checked that ``live`` (if any) is ours (Owner.controls)."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if live is None:
            try:
                await _call(self.networking.create_namespaced_network_policy, ns, desired)
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise
                return "unchanged"
        want = {
            "metadata": {k: desired["metadata"][k] for k in ("labels", "ownerReferences")},
            # ingress is replaced whole by the patch (its rules have no merge key).
            "spec": desired["spec"],
        }
        if contains(live, want):
            return "unchanged"
        await _call(self.networking.patch_namespaced_network_policy, name, ns, want)
        return "patched"

    async def delete_network_policy(self, namespace: str, name: str) -> None:
        try:
            await _call(self.networking.delete_namespaced_network_policy, name, namespace)
        except ApiException as exc:
            _none_on_404(exc)

    # ---- Events ----

    async def post_event(self, md: JSON, type_: str, reason: str, message: str) -> None:
        meta = md["metadata"]
        now = format_time()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": MODEL_DEPLOYMENT.kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "ferry-operator"},
            "reportingComponent": "ferry-operator",
            "reportingInstance": "ferry-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # An event lost (refused, or timed out) is not worth failing a reconcile over.
        with contextlib.suppress(ApiException, HTTPError):
            await _call(self.core.create_namespaced_event, meta["namespace"], event)

    async def list_events(self, namespace: str, name: str) -> list[JSON]:
        events = await _call(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={name},involvedObject.kind={MODEL_DEPLOYMENT.kind}",
        )
        items: list[JSON] = self.core.api_client.sanitize_for_serialization(events).get("items", [])
        return items


_PREDICTOR_IMPLEMENTATIONS = ("model", "containers")


def _stale_predictor_keys(live: JSON, desired: JSON) -> dict[str, None]:
    """The predictor implementation keys the live object has and the desired one does not (as nulls)."""
    have = (live.get("spec") or {}).get("predictor") or {}
    want = desired["spec"]["predictor"]
    return {k: None for k in _PREDICTOR_IMPLEMENTATIONS if k in have and k not in want}
