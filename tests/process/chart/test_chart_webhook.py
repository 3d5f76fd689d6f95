"""operator.webhook rendered: the receiver of MLflow's registry webhooks, off by default; on, a
Service, the signing secret from a Secret, a certificate the operator really serves, and a
NetworkPolicy rule admitting only the configured senders (offline, helm template)."""

from __future__ import annotations

import base64
import datetime

import kubernetes_validate
import pytest
from cryptography import x509
from ferry_operator.config import load as load_operator_config
from ferry_testing.chart import CHART, ENVIRONMENTS, JSON, kube_version, run_helm, template, values_args

ON = ("--set", "operator.webhook.enabled=true")
MLFLOW_PODS = ("--set", "operator.webhook.from[0].podSelector.matchLabels.app=mlflow")


def named(docs: list[JSON], kind: str, name: str) -> JSON | None:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found[0] if found else None


def operator_container(docs: list[JSON]) -> JSON:
    dep = named(docs, "Deployment", "t-ferry-operator")
    assert dep is not None
    container: JSON = dep["spec"]["template"]["spec"]["containers"][0]
    return container


def webhook_rules(docs: list[JSON]) -> list[JSON]:
    policy = named(docs, "NetworkPolicy", "t-ferry-operator")
    assert policy is not None
    return [r for r in policy["spec"]["ingress"] if any(p["port"] == "webhook" for p in r["ports"])]


@pytest.mark.parametrize(
    "env", (None, *(e for e in ENVIRONMENTS if e != "dev")), ids=lambda e: e or "default"
)
def test_off_by_default_nothing_listens_and_nothing_is_admitted(env: str | None) -> None:
    docs = template(env)
    container = operator_container(docs)
    assert not any(e["name"].startswith("FERRY_WEBHOOK_") for e in container["env"])
    assert "webhook" not in {p["name"] for p in container["ports"]}
    assert named(docs, "Service", "t-ferry-operator-webhook") is None
    assert not any(d["kind"] == "Secret" and "webhook" in d["metadata"]["name"] for d in docs)
    assert webhook_rules(docs) == []


def test_on_the_operator_gets_the_secret_by_reference_and_serves_the_mounted_certificate() -> None:
    docs = template(None, *ON)
    container = operator_container(docs)
    env = {e["name"]: e for e in container["env"]}
    assert env["FERRY_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "ferry-operator-webhook",
        "key": "FERRY_WEBHOOK_SECRET",
    }
    assert "value" not in env["FERRY_WEBHOOK_SECRET"]  # never inline in the manifest
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert mount["readOnly"] and env["FERRY_WEBHOOK_TLS_DIR"]["value"] == mount["mountPath"]
    assert {"name": "webhook", "containerPort": 8443, "protocol": "TCP"} in container["ports"]
    # What the operator parses from it (the secret comes from the Secret; a stand-in here).
    values = {k: e.get("value", "a-secret-from-the-secret-ref") for k, e in env.items()}
    hook = load_operator_config(values).webhook
    assert hook is not None and hook.port == 8443 and str(hook.tls_dir) == mount["mountPath"]

    service = named(docs, "Service", "t-ferry-operator-webhook")
    assert service is not None and service["spec"]["ports"][0]["targetPort"] == "webhook"
    for doc in (service, *(d for d in docs if d["kind"] == "Secret")):
        kubernetes_validate.validate(doc, kube_version(), strict=True)


def test_the_made_certificate_is_for_the_service_and_signed_by_the_ca_it_ships() -> None:
    docs = template(None, *ON, namespace="ml-platform")
    secret = named(docs, "Secret", "t-ferry-operator-webhook-tls")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert "t-ferry-operator-webhook.ml-platform.svc" in dns
    assert "t-ferry-operator-webhook.ml-platform.svc.cluster.local" in dns
    cert.verify_directly_issued_by(ca)
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)


def test_a_given_tls_secret_is_mounted_and_none_is_made() -> None:
    docs = template(None, *ON, "--set", "operator.webhook.tlsSecretName=webhook-cert")
    assert not any(d["kind"] == "Secret" and "webhook" in d["metadata"]["name"] for d in docs)
    dep = named(docs, "Deployment", "t-ferry-operator")
    assert dep is not None
    volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == "webhook-cert"


def test_only_the_configured_senders_may_deliver() -> None:
    rules = webhook_rules(template(None, *ON, *MLFLOW_PODS))
    assert rules == [
        {
            "ports": [{"port": "webhook", "protocol": "TCP"}],
            "from": [{"podSelector": {"matchLabels": {"app": "mlflow"}}}],
        }
    ]
    assert "from" not in webhook_rules(template(None, *ON))[0]  # empty: every source, as documented


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("operator.webhook.port=70000", "port"),
        ("operator.webhook.secretName=Not_A_Name", "secretName"),
        ("operator.webhook.tlsSecretName=-bad", "tlsSecretName"),
        ("operator.webhook.bogus=1", "bogus"),
    ],
)
def test_the_schema_refuses_bad_settings_naming_them(setting: str, field: str) -> None:
    result = run_helm("template", "t", str(CHART), *values_args(None), *ON, "--set", setting, check=False)
    assert result.returncode != 0 and field in result.stderr, result.stderr
    assert "webhook" in result.stderr


def test_dev_the_in_chart_mlflow_delivers_to_the_receiver_and_sees_only_its_ca() -> None:
    docs = template("dev")
    assert webhook_rules(docs)[0]["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "ferry", "app.kubernetes.io/component": "mlflow"}
            }
        }
    ]
    mlflow = named(docs, "Deployment", "t-ferry-mlflow")
    assert mlflow is not None
    pod = mlflow["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    ca = next(v for v in pod["volumes"] if v["name"] == "webhook-ca")["secret"]
    # The receiver's CA, never its private key.
    assert ca == {
        "secretName": "t-ferry-operator-webhook-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert env["FERRY_EXTRA_CA_FILE"] == f"{mounts['webhook-ca']['mountPath']}/ca.crt"
    assert env["PYTHONPATH"] == mounts["trust"]["mountPath"]
    trust = named(docs, "ConfigMap", "t-ferry-mlflow-trust")
    assert trust is not None and "certifi.where = " in trust["data"]["sitecustomize.py"]


def test_generate_secret_makes_the_signing_secret_only_when_asked() -> None:
    made = named(template("dev"), "Secret", "ferry-operator-webhook")
    assert made is not None and len(base64.b64decode(made["data"]["FERRY_WEBHOOK_SECRET"])) == 64
    assert named(template(None, *ON), "Secret", "ferry-operator-webhook") is None  # you make it
