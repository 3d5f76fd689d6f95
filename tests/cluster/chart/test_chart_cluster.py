"""The chart against the local cluster: server-side dry runs, then install, upgrade and uninstall."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ferry_common.contract import GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster import tools
from ferry_devcluster.procs import free_port, wait_for
from ferry_gateway.consumers.registry import DEV_KEYS
from ferry_testing.chart import (
    CHART,
    ENVIRONMENTS,
    MONITORING_APIS,
    ROOT,
    champion_registered,
    helm,
    http_ok,
    install_crds,
    kubectl,
    process,
    run_helm,
    values_args,
)
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> client.ApiClient:
    install_crds(kubeconfig)
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)
    return api


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def isolating(namespace: str) -> list[str]:
    """Cluster-scoped names of their own, so tests never collide with another install."""
    return [
        "--set", f"operator.peering.name={namespace}",
        "--set", f"predictor.runtime.name={namespace}",
        "--set", f"gateway.modelNamespace={namespace}",
    ]  # fmt: skip


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_server_side_dry_run_accepts_every_object(
    api: client.ApiClient, kubeconfig: str, namespace: str, env: str
) -> None:
    rendered = run_helm(
        "template", namespace, str(CHART), "--namespace", namespace, *values_args(env), *isolating(namespace),
        *(f"--api-versions={api}" for api in MONITORING_APIS),
    ).stdout  # fmt: skip
    out = kubectl(
        kubeconfig, "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", stdin=rendered
    )
    applied = [line for line in out.stdout.splitlines() if "serverside-applied" in line]
    assert any("deployment.apps/" in line for line in applied), out.stdout
    assert any("clusterservingruntime" in line for line in applied), out.stdout
    for kind in ("servicemonitor", "podmonitor", "prometheusrule"):
        assert any(f"{kind}.monitoring.coreos.com/" in line for line in applied), out.stdout
    # Nothing was created: it was a dry run.
    with pytest.raises(ApiException) as gone:
        client.AppsV1Api(api).read_namespaced_deployment(f"{namespace}-ferry-gateway", namespace)
    assert gone.value.status == 404


def ready_pods(api: client.ApiClient, namespace: str, component: str) -> int:
    pods: list[Any] = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/component={component}")
        .items
    )
    ready = 0
    for pod in pods:
        if pod.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
        ):
            ready += 1
    return ready


def test_install_upgrade_uninstall(api: client.ApiClient, kubeconfig: str, namespace: str) -> None:
    release = namespace
    common = ["--namespace", namespace, "--kubeconfig", kubeconfig, *isolating(namespace)]
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    run_helm("install", release, str(CHART), *values_args("dev"), *common, "--wait", "--timeout", "3m")
    for component in ("operator", "gateway", "redis", "mlflow"):
        wait_for(f"{component} pod Ready", lambda c=component: ready_pods(api, namespace, c) >= 1, 120)  # type: ignore[misc]
    runtime: Any = client.CustomObjectsApi(api).get_cluster_custom_object(
        "serving.kserve.io", "v1alpha1", "clusterservingruntimes", namespace
    )
    assert runtime["spec"]["containers"][0]["image"].endswith("/ferry-predictor:0.1.0")
    # The cluster serves monitoring.coreos.com/v1 (see the api fixture): helm saw it and rendered these.
    monitors: Any = client.CustomObjectsApi(api)
    expected = {"servicemonitors": "-gateway", "podmonitors": "-predictors", "prometheusrules": ""}
    for plural, suffix in expected.items():
        name = f"{release}-ferry{suffix}"
        assert monitors.get_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, plural, name)

    # Staging reads its credentials from Secrets the operator of the cluster creates.
    for name, data in {
        "ferry-gateway": {"FERRY_API_KEY_PEPPER": "pepper"},
        "ferry-redis": {"REDIS_URL": "redis://redis.example:6379/0"},
        "ferry-mlflow-credentials": {"MLFLOW_TRACKING_TOKEN": "token"},
        "ferry-mlflow-predictor-credentials": {"MLFLOW_TRACKING_TOKEN": "read-only-token"},
    }.items():
        core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        )
    run_helm("upgrade", release, str(CHART), *values_args("staging"), *common, "--wait", "--timeout", "3m")
    status = run_helm("status", release, "--namespace", namespace, "--kubeconfig", kubeconfig).stdout
    assert "REVISION: 2" in status and "STATUS: deployed" in status
    gateway: Any = apps.read_namespaced_deployment(f"{release}-ferry-gateway", namespace)
    env = {e.name: e for e in gateway.spec.template.spec.containers[0].env}
    assert env["REDIS_URL"].value_from.secret_key_ref.name == "ferry-redis"
    assert env["FERRY_CONSUMER_NAMESPACE"].value == namespace
    wait_for("in-chart Redis removed", lambda: ready_pods(api, namespace, "redis") == 0, 120)
    for component in ("operator", "gateway"):
        wait_for(f"{component} pod Ready", lambda c=component: ready_pods(api, namespace, c) >= 1, 120)  # type: ignore[misc]
    assert client.NetworkingV1Api(api).read_namespaced_ingress(f"{release}-ferry-gateway", namespace)

    run_helm("uninstall", release, "--namespace", namespace, "--kubeconfig", kubeconfig, "--wait")
    assert not apps.list_namespaced_deployment(namespace).items
    with pytest.raises(ApiException) as gone:
        client.RbacAuthorizationV1Api(api).read_cluster_role(f"{release}-ferry-operator")
    assert gone.value.status == 404


def test_helm_is_the_projects_build() -> None:
    assert helm() == str(tools.bin_path("helm"))


def service_account_kubeconfig(kubeconfig: str, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding only a ServiceAccount's token: what the pod would have."""
    token = kubectl(kubeconfig, "create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = admin["clusters"][0]
    config_ = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config_))
    return path


