"""The READMEs' quick starts, run as written: each in namespaces of its own (its fixed ports 5000,
6379, 6390, 8080 and 8081 and a fresh ``.local`` are its alone, and everything it starts ends with
it), and what they print is what a newcomer would check: a prediction and the usage answer."""

from __future__ import annotations

from ferry_testing import snippets

ROOT = snippets.claim("README.md", "try-it")
GATEWAY = snippets.claim("gateway/README.md", "quick-start")

# What the gateway's quick start takes as given: "your predictor" on 8081, serving the champion.
A_PREDICTOR_ON_8081 = """
python -m ferry_devcluster.mlflow_server up --dir .local/mlflow --port 5000 >&2
MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python -m ferry_mlflow_example >&2
MODEL_URI=models:/titanic-survival@champion MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \\
  ferry-predictor --model_name titanic --http_port 8081 2>/dev/null &
until curl -sf localhost:8081/v2/health/ready >/dev/null; do sleep 1; done
"""


def test_try_it_on_one_machine_runs_as_written() -> None:
    ran = ROOT.bash("try-it", timeout=900, isolated=True)
    *_, prediction, usage = snippets.json_docs(ran.stdout)
    assert prediction["predictions"] == [0] and prediction["model_name"] == "titanic"
    assert usage["consumer"] == "jwt:dev-pro" and usage["scopes"] == ["predict", "preview"]  # a JWT


def test_the_gateway_quick_start_runs_as_written() -> None:
    ran = GATEWAY.bash("quick-start", timeout=900, isolated=True, before=A_PREDICTOR_ON_8081)
    *_, prediction, usage = snippets.json_docs(ran.stdout)
    assert prediction["predictions"] == [0]
    assert usage["consumer"] == "jwt:dev-pro" and usage["tier"] == "pro"  # the tier ferry token granted
