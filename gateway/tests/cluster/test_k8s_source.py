"""Consumers from Kubernetes: the watch on Consumers and key Secrets against a real API server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ferry_common.contract import CONSUMER, GROUP, VERSION
from ferry_gateway.consumers.crd import consumer_crd
from ferry_gateway.consumers.k8s_source import KubeAccess, KubeConsumerSource, KubeWatches
from ferry_gateway.consumers.registry import ConsumerRegistry, KeyProblem
from ferry_testing.gateway import PEPPER

PLURAL = CONSUMER.plural


@pytest.fixture(scope="module")
def kube(kubeconfig: str) -> Iterator[tuple[Any, str]]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)
    ext: Any = client.ApiextensionsV1Api(api_client)  # dicts in, as kubectl would send
    try:
        ext.create_custom_resource_definition(consumer_crd())
    except ApiException as exc:
        if exc.status != 409:
            raise
        existing = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        body = consumer_crd()
        body["metadata"]["resourceVersion"] = existing.metadata.resource_version
        ext.replace_custom_resource_definition(f"{PLURAL}.{GROUP}", body)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    from ferry_devcluster.procs import wait_for

    wait_for("Consumer CRD established", established, timeout=60)
    ns = f"gw-{uuid.uuid4().hex[:8]}"
    core: Any = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    yield api_client, ns
    core.delete_namespace(ns)


async def _until(what: str, check: Any, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


def _refused_reason(registry: ConsumerRegistry, key: str) -> str | None:
    try:
        registry.authenticate_key(key)
    except KeyProblem as exc:
        return exc.reason
    return None


async def test_watch_follows_consumers_and_secrets(
    kube: tuple[Any, str], kubeconfig: str, tmp_path: Path
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api_client, ns = kube
    core: Any = client.CoreV1Api(api_client)
    custom: Any = client.CustomObjectsApi(api_client)
    # the API server itself enforces the schema generated from the typed models
    with pytest.raises(ApiException) as bad:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Consumer",
                "metadata": {"name": "bad"},
                "spec": {"scopes": ["root"]},
            },
        )
    assert bad.value.status == 422 and "scopes" in str(bad.value.body)

    core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "acme-key", "labels": {"ferry.dev/api-key": "true"}},
            "stringData": {"apiKey": "fry_cluster_key"},
        },
    )
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Consumer",
            "metadata": {"name": "acme"},
            "spec": {"tier": "basic", "scopes": ["predict"], "apiKeys": [{"name": "acme-key"}]},
        },
    )

    registry = ConsumerRegistry(PEPPER)
    access = KubeAccess.from_kubeconfig(Path(kubeconfig), tmp_path)
    source = KubeConsumerSource(access, ns, registry)
    watches = KubeWatches(access, source.watches)
    watches.start()
    try:
        await _until("first lists", watches.synced)
        assert registry.authenticate_key("fry_cluster_key").tier == "basic"
        patch = {"spec": {"apiKeys": [{"name": "acme-key", "revoked": True}]}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "acme", patch)
        await _until(
            "revocation seen", lambda: _refused_reason(registry, "fry_cluster_key") == "api_key_revoked"
        )
        core.delete_namespaced_secret("acme-key", ns)
        await _until(
            "secret deletion seen", lambda: _refused_reason(registry, "fry_cluster_key") == "invalid_api_key"
        )
    finally:
        await watches.stop()


async def test_inline_hashes_work_for_a_gateway_that_may_not_read_secrets(
    kube: tuple[Any, str], kubeconfig: str, tmp_path: Path
) -> None:
    """Finding 8 (issue 13): the chart's gateway Role (Consumers only, no Secret), with a real
    service-account token, against the API server's RBAC."""
    from ferry_gateway.auth.apikeys import hash_key
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api_client, ns = kube
    core: Any = client.CoreV1Api(api_client)
    rbac: Any = client.RbacAuthorizationV1Api(api_client)
    custom: Any = client.CustomObjectsApi(api_client)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "gateway"}})
    rules = [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch"]}]
    rbac.create_namespaced_role(ns, {"metadata": {"name": "gateway"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "gateway"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gateway"},
            "subjects": [{"kind": "ServiceAccount", "name": "gateway", "namespace": ns}],
        },
    )
    token = core.create_namespaced_service_account_token(
        "gateway", ns, {"spec": {"expirationSeconds": 600}}
    ).status.token
    token_file = tmp_path / "sa-token"
    token_file.write_text(token)
    admin = KubeAccess.from_kubeconfig(Path(kubeconfig), tmp_path)
    access = KubeAccess(admin.server, admin.ca_file, token_file=str(token_file))

    spec = {"tier": "pro", "apiKeys": [{"hash": hash_key(PEPPER, "fry_inline_key")}, {"name": "old"}]}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Consumer", "metadata": {"name": "inline"}}
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {**body, "spec": spec})
    with pytest.raises(ApiException) as both:  # the CEL rule: a hash or a Secret, not both
        both_spec = {"apiKeys": [{"hash": hash_key(PEPPER, "fry_x"), "name": "k"}]}
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, {**body, "metadata": {"name": "both"}, "spec": both_spec}
        )
    assert both.value.status == 422 and "exactly one of hash and name" in str(both.value.body)

    # The token really cannot list Secrets: the Role is what the chart renders by default.
    authz: Any = client.AuthorizationV1Api(api_client)
    review = authz.create_subject_access_review(
        {
            "spec": {
                "user": f"system:serviceaccount:{ns}:gateway",
                "resourceAttributes": {"namespace": ns, "verb": "list", "resource": "secrets"},
            }
        }
    )
    assert review.status.allowed is False

    registry = ConsumerRegistry(PEPPER)
    source = KubeConsumerSource(access, ns, registry, read_secrets=False)
    watches = KubeWatches(access, source.watches)
    watches.start()
    try:
        await _until("first list with the gateway's token", watches.synced)
        assert registry.authenticate_key("fry_inline_key").tier == "pro"
    finally:
        await watches.stop()