def test_operator_and_gateway_work_with_only_the_charts_rbac(
    api: client.ApiClient, kubeconfig: str, namespace: str, mlflow_uri: str, tmp_path: Path
) -> None:
    """The real operator and gateway, run with their ServiceAccounts' tokens, do their jobs: no 403s."""
    champion_registered(mlflow_uri)
    kubectl(
        kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "manifests" / "runtime")
    )
    release = namespace
    run_helm(
        "install", release, str(CHART), *values_args("dev"), "--namespace", namespace,
        "--kubeconfig", kubeconfig, *isolating(namespace),
    )  # fmt: skip
    operator_kc = service_account_kubeconfig(
        kubeconfig, namespace, f"{release}-ferry-operator", tmp_path / "op"
    )
    gateway_kc = service_account_kubeconfig(
        kubeconfig, namespace, f"{release}-ferry-gateway", tmp_path / "gw"
    )
    md = yaml.safe_load((ROOT / "manifests" / "samples" / "titanic.yaml").read_text())
    custom: Any = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, MODEL_DEPLOYMENT.plural, md)
    bindir = Path(sys.executable).parent
    gateway_port = free_port()
    operator_env = {
        "KUBECONFIG": str(operator_kc),
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "FERRY_METRICS_PORT": "0",
        "FERRY_SMOKE_TESTER": "ferry_testing.chart_smoke:factory",
        "FERRY_WATCH_SERVER_TIMEOUT": "10",
    }
    gateway_env = {
        "KUBECONFIG": str(gateway_kc),
        "FERRY_MODEL_NAMESPACE": namespace,
        "FERRY_DEV_DIR": str(tmp_path / "gateway-dev"),
    }
    with (
        process(
            [str(bindir / "ferry-operator"), "--standalone", "-n", namespace, "--liveness",
             f"http://127.0.0.1:{free_port()}/healthz"],
            tmp_path / "operator.log", operator_env, "ferry-operator", lambda: True,
        ) as operator_up,
        process(
            [str(bindir / "ferry-gateway"), "--dev", "--port", str(gateway_port)],
            tmp_path / "gateway.log", gateway_env, "ferry-gateway",
            lambda: http_ok(f"http://127.0.0.1:{gateway_port}/healthz"),
        ) as gateway_up,
    ):  # fmt: skip
        operator_up()
        gateway_up()

        def isvc_created() -> bool:
            items = custom.list_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", namespace, "inferenceservices"
            )["items"]
            return bool(items)

        wait_for("the operator's InferenceService", isvc_created, timeout=120)
        wait_for(
            "ModelDeployment status written",
            lambda: bool(custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, MODEL_DEPLOYMENT.plural, "titanic"
            ).get("status", {}).get("phase")),
            timeout=60,
        )  # fmt: skip

        def gateway_lists_titanic() -> bool:
            r = httpx.get(
                f"http://127.0.0.1:{gateway_port}/v1/models",
                headers={"X-API-Key": DEV_KEYS["dev-pro"]},
                timeout=5,
            )
            return r.status_code == 200 and any(m["name"] == "titanic" for m in r.json()["models"])

        wait_for("the gateway's catalog from the ModelDeployment watch", gateway_lists_titanic, timeout=60)
    for log in ("operator.log", "gateway.log"):
        text = (tmp_path / log).read_text()
        assert "forbidden" not in text.lower(), f"{log}: RBAC refused a call:\n{text[-3000:]}"
    run_helm("uninstall", release, "--namespace", namespace, "--kubeconfig", kubeconfig, "--wait")
