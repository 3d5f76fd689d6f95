"""`helm install` on the local cluster with each prerequisite missing: the message names it.

Most cases are server-side dry runs (`lookup` works there; nothing is created): helm fails
naming exactly what to create, with the `kubectl create ...` line to run; once that exists it
passes. A dry run creates no object, so the API server's own refusal (`namespaces "X" not found`)
is shown by real installs, uninstalled after.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from ferry_testing.chart import CHART, install_crds, run_helm, values_args
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class Needed:
    """A Secret the environment needs: in the release namespace, or (models) the models namespace."""

    name: str
    data: dict[str, str]
    create: str  # the kubectl line the failure shows; {ns} is where the Secret goes
    models: bool = False


PEPPER = Needed(
    "ferry-gateway",
    {"FERRY_API_KEY_PEPPER": "pepper"},
    "kubectl create secret generic ferry-gateway -n {ns}"
    ' --from-literal=FERRY_API_KEY_PEPPER="$(openssl rand -hex 32)"',
)
REDIS = Needed(
    "ferry-redis",
    {"REDIS_URL": "redis://redis.example:6379/0"},
    "kubectl create secret generic ferry-redis -n {ns} --from-literal=REDIS_URL=redis://REDIS_HOST:6379/0",
)
CREATE_MLFLOW = (
    "kubectl create secret generic ferry-mlflow-credentials -n {ns}"
    " --from-literal=MLFLOW_TRACKING_TOKEN=TOKEN"
)
MLFLOW = Needed("ferry-mlflow-credentials", {"MLFLOW_TRACKING_TOKEN": "token"}, CREATE_MLFLOW)
PREDICTORS = Needed(
    "ferry-mlflow-predictor-credentials",
    {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"},
    "kubectl create secret generic ferry-mlflow-predictor-credentials -n {ns}"
    " --from-literal=MLFLOW_TRACKING_TOKEN=TOKEN",
    models=True,
)
CONSUMERS = Needed(
    "ferry-consumers",
    {"consumers.yaml": "consumers: []\n"},
    "kubectl create secret generic ferry-consumers -n {ns} --from-file=consumers.yaml=./consumers.yaml",
)
TEST_KEY = Needed(
    "ferry-test-key",
    {"apiKey": "fry_x"},
    "kubectl create secret generic ferry-test-key -n {ns} --from-literal=apiKey=API_KEY",
)
NEEDS = {
    "staging": (PEPPER, REDIS, MLFLOW, PREDICTORS, TEST_KEY),
    "prod": (PEPPER, REDIS, MLFLOW, PREDICTORS, CONSUMERS, TEST_KEY),
}


@pytest.fixture(scope="module")
def core(kubeconfig: str) -> client.CoreV1Api:
    install_crds(kubeconfig)
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


@dataclass
class Place:
    release: str  # the release namespace (and the release's name)
    models: str  # gateway.modelNamespace

    def ns(self, needed: Needed) -> str:
        return self.models if needed.models else self.release


@pytest.fixture
def place(core: client.CoreV1Api) -> Iterator[Place]:
    """A release namespace; the models namespace is named but left to the test to create."""
    name = f"prereq-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield Place(name, f"{name}-models")
    for ns in (name, f"{name}-models"):
        try:
            core.delete_namespace(ns)
        except ApiException as e:
            if e.status != 404:
                raise


def create_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def create_secret(core: client.CoreV1Api, ns: str, name: str, data: dict[str, str]) -> None:
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )


def install(
    kubeconfig: str, place: Place, env: str, *extra: str, dry_run: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_helm(
        "install", place.release, str(CHART), *values_args(env), "--namespace", place.release,
        "--kubeconfig", kubeconfig, *(["--dry-run=server"] if dry_run else []),
        # Cluster-scoped names of its own; the models namespace of its own.
        "--set", f"operator.peering.name={place.release}", "--set", f"predictor.runtime.name={place.release}",
        "--set", f"gateway.modelNamespace={place.models}", "--set", "tests.apiKeySecret=ferry-test-key",
        *(["--set", "tests.apiKeySecret="] if env == "dev" else []),  # dev: the dev key
        *extra,
        check=False,
    )  # fmt: skip


def failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, (
        f"helm install passed, expected a missing prerequisite:\n{result.stdout[-2000:]}"
    )
    assert "Ferry's prerequisites are missing in this cluster" in result.stderr, result.stderr
    return result.stderr


def passes(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def everything(core: client.CoreV1Api, place: Place, env: str, *, but: Needed | None = None) -> None:
    create_namespace(core, place.models)
    for needed in NEEDS[env]:
        if needed != but:
            create_secret(core, place.ns(needed), needed.name, needed.data)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_missing_models_namespace_is_named_and_then_created(
    core: client.CoreV1Api, kubeconfig: str, place: Place, env: str
) -> None:
    for needed in NEEDS[env]:
        if not needed.models:
            create_secret(core, place.release, needed.name, needed.data)
    message = failure(install(kubeconfig, place, env))
    assert f"namespace {place.models} (gateway.modelNamespace" in message
    assert f"      kubectl create namespace {place.models}\n" in message
    # The predictors' Secret goes into that namespace too: named in the same run, not the next.
    assert PREDICTORS.create.format(ns=place.models) in message
    assert "Secret ferry-gateway" not in message  # what exists is not listed

    create_namespace(core, place.models)
    create_secret(core, place.models, PREDICTORS.name, PREDICTORS.data)
    out = passes(install(kubeconfig, place, env))
    assert f"kubectl ferry -n {place.models} status" in out
    # For real: the Role in the models namespace is accepted now.
    try:
        passes(install(kubeconfig, place, env, dry_run=False))
        roles = client.RbacAuthorizationV1Api(core.api_client).list_namespaced_role(place.models).items
        assert [r.metadata.name for r in roles] == [f"{place.release}-ferry-gateway"]
    finally:
        uninstall(kubeconfig, place)


@pytest.mark.parametrize(
    ("env", "needed"),
    [(env, n) for env, needs in NEEDS.items() for n in needs],
    ids=lambda v: v if isinstance(v, str) else f"{v.name}{'-in-models' if v.models else ''}",
)
def test_each_missing_secret_is_named_with_the_command_that_creates_it(
    core: client.CoreV1Api, kubeconfig: str, place: Place, env: str, needed: Needed
) -> None:
    everything(core, place, env, but=needed)
    message = failure(install(kubeconfig, place, env))
    ns = place.ns(needed)
    assert f"  - Secret {needed.name} in namespace {ns} (" in message
    assert f"      {needed.create.format(ns=ns)}\n" in message
    assert message.count("  - ") == 1, message  # nothing else is reported missing

    create_secret(core, ns, needed.name, needed.data)
    passes(install(kubeconfig, place, env))


def test_a_secret_without_its_key_is_named_with_the_key(
    core: client.CoreV1Api, kubeconfig: str, place: Place
) -> None:
    everything(core, place, "staging", but=PEPPER)
    create_secret(core, place.release, PEPPER.name, {"SOMETHING_ELSE": "x"})
    message = failure(install(kubeconfig, place, "staging"))
    assert (
        f"Secret ferry-gateway in namespace {place.release} (gateway.secretName)"
        " has no key FERRY_API_KEY_PEPPER" in message
    )
    patch = f"kubectl patch secret ferry-gateway -n {place.release} --type merge -p "
    assert patch + """'{"stringData":{"FERRY_API_KEY_PEPPER":"VALUE"}}'""" in message


def test_missing_release_namespace_is_named_before_its_secrets(kubeconfig: str) -> None:
    place = Place(f"prereq-absent-{uuid.uuid4().hex[:6]}", "default")
    message = failure(install(kubeconfig, place, "staging", "--create-namespace"))
    assert f"      kubectl create namespace {place.release}\n" in message
    assert message.index(f"create namespace {place.release}") < message.index(
        "create secret generic ferry-gateway"
    )


def test_the_opt_in_creates_the_models_namespace(
    core: client.CoreV1Api, kubeconfig: str, place: Place
) -> None:
    for needed in NEEDS["staging"]:
        if not needed.models:
            create_secret(core, place.release, needed.name, needed.data)
    out = passes(install(kubeconfig, place, "staging", "--set", "gateway.createModelNamespace=true"))
    assert f"kind: Namespace\nmetadata:\n  name: {place.models}\n" in out
    # The predictors' Secret cannot exist before its namespace: NOTES say to create it there.
    assert f"Secret ferry-mlflow-predictor-credentials in {place.models}: create it there first" in out


def test_dev_needs_nothing_but_kserve(kubeconfig: str, place: Place) -> None:
    out = passes(install(kubeconfig, place, "dev", "--set", "gateway.modelNamespace="))
    assert f"helm test {place.release} -n {place.release}" in out


def test_dev_makes_the_webhook_secret_but_never_replaces_one_someone_made(
    kubeconfig: str, place: Place, core: client.CoreV1Api
) -> None:
    made = passes(install(kubeconfig, place, "dev", "--set", "gateway.modelNamespace="))
    assert "kind: Secret\nmetadata:\n  name: ferry-operator-webhook\n" in made
    # Made by someone else (to hand the same secret to MLflow's administrator): used as it is.
    create_secret(core, place.release, "ferry-operator-webhook", {"FERRY_WEBHOOK_SECRET": "s" * 32})
    theirs = passes(install(kubeconfig, place, "dev", "--set", "gateway.modelNamespace="))
    assert (
        "name: ferry-operator-webhook\n"
        not in theirs.split("# Source: ferry/templates/operator-webhook.yaml")[1]
    )
    # ...and a Secret of theirs without the key is named, as for any prerequisite.
    core.delete_namespaced_secret("ferry-operator-webhook", place.release)
    create_secret(core, place.release, "ferry-operator-webhook", {"other": "x"})
    assert "has no key FERRY_WEBHOOK_SECRET" in failure(
        install(kubeconfig, place, "dev", "--set", "gateway.modelNamespace=")
    )


def test_a_runtime_of_the_same_name_outside_the_release_is_named(
    kubeconfig: str, place: Place, core: client.CoreV1Api
) -> None:
    custom = client.CustomObjectsApi(core.api_client)
    body = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": place.release},
        "spec": {
            "containers": [{"name": "kserve-container", "image": "example/x:1"}],
            "supportedModelFormats": [],
        },
    }
    custom.create_cluster_custom_object("serving.kserve.io", "v1alpha1", "clusterservingruntimes", body)
    try:
        message = failure(install(kubeconfig, place, "dev", "--set", "gateway.modelNamespace="))
        assert (
            f"ClusterServingRuntime {place.release} (predictor.runtime.name)"
            " exists and belongs to no helm release" in message
        )
        assert f"      kubectl delete clusterservingruntime {place.release}\n" in message
        passes(
            install(
                kubeconfig,
                place,
                "dev",
                "--set",
                "gateway.modelNamespace=",
                "--set",
                "predictor.runtime.enabled=false",
            )
        )
    finally:
        custom.delete_cluster_custom_object(
            "serving.kserve.io", "v1alpha1", "clusterservingruntimes", place.release
        )


def test_check_prerequisites_false_skips_the_look_ups(kubeconfig: str, place: Place) -> None:
    passes(install(kubeconfig, place, "staging", "--set", "checkPrerequisites=false"))
    try:
        result = install(kubeconfig, place, "staging", "--set", "checkPrerequisites=false", dry_run=False)
        # Unchecked, the API server refuses the Role in the missing namespace: the message of issue 20.
        assert result.returncode != 0
        assert "Ferry's prerequisites are missing" not in result.stderr
        assert f'namespaces "{place.models}" not found' in result.stderr, result.stderr
    finally:
        uninstall(kubeconfig, place)


def uninstall(kubeconfig: str, place: Place) -> None:
    """Also a failed release: its cluster-scoped objects (ClusterRole, runtime) go with it."""
    run_helm(
        "uninstall",
        place.release,
        "--namespace",
        place.release,
        "--kubeconfig",
        kubeconfig,
        "--wait",
        check=False,
    )
