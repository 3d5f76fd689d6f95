"""The product as a user meets it, on the local real node brought up by `make up`.

Real pods: the operator, gateway, Redis and MLflow from the chart, predictors serving the Titanic
model from the in-chart MLflow, traffic through the gateway's Service, kube-proxy and CoreDNS.
Each test deploys its own ModelDeployment following its own alias, so tests do not interfere.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ferry_common.contract import API_VERSION, GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster.stack import RELEASE, WEBHOOK_URL, Stack, dev_token
from ferry_testing.traffic import ROW, Traffic
from kubernetes import client, config
from kubernetes.client.rest import ApiException

PLURAL = MODEL_DEPLOYMENT.plural
ROLLOUT_WAIT = 420.0  # a new colour: pod start, model download and load, smoke test, on 2 busy cores

pytestmark = pytest.mark.timeout(1200)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def api(stack: Stack) -> client.ApiClient:
    return config.new_client_from_config(stack.kubeconfig)


@pytest.fixture(scope="module")
def registry(stack: Stack) -> Any:
    import mlflow

    mlflow.set_tracking_uri(stack.mlflow_url)
    return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def versions(registry: Any, stack: Stack) -> list[str]:
    """The registered model's versions, oldest first (make up registers at least two)."""
    found = registry.search_model_versions(f"name='{stack.registered_model}'")
    out = sorted((v.version for v in found), key=int)
    assert len(out) >= 2, out
    return out


class Deployment:
    """A ModelDeployment of the test's own, following an alias of its own."""

    def __init__(self, api: client.ApiClient, registry: Any, stack: Stack, name: str) -> None:
        self.api, self.registry, self.stack, self.name = api, registry, stack, name
        self.alias = f"{name}-{uuid.uuid4().hex[:6]}"
        self.co = client.CustomObjectsApi(api)
        self.ns = stack.models_namespace

    def move_alias(self, version: str) -> None:
        self.registry.set_registered_model_alias(self.stack.registered_model, self.alias, version)

    def create(self, version: str, **spec: Any) -> None:
        self.move_alias(version)
        body = {
            "apiVersion": API_VERSION,
            "kind": MODEL_DEPLOYMENT.kind,
            "metadata": {"name": self.name},
            "spec": {"model": {"name": self.stack.registered_model, "alias": self.alias}, **spec},
        }
        self.co.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)

    def get(self) -> dict[str, Any]:
        md: dict[str, Any] = self.co.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self.name)
        return md

    def patch(self, body: dict[str, Any]) -> None:
        self.co.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self.name, body)

    def stable_at(self, version: str) -> dict[str, Any] | None:
        md = self.get()
        st = md.get("status") or {}
        active = st.get("active") or {}
        ok = st.get("phase") == "Stable" and active.get("modelVersion") == version and not st.get("preview")
        return md if ok else None

    def wait_stable(self, version: str, timeout: float = ROLLOUT_WAIT) -> dict[str, Any]:
        try:
            md: dict[str, Any] = wait_for(
                f"{self.name} Stable at version {version}", lambda: self.stable_at(version), timeout, 2
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.explain()}") from None
        return md

    def events(self) -> list[Any]:
        """The Kubernetes events about this ModelDeployment, oldest first."""
        found = client.CoreV1Api(self.api).list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={self.name}"
        )
        return sorted(found.items, key=lambda e: str(e.last_timestamp))

    def explain(self) -> str:
        """What a user would look at when a rollout is stuck: the status and the events."""
        st = self.get().get("status") or {}
        keep = ("phase", "message", "active", "preview", "conditions")
        told = "\n".join(f"  {e.reason}: {e.message}" for e in self.events())
        return f"status: {json.dumps({k: st.get(k) for k in keep}, indent=1)}\nevents:\n{told}"

    def isvc(self, color: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.co.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", self.ns, "inferenceservices", f"{self.name}-{color}"
            )
            return obj
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete(self) -> None:
        try:
            self.co.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self.name)
        except ApiException as e:
            if e.status != 404:
                raise
        wait_for(f"{self.name}'s colours gone", lambda: not self.isvc("blue") and not self.isvc("green"), 180)


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, api: client.ApiClient, registry: Any, stack: Stack
) -> Iterator[Callable[[str], Deployment]]:
    made: list[Deployment] = []

    def make(name: str) -> Deployment:
        d = Deployment(api, registry, stack, name)
        made.append(d)
        return d

    yield make
    for d in made:
        d.delete()
        registry.delete_registered_model_alias(stack.registered_model, d.alias)


