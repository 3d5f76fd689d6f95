"""A promotion under steady traffic: responses switch colour once and never mix back, nothing
fails, and the old colour's keep-alive connections are closed before its pods go away.

The two colours' predictor Services are two loopback predictor stand-ins; the gateway runs
exactly as in a cluster (stable-Service convention + catalog), only the Service URLs are mapped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ferry_gateway.upstream.catalog import MD_GROUP, MD_PLURAL, MD_VERSION, ModelCatalog
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.consumers.k8s_source import KubeAccess, KubeWatches, ResourceWatch
from ferry_gateway.upstream.routing import Upstreams
from gw_harness import PEPPER, GatewayServer, Keys, Upstream, build_app, consumer_index
from localcluster.procs import wait_for

KEYS = Keys()


@dataclass(frozen=True)
class LoopbackServices(Upstreams):
    """In-cluster routing whose Service URLs point at loopback servers (unknown ones: a closed port)."""

    services: Mapping[str, str] = field(default_factory=dict)

    def service_url(self, service: str) -> str:
        return self.services.get(service, "http://127.0.0.1:9")


def md(active: tuple[str, str], preview: tuple[str, str, bool] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Verifying" if preview else "Stable",
        "active": {"color": active[0], "modelVersion": active[1], "ready": True},
    }
    if preview:
        status["preview"] = {"color": preview[0], "modelVersion": preview[1], "ready": preview[2]}
    return {"metadata": {"name": "titanic"}, "status": status}


@dataclass
class Setup:
    gw: GatewayServer
    catalog: ModelCatalog
    blue: Upstream
    green: Upstream

    def publish(self, obj: dict[str, Any]) -> float:
        """Apply a status on the gateway's loop, as the watch does; returns when it took effect."""

        def apply() -> float:
            self.catalog.update({"titanic": obj})
            return time.monotonic()

        return float(self.gw.on_loop(apply))

    def call(self, client: httpx.Client | None = None, preview: bool = False) -> httpx.Response:
        headers = {"X-API-Key": KEYS.by_consumer["ops"]}
        if preview:
            headers["X-Ferry-Preview"] = "true"
        url = self.gw.url + "/v1/models/titanic:predict"
        if client is not None:
            return client.post(url, content=b"{}", headers=headers)
        return httpx.post(url, content=b"{}", headers=headers, timeout=10)


def make_setup(blue_delay: float = 0.0, watch: Callable[[ModelCatalog], KubeWatches] | None = None) -> Setup:
    blue = Upstream(mode="echo", name="blue", delay=blue_delay)
    green = Upstream(mode="echo", name="green")
    upstreams = LoopbackServices(
        namespace="ml",
        services={"titanic-blue-predictor": blue.url, "titanic-green-predictor": green.url},
    )
    catalog = ModelCatalog()
    consumers = [Consumer("ops", "enterprise", frozenset({"predict", "preview"}))]
    app = build_app(
        None,  # no Redis: limits are not what this is about
        registry=ConsumerRegistry(PEPPER, consumer_index(consumers, KEYS)),
        upstreams=upstreams,
        catalog=catalog,
    )
    if watch is not None:  # the catalog follows ModelDeployments in a cluster, as in factory.py
        kube = watch(catalog)

        async def start() -> None:
            kube.start()

        app.on_startup.append(start)
        app.on_shutdown.append(kube.stop)
    gw = GatewayServer(app)
    s = Setup(gw, catalog, blue, green)
    if watch is None:
        s.publish(md(("blue", "1")))
    return s


@pytest.fixture
def setup() -> Iterator[Setup]:
    s = make_setup()
    yield s
    s.gw.close()
    s.blue.close()
    s.green.close()


@dataclass
class Sample:
    worker: int
    started: float
    ended: float
    status: int
    upstream: str | None


def test_promotion_under_steady_traffic(setup: Setup) -> None:
    samples: list[Sample] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=10) as client:  # keep-alive to the gateway, like a load generator
            while not stop.is_set():
                started = time.monotonic()
                try:
                    resp = setup.call(client)
                    status, upstream = resp.status_code, resp.json().get("upstream")
                except httpx.HTTPError as exc:
                    status, upstream = 0, type(exc).__name__
                with lock:
                    samples.append(Sample(n, started, time.monotonic(), status, upstream))

    def count(colour: str, after: float = 0.0) -> int:
        with lock:
            return sum(1 for s in samples if s.upstream == colour and s.started > after)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for("traffic on blue", lambda: count("blue") >= 60 and setup.blue.connections > 0, timeout=30)
        before = time.monotonic()
        switched = setup.publish(md(("green", "2")))  # the promotion, as the watch delivers it
        # blue's pooled connections are closed while traffic goes on ...
        wait_for("blue's connections closed", lambda: setup.blue.connections == 0, timeout=10)
        # ... so its pods can go away without a single request failing
        setup.blue.stop_listening()
        gone = time.monotonic()
        wait_for(
            "traffic on green after blue went away", lambda: count("green", after=gone) >= 60, timeout=30
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)

    failed = [s for s in samples if s.status != 200]
    assert not failed, f"{len(failed)} of {len(samples)} requests failed, e.g. {failed[:3]}"
    assert all(s.upstream == "green" for s in samples if s.started > switched)
    assert all(s.upstream == "blue" for s in samples if s.ended < before)
    for n in range(6):  # each client sees blue, then green, and never blue again
        seen = [s.upstream for s in sorted(samples, key=lambda s: s.started) if s.worker == n]
        first_green = seen.index("green")
        assert set(seen[first_green:]) == {"green"}, seen
    assert setup.blue.connections == 0


def test_a_request_in_flight_on_the_old_colour_completes() -> None:
    s = make_setup(blue_delay=1.0)
    try:
        result: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: result.append(s.call()), daemon=True)
        slow.start()
        wait_for("request held by blue", lambda: s.blue.opts.pending == 1, timeout=10)
        s.publish(md(("green", "2")))
        assert s.blue.connections == 1  # the busy connection is left to finish
        assert s.call().json()["upstream"] == "green"
        slow.join(timeout=10)
        assert result[0].status_code == 200 and result[0].json()["upstream"] == "blue"
        # and then closed rather than pooled: blue is not routed to any more
        wait_for("blue's last connection closed", lambda: s.blue.connections == 0, timeout=10)
        assert s.gw.app.pool.idle_connections(s.blue.url) == 0
        assert s.gw.app.pool.idle_connections(s.green.url) == 1
    finally:
        s.gw.close()
        s.blue.close()
        s.green.close()


def test_preview_traffic_follows_the_preview_colour(setup: Setup) -> None:
    setup.publish(md(("blue", "1"), ("green", "2", False)))
    deploying = setup.call(preview=True)
    assert deploying.status_code == 503 and deploying.json()["error_code"] == "MODEL_NOT_READY"
    assert "version 2" in deploying.json()["message"] and deploying.headers["retry-after"] == "5"
    assert setup.call().json()["upstream"] == "blue"
    setup.publish(md(("blue", "1"), ("green", "2", True)))
    assert setup.call(preview=True).json()["upstream"] == "green"
    assert setup.call().json()["upstream"] == "blue"
    # an abort: the preview is gone, green's connections with it
    setup.publish(md(("blue", "1")))
    assert setup.call(preview=True).status_code == 404
    wait_for("green's connections closed", lambda: setup.green.connections == 0, timeout=10)
    assert setup.call().json()["upstream"] == "blue"


MD_CRD = Path(__file__).resolve().parents[2] / "charts" / "ferry" / "crds" / "modeldeployments.ferry.dev.yaml"
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


@pytest.mark.cluster
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
