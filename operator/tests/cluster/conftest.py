"""Fixtures of the operator's cluster tier: the CRDs installed on the kwok cluster, a namespace
per test, and ``ferry-operator`` running as a child process (one per test module).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferry_common.contract import MODEL_DEPLOYMENT
from ferry_devcluster.procs import wait_for
from ferry_operator import kubeapply
from ferry_testing.operator import OperatorProcess, RegisteredModel, core, extensions
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)
    return api


@pytest.fixture(scope="module")
def installed(api: client.ApiClient) -> None:
    dyn = DynamicClient(api)
    kubeapply.apply(dyn, kubeapply.load_documents([ROOT / "manifests/crds", ROOT / "manifests/runtime"]))
    ext = extensions(api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(MODEL_DEPLOYMENT.crd_name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for("ModelDeployment CRD established", established, 30)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    core(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core(api).delete_namespace(name)


@pytest.fixture(scope="module")
def operator_proc(
    kubeconfig: str,
    installed: None,
    registered_model: RegisteredModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        kubeconfig, registered_model.tracking_uri, tmp_path_factory.mktemp("op") / "op.log"
    )
    proc.start()
    yield proc
    proc.stop()
