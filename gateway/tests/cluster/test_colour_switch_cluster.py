"""The gateway's ModelDeployment watch against the kwok cluster's API server: the route follows
the status the operator writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ferry_common.contract import GROUP as MD_GROUP
from ferry_common.contract import MODEL_DEPLOYMENT
from ferry_common.contract import VERSION as MD_VERSION
from ferry_devcluster.procs import wait_for
from ferry_gateway.consumers.k8s_source import KubeAccess, KubeWatches, ResourceWatch
from ferry_testing.gateway_colours import make_setup

MD_CRD = Path(__file__).resolve().parents[3] / "charts" / "ferry" / "crds" / "modeldeployments.ferry.dev.yaml"


MD_PLURAL = MODEL_DEPLOYMENT.plural
# The chart's ModelDeployment CRD under a group of its own: the local cluster is shared, and an
# operator watching every namespace would write its own status over the one this test plays.
TEST_GROUP = f"gateway-routing-test.{MD_GROUP}"


@pytest.fixture(scope="module")
def md_namespace(kubeconfig: str) -> Iterator[tuple[Any, str]]:
    """The ModelDeployment CRD (the chart's schema, in TEST_GROUP) and a fresh namespace."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)
    ext: Any = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load(MD_CRD.read_text())
    assert crd["spec"]["group"] == MD_GROUP and crd["spec"]["names"]["plural"] == MD_PLURAL
    crd["spec"]["group"] = TEST_GROUP
    name = crd["metadata"]["name"] = f"{MD_PLURAL}.{TEST_GROUP}"
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
        crd["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(
            name
        ).metadata.resource_version
        ext.replace_custom_resource_definition(name, crd)

    def established() -> bool:
        got = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_for("ModelDeployment CRD established", established, timeout=60)
    ns = f"gw-route-{uuid.uuid4().hex[:8]}"
    core: Any = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    yield api_client, ns
    core.delete_namespace(ns)


def colour_block(colour: str, version: str) -> dict[str, Any]:
    return {"color": colour, "modelVersion": version, "inferenceService": f"titanic-{colour}", "ready": True}


def test_the_route_follows_the_modeldeployment_status_in_a_cluster(
    md_namespace: tuple[Any, str], kubeconfig: str, tmp_path: Path
) -> None:
    """The operator promotes green by writing the status; the gateway's watch moves the traffic."""
    from kubernetes import client

    api_client, ns = md_namespace
    custom: Any = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        TEST_GROUP,
        MD_VERSION,
        ns,
        MD_PLURAL,
        {
            "apiVersion": f"{TEST_GROUP}/{MD_VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": "titanic"},
            "spec": {"model": {"name": "titanic-survival", "alias": "champion"}},
        },
    )

    def set_status(status: dict[str, Any]) -> None:
        custom.patch_namespaced_custom_object_status(
            TEST_GROUP, MD_VERSION, ns, MD_PLURAL, "titanic", {"status": status}
        )

    set_status({"phase": "Stable", "active": colour_block("blue", "1")})
    access = KubeAccess.from_kubeconfig(Path(kubeconfig), tmp_path)
    path = f"/apis/{TEST_GROUP}/{MD_VERSION}/namespaces/{ns}/{MD_PLURAL}"
    s = make_setup(watch=lambda catalog: KubeWatches(access, [ResourceWatch(access, path, catalog.update)]))
    try:
        last: list[httpx.Response] = []

        def answered_by() -> str | None:
            last[:] = [s.call()]
            return last[0].json().get("upstream") if last[0].status_code == 200 else None

        try:
            wait_for("the gateway routes to blue", lambda: answered_by() == "blue", timeout=30)
        except TimeoutError:
            raise AssertionError(f"last answer: {last[0].status_code} {last[0].text}") from None
        set_status(
            {
                "phase": "Verifying",
                "active": colour_block("blue", "1"),
                "preview": colour_block("green", "2"),
            }
        )
        wait_for("the preview reaches green", lambda: s.call(preview=True).status_code == 200, timeout=30)
        assert s.call(preview=True).json()["upstream"] == "green" and answered_by() == "blue"
        set_status({"phase": "Stable", "active": colour_block("green", "2"), "preview": None})
        wait_for("the gateway routes to green", lambda: answered_by() == "green", timeout=30)
        assert [answered_by() for _ in range(20)] == ["green"] * 20
        wait_for("blue's connections closed", lambda: s.blue.connections == 0, timeout=10)
    finally:
        s.gw.close()
        s.blue.close()
        s.green.close()
