"""The contract between Ferry's components: API names, label and annotation keys, and the
environment the operator hands each predictor. Defined once here; every component imports it.

Nothing here does I/O, so the predictor image can carry it without the operator's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "ferry.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Resource:
    """A Ferry custom resource as the API server names it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def path(self, namespace: str | None = None) -> str:
        """The REST collection path, namespaced or across all namespaces."""
        if namespace is None:
            return f"/apis/{GROUP}/{VERSION}/{self.plural}"
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{self.plural}"


MODEL_DEPLOYMENT = Resource("ModelDeployment", "modeldeployments", "modeldeployment", ("md",))
CONSUMER = Resource("Consumer", "consumers", "consumer", ("fc",))

# KServe's resources, as the operator writes them and the gateway and tests read them.
ISVC_GROUP = "serving.kserve.io"
ISVC_API_VERSION = f"{ISVC_GROUP}/v1beta1"
ISVC_KIND = "InferenceService"

# Labels on everything the operator creates, and the annotation `kubectl ferry` writes.
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_COLOR = f"{GROUP}/color"
LABEL_VERSION = f"{GROUP}/model-version"
LABEL_ROLE = f"{GROUP}/role"
ANNOTATION_COMMAND = f"{GROUP}/command"
# API-key Secrets the gateway reads (``ferry keys secret`` writes them, holding only the key's hash).
LABEL_API_KEY = f"{GROUP}/api-key"
LABEL_CONSUMER = f"{GROUP}/consumer"
API_KEY_SELECTOR = f"{LABEL_API_KEY}=true"
PART_OF = "ferry"

# The largest request body the gateway forwards and a predictor accepts (413 past it): one number
# for both, so the gateway never spends a caller's rate limit and quota on a body the predictor is
# sure to refuse. The gateway's FERRY_MAX_BODY_BYTES may be lower, never usefully higher.
MAX_BODY_BYTES = 1 << 20


class PredictorEnv:
    """The environment variables the operator sets on a predictor and the predictor reads."""

    MODEL_URI = "MODEL_URI"
    TRACKING_URI = "MLFLOW_TRACKING_URI"
    COLOR = "FERRY_COLOR"
    MODEL_VERSION = "FERRY_MODEL_VERSION"
    # The name clients address (the ModelDeployment's), whichever colour's InferenceService answers.
    MODEL_NAME = "FERRY_MODEL_NAME"
    MODEL_DIR = "FERRY_MODEL_DIR"
    # The version's artifact digest (``ferry_common.digest``) the operator recorded when it first
    # resolved the version: a predictor refuses to load (unpickle) artifacts that differ.
    ARTIFACT_DIGEST = "FERRY_ARTIFACT_DIGEST"
