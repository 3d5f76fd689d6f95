"""The predictor pod the operator runs on the real node serves under its hardening (issue 13,
findings 4 and 11): inside the serving container the root filesystem refuses writes, /tmp (where
the model was downloaded) takes them, the process is uid 65532, and no service-account token is
mounted. runc enforces these settings, so a predictor that needed a writable root would not serve.
"""

from __future__ import annotations

import json

import pytest
from ferry_common.contract import GROUP, MODEL_DEPLOYMENT, VERSION
from ferry_devcluster import cluster
from ferry_devcluster.stack import Stack
from kubernetes import client, config

pytestmark = pytest.mark.timeout(300)

# Runs in the serving container; prints what it found as JSON.
INSPECT = """
import json, os
def writes(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "ok"
    except OSError as e:
        return e.strerror
print(json.dumps({
    "uid": os.getuid(),
    "root": writes("/ferry-write-probe"),
    "tmp": writes("/tmp/ferry-write-probe"),
    "model_dir": os.path.isdir(os.environ.get("FERRY_MODEL_DIR", "")),
    "token": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"),
}))
"""


def test_the_serving_predictor_has_a_read_only_root_and_no_token(stack: Stack) -> None:
    api = config.new_client_from_config(stack.kubeconfig)
    core = client.CoreV1Api(api)
    md = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, stack.models_namespace, MODEL_DEPLOYMENT.plural, stack.deployment
    )
    color = md["status"]["active"]["color"]
    pods = core.list_namespaced_pod(
        stack.models_namespace, label_selector=f"ferry.dev/deployment={stack.deployment}"
    ).items
    serving = [
        p
        for p in pods
        if p.metadata.name.startswith(f"{stack.deployment}-{color}-predictor")
        and p.status.phase == "Running"
        and p.metadata.deletion_timestamp is None
    ]
    assert serving, f"no running predictor pod of {stack.deployment}-{color}"
    pod = serving[0].metadata.name
    out = cluster.REAL.kubectl(
        "exec", "-n", stack.models_namespace, pod, "-c", "kserve-container", "--", "python3", "-c", INSPECT
    ).stdout
    seen = json.loads(out)
    assert seen == {
        "uid": 65532,
        "root": "Read-only file system",
        "tmp": "ok",
        "model_dir": True,
        "token": False,
    }, seen
