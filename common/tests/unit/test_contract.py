"""The contract between components: one spelling of every API name, label and predictor variable."""

from __future__ import annotations

from ferry_common import contract, runtime
from ferry_common.contract import CONSUMER, MODEL_DEPLOYMENT, PredictorEnv


def test_api_names() -> None:
    assert contract.API_VERSION == "ferry.dev/v1alpha1"
    assert MODEL_DEPLOYMENT.crd_name == "modeldeployments.ferry.dev"
    assert CONSUMER.crd_name == "consumers.ferry.dev"
    assert MODEL_DEPLOYMENT.list_kind == "ModelDeploymentList"
    assert MODEL_DEPLOYMENT.short_names == ("md",) and CONSUMER.short_names == ("fc",)


def test_resource_paths_namespaced_and_cluster_wide() -> None:
    assert MODEL_DEPLOYMENT.path("prod") == "/apis/ferry.dev/v1alpha1/namespaces/prod/modeldeployments"
    assert CONSUMER.path() == "/apis/ferry.dev/v1alpha1/consumers"


def test_labels_live_under_the_group() -> None:
    for key in (contract.LABEL_DEPLOYMENT, contract.LABEL_COLOR, contract.LABEL_VERSION, contract.LABEL_ROLE):
        assert key.startswith("ferry.dev/")
    assert contract.API_KEY_SELECTOR == "ferry.dev/api-key=true"
    assert contract.ISVC_API_VERSION == "serving.kserve.io/v1beta1"


def test_predictor_variables_are_distinct_and_match_the_runtime() -> None:
    names = [v for k, v in vars(PredictorEnv).items() if not k.startswith("_")]
    assert len(names) == len(set(names)) and "MODEL_URI" in names
    container = runtime.predictor_container()
    assert {e["name"] for e in container["env"]} <= set(names)  # the runtime sets only contract names
    assert runtime.SERVED_NAME_ENV == PredictorEnv.MODEL_NAME
