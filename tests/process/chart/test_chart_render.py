"""The chart renders, for every environment, objects the cluster's schemas accept (offline)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ferry_gateway.config import load as load_gateway_config
from ferry_generate import install
from ferry_operator.builders import serving_runtime
from ferry_operator.config import load as load_operator_config
from ferry_testing.chart import (
    CHART,
    ENVIRONMENTS,
    JSON,
    MONITORING_APIS,
    ROOT,
    crd_schemas,
    kube_version,
    run_helm,
    template,
    validate_custom,
    values_args,
)

ALL_ENVS = (None, *ENVIRONMENTS)


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_helm_lint_strict(env: str | None) -> None:
    result = run_helm("lint", "--strict", str(CHART), *values_args(env), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "prometheus-operator"])
@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_rendered_objects_validate_against_their_schemas(env: str | None, monitoring: bool) -> None:
    docs = template(env, "--include-crds", api_versions=MONITORING_APIS if monitoring else ())
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ClusterServingRuntime", "NetworkPolicy"} <= kinds
    assert ("PrometheusRule" in kinds) is monitoring
    assert ("ServiceMonitor" in kinds) is monitoring
    custom = {key[1] for key in crd_schemas()}
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in custom and doc["kind"] != "CustomResourceDefinition":
            validate_custom(doc)
        else:
            try:
                kubernetes_validate.validate(doc, kube_version(), strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")


def _by_kind(docs: list[JSON], kind: str, suffix: str = "") -> JSON:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {len(found)} found"
    return found[0]


def _env(container: JSON) -> dict[str, str]:
    # Secret references stand for values a Secret provides; a placeholder (long enough for the
    # webhook secret's minimum) exercises the parser.
    return {e["name"]: e.get("value", "from-a-secret-of-32-characters!!") for e in container.get("env", [])}


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_every_container_is_non_root_with_read_only_root_and_limits(env: str | None) -> None:
    docs = template(env)
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, dep["metadata"]["name"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["limits"] and c["resources"]["requests"]
            assert "readinessProbe" in c and "livenessProbe" in c, c["name"]


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_component_settings_accept_the_rendered_environment(env: str | None) -> None:
    docs = template(env)
    operator = _by_kind(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    config = load_operator_config(_env(operator))
    assert config.metrics_port == operator["ports"][0]["containerPort"]
    assert config.registry.tracking_uri.startswith("http")
    gateway = _by_kind(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    settings = load_gateway_config(environ=_env(gateway))
    assert settings.port == gateway["ports"][0]["containerPort"]
    assert settings.namespace, "the gateway must know where the predictors are"
    from ferry_gateway.__main__ import parser

    parser().parse_args(gateway.get("args", []))  # flags the gateway knows


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_the_gateway_gets_the_predictors_body_limit_and_its_connection_limits(env: str | None) -> None:
    # issue 13, findings 7 and 12: a body limit no larger than the predictors' (a larger one
    # bills bodies they refuse), and every slow-client limit passed to the gateway
    from ferry_common.contract import MAX_BODY_BYTES
    from ferry_gateway import config

    gateway = _by_kind(template(env), "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    rendered = _env(gateway)
    settings = load_gateway_config(environ=rendered)
    assert settings.max_body_bytes <= MAX_BODY_BYTES
    for name in (
        "FERRY_HEADER_TIMEOUT_SECONDS",
        "FERRY_BODY_TIMEOUT_SECONDS",
        "FERRY_MAX_HEADER_BYTES",
        "FERRY_LIMIT_CONCURRENCY",
        "FERRY_KEEP_ALIVE_SECONDS",
    ):
        assert name in rendered, f"{name} not set by the chart"
    defaults = config.Settings()
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds, settings.limit_concurrency) == (
        defaults.header_timeout_seconds,
        defaults.body_timeout_seconds,
        defaults.limit_concurrency,
    )


def test_the_jwks_refresh_interval_reaches_the_gateway() -> None:
    # how long a key removed at the identity provider keeps working (issue 13, finding 6)
    docs = template("prod", "--set", "gateway.jwt.refreshSeconds=30")
    gateway = _by_kind(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    settings = load_gateway_config(environ=_env(gateway))
    assert settings.jwks_url and settings.jwks_refresh_seconds == 30.0


def test_operator_args_are_flags_the_operator_knows() -> None:
    from ferry_operator import __main__ as op_main

    container = _by_kind(template("prod"), "Deployment", "-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    seen: dict[str, Any] = {}

    def fake_run(**kwargs: Any) -> None:
        seen.update(kwargs)

    import kopf

    mp = pytest.MonkeyPatch()
    mp.setattr(kopf, "run", fake_run)
    mp.setattr(kopf, "configure", lambda **_: None)
    try:
        assert op_main.main(container["args"]) == 0
    finally:
        mp.undo()
    assert seen["peering_name"] == "ferry" and seen["clusterwide"] is True
    assert seen["liveness_endpoint"].endswith(":8080/healthz")


def test_runtime_matches_the_operators_builder() -> None:
    runtime = _by_kind(template(None), "ClusterServingRuntime")
    image = runtime["spec"]["containers"][0]["image"]
    assert runtime["spec"] == serving_runtime(image=image)["spec"]


def test_prometheus_objects_only_when_the_operator_crds_exist() -> None:
    assert not [d for d in template("prod") if d["apiVersion"].startswith("monitoring.coreos.com")]
    rule = _by_kind(template("prod", api_versions=MONITORING_APIS), "PrometheusRule")
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "FerryGateway5xxRatioHigh" in alerts and "FerryPredictorNotReady" in alerts


def test_dashboards_ship_as_configmaps_for_the_grafana_sidecar() -> None:
    maps = [d for d in template("dev") if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    assert sorted(m["metadata"]["name"] for m in maps) == [
        "t-ferry-dashboard-ferry-gateway",
        "t-ferry-dashboard-ferry-model",
        "t-ferry-dashboard-ferry-overview",
    ]
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        (content,) = m["data"].values()
        assert yaml.safe_load(content)["uid"].startswith("ferry-")


def test_environments_differ_where_they_should() -> None:
    dev, prod = template("dev"), template("prod")
    assert any(d["metadata"]["name"].endswith("-redis") for d in dev if d["kind"] == "Deployment")
    assert not any(d["metadata"]["name"].endswith("-redis") for d in prod if d["kind"] == "Deployment")
    ingress = _by_kind(prod, "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == "ferry-tls"
    assert _by_kind(prod, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    assert _by_kind(prod, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert not [d for d in dev if d["kind"] in ("HorizontalPodAutoscaler", "Ingress")]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "gateway.rateLimitFailureMode=sometimes",
            "at '/gateway/rateLimitFailureMode': value must be one of",
        ),
        ("gateway.replicaz=3", "additional properties 'replicaz' not allowed"),
        ("gateway.port=70000", "at '/gateway/port': maximum: got 70,000, want 65,535"),
        # past the predictors' limit, quota would be spent on bodies they refuse (issue 13, 12)
        ("gateway.maxBodyBytes=1048577", "at '/gateway/maxBodyBytes': maximum: got 1.048577"),
        ("gateway.secretName=", "at '/gateway/secretName': minLength: got 0, want 1"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("operator.peering.name=Not_DNS", "at '/operator/peering/name'"),
        ("mlflow.external.trackingUri=ftp://x", "at '/mlflow/external/trackingUri'"),
        # The dev keys are published: a dev-mode gateway is never exposed by an Ingress (issue 13, 12).
        (
            "gateway.devMode=true,gateway.ingress.enabled=true",
            "at '/gateway/ingress/enabled': value must be false",
        ),
        # Signing keys are never fetched in clear: the gateway refuses http, so does the chart.
        ("gateway.jwt.jwksUrl=http://idp.example/jwks", "at '/gateway/jwt/jwksUrl'"),
        # The gateway refuses a JWKS without issuer and audience outside dev mode; so does the chart.
        (
            "gateway.jwt.jwksUrl=https://idp.example/jwks",
            "at '/gateway/jwt/issuer': minLength: got 0, want 1",
        ),
    ],
)
def test_schema_rejects_wrong_values_with_a_clear_message(setting: str, message: str) -> None:
    result = run_helm("template", "t", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_wrong_type_from_a_values_file_is_rejected(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway:\n  autoscaling:\n    maxReplicas: many\n")
    result = run_helm("template", "t", str(CHART), "-f", str(bad), check=False)
    assert result.returncode != 0
    assert "at '/gateway/autoscaling/maxReplicas': got string, want integer" in result.stderr, result.stderr


@pytest.mark.parametrize("variant", install.VARIANTS, ids=lambda v: v.file)
def test_the_plain_install_manifests_render_deterministically(variant: install.Variant) -> None:
    # (The webhook receiver's certificate is made at install, so manifests/ leave the receiver off.)
    first, second = (install.render(variant, ROOT) for _ in range(2))
    assert first == second, "rendering is not deterministic (random values would make manifests/ stale)"


def test_subprocess_helm_errors_surface() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        run_helm("template", "t", str(CHART / "nonexistent"))


def test_the_validators_catch_a_broken_object() -> None:
    docs = template(None)
    dep = _by_kind(docs, "Deployment", "-gateway")
    dep["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, kube_version(), strict=True)
    runtime = _by_kind(docs, "ClusterServingRuntime")
    runtime["spec"]["multiModel"] = "no"
    with pytest.raises(Exception, match="is not of type 'boolean'"):
        validate_custom(runtime)


def test_restricted_gateway_still_lets_prometheus_scrape() -> None:
    ingress_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    docs = template(
        "prod",
        "--set-json", f"networkPolicy.gatewayFrom=[{json.dumps(ingress_ns)}]",
        "--set-json", f"networkPolicy.metricsFrom=[{json.dumps(monitoring)}]",
    )  # fmt: skip
    policy = _by_kind(docs, "NetworkPolicy", "-gateway")
    assert [rule["from"] for rule in policy["spec"]["ingress"]] == [[ingress_ns], [monitoring]]
    kubernetes_validate.validate(policy, kube_version(), strict=True)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_predictors_do_not_get_the_operators_registry_credentials(env: str) -> None:
    """A predictor unpickles the model: with the operator's token, whoever registers a version
    could act as the operator in the registry (issue 13, finding 4). Each shipped environment
    gives predictors a Secret of their own."""
    operator = _by_kind(template(env), "Deployment", "-operator")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    operators_own = {ref["secretRef"]["name"] for ref in container["envFrom"]}
    predictors = _env(container)["FERRY_REGISTRY_SECRET"]
    assert predictors == "ferry-mlflow-predictor-credentials"
    assert predictors not in operators_own


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_a_stopping_gateway_pod_keeps_serving_then_drains_within_its_grace_period(env: str | None) -> None:
    """Issue 17: preStop holds SIGTERM back while the endpoint goes, the gateway then finishes
    its requests in flight for at most FERRY_SHUTDOWN_TIMEOUT_SECONDS, all before the SIGKILL."""
    gateway = _by_kind(template(env), "Deployment", "-gateway")
    pod = gateway["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(_env(container)["FERRY_SHUTDOWN_TIMEOUT_SECONDS"])
    assert pre > 0 and pod["terminationGracePeriodSeconds"] > pre + drain
    quick = _by_kind(template(env, "--set", "gateway.preStopSeconds=0"), "Deployment", "-gateway")
    assert "lifecycle" not in quick["spec"]["template"]["spec"]["containers"][0]
    bad = run_helm(
        "template",
        "t",
        str(CHART),
        *values_args(env),
        "--set",
        "gateway.shutdownTimeoutSeconds=0",
        check=False,
    )
    assert bad.returncode != 0 and "shutdownTimeoutSeconds" in bad.stderr