def predict_once(stack: Stack, model: str, key: str | dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One prediction through the gateway, with an API key or the given headers."""
    auth = {"X-API-Key": key} if isinstance(key, str) else key
    u = urlsplit(stack.gateway_url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=30)
    try:
        conn.request(
            "POST",
            f"/v1/models/{model}:predict",
            body=json.dumps({"instances": [ROW]}),
            headers={"Content-Type": "application/json", **auth},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


LOAD_CLIENTS, LOAD_RATE = 8, 30.0  # 240 requests/s offered, each keep-alive client on a fixed schedule


def test_at_load_a_scale_up_a_rollout_its_scale_down_and_a_deleted_pod_lose_nothing(
    api: client.ApiClient, stack: Stack, versions: list[str], deployment: Callable[[str], Deployment]
) -> None:
    old, new = versions[0], versions[1]
    d = deployment("zd")
    d.create(
        old,
        # The fast path serves 240 requests/s on about 70m of CPU: a small request, so the HPA acts.
        predictor={"resources": {"requests": {"cpu": "50m", "memory": "256Mi"}}},
        autoscaling={"minReplicas": 1, "maxReplicas": 2, "metric": "cpu", "target": 50},
        rollout={"autoPromote": True, "scaleDownDelaySeconds": 20, "smokeTest": {}},
    )
    md = d.wait_stable(old)
    old_color = md["status"]["active"]["color"]
    # A consumer on the unlimited tier: this measures the rollout, not the limiter.
    headers = {"Authorization": f"Bearer {dev_token('load', tier='enterprise')}"}
    wait_for("the gateway routes zd", lambda: predict_once(stack, "zd", headers)[0] == 200, 60)
    apps, autoscaling, core = client.AppsV1Api(api), client.AutoscalingV2Api(api), client.CoreV1Api(api)

    def ready(color: str) -> int:
        return apps.read_namespaced_deployment(f"zd-{color}-predictor", d.ns).status.ready_replicas or 0

    def scaled_up(color: str) -> bool:
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(f"zd-{color}-predictor", d.ns)
        return (hpa.status.desired_replicas or 0) >= 2 and ready(color) >= 2

    reaction: dict[str, float] = {}

    def hpa_reacted(color: str, since: float) -> bool:
        # The HPA's reaction in two terms: the metrics pipeline deciding, then the pod's cold start.
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(f"zd-{color}-predictor", d.ns)
        if (hpa.status.desired_replicas or 0) >= 2:
            reaction.setdefault("seconds_to_desired_2", round(time.monotonic() - since, 1))
        if ready(color) >= 2:
            reaction.setdefault("seconds_to_second_replica_ready", round(time.monotonic() - since, 1))
        return len(reaction) == 2

    with Traffic(stack.gateway_url, "zd", headers, clients=LOAD_CLIENTS, rate=LOAD_RATE) as traffic:
        wait_for("traffic flowing", lambda: len(traffic.snapshot()) >= 200, 30)
        traffic.mark("hpa scale-up")
        burst = time.monotonic()
        wait_for("the HPA to add a replica under the load", lambda: hpa_reacted(old_color, burst), 300, 1)
        traffic.mark("rollout")
        d.move_alias(new)
        md = d.wait_stable(new)
        new_color = md["status"]["active"]["color"]
        assert new_color != old_color
        traffic.mark("old colour's scale-down")
        wait_for(f"old colour {old_color} removed after the delay", lambda: d.isvc(old_color) is None, 180)
        wait_for("the new colour at two ready replicas", lambda: scaled_up(new_color), 300, 2)
        traffic.mark("a predictor pod deleted")
        pods = core.list_namespaced_pod(d.ns, label_selector=f"app=isvc.zd-{new_color}-predictor").items
        victim = next(p.metadata.name for p in pods if not p.metadata.deletion_timestamp)
        core.delete_namespaced_pod(victim, d.ns)
        wait_for(
            "the deleted pod replaced",
            lambda: (
                ready(new_color) >= 2
                and victim not in {p.metadata.name for p in core.list_namespaced_pod(d.ns).items}
            ),
            300,
            2,
        )
        traffic.mark("after")
        seen = len(traffic.snapshot())
        wait_for("traffic after the pod was replaced", lambda: len(traffic.snapshot()) >= seen + 200, 60)
    phases = traffic.phases()
    record = Path(".local/load/rollout-under-load.json")
    record.parent.mkdir(parents=True, exist_ok=True)
    offered = LOAD_CLIENTS * LOAD_RATE
    record.write_text(
        json.dumps({"offered_per_second": offered, "phases": phases, "hpa_reaction": reaction}, indent=1)
    )
    for p in phases:
        print(p)
    print(f"HPA reaction from the load's start: {reaction}")

    assert traffic.failures() == [], (traffic.failures()[:5], phases)
    answers = traffic.snapshot()
    assert {a.version for a in answers} == {old, new}, traffic.summary()
    # Per connection: the old version, then the new one, never back.
    for client_id, seq in traffic.versions_per_client().items():
        switch = seq.index(new)
        assert set(seq[:switch]) <= {old} and set(seq[switch:]) == {new}, (client_id, seq)
    # Across connections: once any client got the new version, every request sent later gets it.
    first_new = min(a.finished for a in answers if a.version == new)
    late_old = [a for a in answers if a.version == old and a.started > first_new]
    assert late_old == [], late_old[:5]


def test_cpu_load_scales_a_colour_and_the_next_rollout_starts_at_that_count(
    api: client.ApiClient, stack: Stack, versions: list[str], deployment: Callable[[str], Deployment]
) -> None:
    old, new = versions[0], versions[1]
    d = deployment("hpa")
    d.create(
        old,
        predictor={"resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "500m"}}},
        autoscaling={"minReplicas": 1, "maxReplicas": 3, "metric": "cpu", "target": 50},
        rollout={"autoPromote": True, "scaleDownDelaySeconds": 10, "smokeTest": {}},
    )
    md = d.wait_stable(old)
    color = md["status"]["active"]["color"]
    apps, autoscaling = client.AppsV1Api(api), client.AutoscalingV2Api(api)
    predictor = f"hpa-{color}-predictor"
    svc_ip = client.CoreV1Api(api).read_namespaced_service(predictor, d.ns).spec.cluster_ip

    # Load straight at the colour's predictor Service: the gateway's per-consumer limits would cap it.
    with Traffic(f"http://{svc_ip}:80", "hpa", {}, clients=4, rate=200.0):

        def scaled() -> int | None:
            hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(predictor, d.ns)
            dep = apps.read_namespaced_deployment(predictor, d.ns)
            ready = dep.status.ready_replicas or 0
            return ready if (hpa.status.desired_replicas or 0) >= 2 and ready >= 2 else None

        replicas = wait_for("the HPA to add a replica under CPU load", scaled, 300, 5)
        d.move_alias(new)
        preview = wait_for(
            "the preview colour",
            lambda: (d.get().get("status") or {}).get("preview"),
            60,
        )
        preview_isvc = wait_for("the preview InferenceService", lambda: d.isvc(preview["color"]), 60)
        assert preview_isvc["spec"]["predictor"]["minReplicas"] >= replicas
    md = d.wait_stable(new)
    active = d.isvc(md["status"]["active"]["color"])
    assert active is not None
    wait_for(
        "minReplicas restored to spec.autoscaling.minReplicas after the rollout",
        lambda: (
            (d.isvc(md["status"]["active"]["color"]) or {})
            .get("spec", {})
            .get("predictor", {})
            .get("minReplicas")
            == 1
        ),
        60,
    )


def test_an_alias_move_reaches_the_operator_as_the_in_chart_mlflows_webhook(
    api: client.ApiClient, stack: Stack, versions: list[str], deployment: Callable[[str], Deployment]
) -> None:
    old, new = versions[0], versions[1]
    d = deployment("wh")
    d.create(old, rollout={"autoPromote": True, "scaleDownDelaySeconds": 0, "smokeTest": {}})
    d.wait_stable(old)

    def notified() -> list[str]:
        return [
            e.message for e in d.events() if e.reason == "RegistryNotified" and f"@{d.alias}" in e.message
        ]

    d.move_alias(new)
    # MLflow (in the chart) -> the operator's HTTPS receiver, across the network policy.
    (message, *_) = wait_for("the webhook for the alias move acted on", notified, 60)
    assert f"model_version_alias.created: {stack.registered_model}@{d.alias} -> version {new}" in message
    d.wait_stable(new)
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferry_operator.cli",
            "webhook",
            "status",
            "--mlflow",
            stack.mlflow_url,
            "-n",
            d.ns,
        ],
        env={**os.environ, "KUBECONFIG": stack.kubeconfig},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert WEBHOOK_URL in shown.stdout and f"{d.ns}/{d.name}" in shown.stdout, shown.stdout


def test_operator_pod_killed_mid_rollout_the_rollout_completes(
    api: client.ApiClient, stack: Stack, versions: list[str], deployment: Callable[[str], Deployment]
) -> None:
    old, new = versions[0], versions[1]
    d = deployment("ko")
    d.create(old, rollout={"autoPromote": True, "scaleDownDelaySeconds": 10, "smokeTest": {}})
    d.wait_stable(old)
    core = client.CoreV1Api(api)
    selector = "app.kubernetes.io/component=operator"

    def operator_pod() -> str | None:
        pods = core.list_namespaced_pod(stack.namespace, label_selector=selector).items
        running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return running[0].metadata.name if running else None

    before = wait_for("the operator pod", operator_pod, 60)
    d.move_alias(new)
    wait_for("the rollout to start", lambda: (d.get().get("status") or {}).get("preview"), 120)
    core.delete_namespaced_pod(before, stack.namespace, grace_period_seconds=0)
    after = wait_for("a new operator pod", lambda: (p := operator_pod()) != before and p, 180, 2)
    assert after != before
    d.wait_stable(new)


def test_redis_gone_the_gateway_fails_open_and_limits_return_with_redis(
    api: client.ApiClient, stack: Stack
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    redis = f"{RELEASE}-redis"
    free = stack.api_keys["dev-free"]

    def scale(n: int) -> None:
        apps.patch_namespaced_deployment_scale(redis, stack.namespace, {"spec": {"replicas": n}})

    def redis_pods() -> int:
        return len(
            core.list_namespaced_pod(
                stack.namespace, label_selector="app.kubernetes.io/component=redis"
            ).items
        )

    scale(0)
    try:
        wait_for("the Redis pod gone", lambda: redis_pods() == 0, 120)
        # Fail-open: more requests than the free tier's burst, all answered.
        statuses = [predict_once(stack, stack.deployment, free)[0] for _ in range(120)]
        assert set(statuses) == {200}, statuses
    finally:
        scale(1)
    wait_for(
        "the Redis Deployment ready again",
        lambda: (apps.read_namespaced_deployment(redis, stack.namespace).status.ready_replicas or 0) >= 1,
        180,
    )

    def limited() -> dict[str, str] | None:
        for _ in range(150):
            status, headers, _ = predict_once(stack, stack.deployment, free)
            if status == 429:
                return headers
        return None

    headers = wait_for("a 429 for the free tier once Redis is back", limited, 120)
    assert int(headers["retry-after"]) >= 1
