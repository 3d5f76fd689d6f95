"""The contract between components: one spelling of every API name, label and predictor variable."""

from __future__ import annotations

from ferry_common import contract, runtime
from ferry_common.contract import CONSUMER, MODEL_DEPLOYMENT, PredictorEnv


def test_crd_and_list_names_follow_the_resource() -> None:
    assert MODEL_DEPLOYMENT.crd_name == f"{MODEL_DEPLOYMENT.plural}.{contract.GROUP}"
    assert CONSUMER.list_kind == f"{CONSUMER.kind}List"


def test_resource_paths_namespaced_and_cluster_wide() -> None:
    assert MODEL_DEPLOYMENT.path("prod") == "/apis/ferry.dev/v1alpha1/namespaces/prod/modeldeployments"
    assert CONSUMER.path() == "/apis/ferry.dev/v1alpha1/consumers"


def test_labels_live_under_the_group_and_are_distinct() -> None:
    keys = (contract.LABEL_DEPLOYMENT, contract.LABEL_COLOR, contract.LABEL_VERSION, contract.LABEL_ROLE)
    assert all(key.startswith(f"{contract.GROUP}/") for key in keys) and len(set(keys)) == len(keys)


def test_predictor_variables_are_distinct_and_match_the_runtime() -> None:
    names = [v for k, v in vars(PredictorEnv).items() if not k.startswith("_")]
    assert len(names) == len(set(names)) and "MODEL_URI" in names
    container = runtime.predictor_container()
    assert {e["name"] for e in container["env"]} <= set(names)  # the runtime sets only contract names
    assert runtime.SERVED_NAME_ENV == PredictorEnv.MODEL_NAME
