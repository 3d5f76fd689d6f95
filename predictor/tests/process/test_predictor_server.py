"""The real ``ferry-predictor`` process, serving models registered in a real MLflow server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import wait_for
from ferry_mlflow_example.train import Registered
from ferry_predictor import metrics
from ferry_testing.predictor import Predictor
from ferry_testing.titanic import V2_TYPES

PASSENGERS = [
    {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 0, "parch": 0, "fare": 211.34, "embarked": "S"},
    {"pclass": 3, "sex": "male", "sibsp": 0, "parch": 0},  # age, fare and port left to the imputers
]


def post(p: Predictor, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{p.url}{path}", json=body, timeout=30, **kw)


def envelope(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error_code", "message", "details", "request_id", "timestamp"}
    assert body["error_code"] == code
    return body


def test_v1_predict_answers_with_classes_probabilities_and_identity(champion: Predictor) -> None:
    r = post(
        champion, "/v1/models/titanic:predict", {"instances": PASSENGERS}, headers={"x-request-id": "abc"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == [1, 0]  # a first-class woman survives, a third-class man does not
    assert body["classes"] == [0, 1]
    assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])
    assert (body["model_name"], body["model_version"], body["color"]) == ("titanic", "1", "green")
    assert r.headers["x-request-id"] == "abc"
    assert (r.headers["x-ferry-model-version"], r.headers["x-ferry-color"]) == ("1", "green")


def test_v2_infer_gives_the_same_answer_as_v1(champion: Predictor) -> None:
    row = PASSENGERS[0]
    body = {
        "inputs": [{"name": c, "datatype": t, "shape": [1], "data": [row[c]]} for c, t in V2_TYPES.items()]
    }
    r = post(champion, "/v2/models/titanic/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "1" and out["parameters"]["color"] == "green"
    outputs = {o["name"]: o for o in out["outputs"]}
    v1 = post(champion, "/v1/models/titanic:predict", {"instances": [row]}).json()
    assert outputs["predictions"]["data"] == v1["predictions"]
    assert outputs["probabilities"]["data"] == v1["probabilities"][0]
    assert post(champion, "/v2/models/titanic/versions/1/infer", body).json()["outputs"] == out["outputs"]


def test_the_logged_input_example_is_a_valid_request(champion: Predictor) -> None:
    model_dir = champion.log.parent / "model"
    example = json.loads(next(Path(model_dir).rglob("serving_input_example.json")).read_text())
    r = post(champion, "/v1/models/titanic:predict", example)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 3


def test_metadata_health_and_readiness(champion: Predictor) -> None:
    meta = httpx.get(f"{champion.url}/v2/models/titanic").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "mlflow-sklearn"
    assert [i["name"] for i in meta["inputs"]] == [
        "pclass",
        "sex",
        "age",
        "sibsp",
        "parch",
        "fare",
        "embarked",
    ]
    assert {i["name"]: i["parameters"]["required"] for i in meta["inputs"]}["age"] is False
    assert meta["parameters"]["fast_path"] is True
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["predictions"]["datatype"] == "INT64"
    assert (
        outputs["probabilities"]["shape"] == [-1, 2]
        and outputs["probabilities"]["parameters"]["classes"] == "0,1"
    )
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/titanic/ready", "/v1/models/titanic"):
        assert httpx.get(f"{champion.url}{path}").status_code == 200, path
    assert httpx.get(f"{champion.url}/v1/models").json() == {"models": ["titanic"]}


def test_bad_input_is_a_422_naming_every_field(champion: Predictor) -> None:
    bad = [
        {"pclass": 4, "sex": "M", "age": -1, "sibsp": 0, "parch": 0, "embarked": "X", "cabin": "B5"},
        {"pclass": 1, "sex": "female", "parch": 0},
    ]
    body = envelope(post(champion, "/v1/models/titanic:predict", {"instances": bad}), 422, "INVALID_INPUT")
    found = {d["field"]: d["reason"] for d in body["details"]}
    assert set(found) == {
        "instances[0].pclass",
        "instances[0].sex",
        "instances[0].age",
        "instances[0].embarked",
        "instances[0].cabin",
        "instances[1].sibsp",
    }
    assert "must be one of [1, 2, 3]" in found["instances[0].pclass"]
    assert "must be >= 0" in found["instances[0].age"]
    assert found["instances[1].sibsp"] == "required field is missing"
    v2 = {"inputs": [{"name": "pclass", "datatype": "BYTES", "shape": [1], "data": ["first"]}]}
    body = envelope(post(champion, "/v2/models/titanic/infer", v2), 422, "INVALID_INPUT")
    assert body["details"][0]["field"] == "inputs[0](pclass).datatype"


def test_malformed_json_oversized_bodies_and_unknown_models(champion: Predictor) -> None:
    url = f"{champion.url}/v1/models/titanic:predict"
    r = httpx.post(url, content=b'{"instances": [', headers={"content-type": "application/json"})
    assert "not valid JSON" in envelope(r, 400, "INVALID_JSON")["message"]
    envelope(httpx.post(url, content=b""), 400, "INVALID_JSON")
    huge = {"instances": PASSENGERS * 20_000}  # ~2 MB, over the 1 MiB default
    envelope(httpx.post(url, json=huge, timeout=30), 413, "PAYLOAD_TOO_LARGE")
    # The server still answers after refusing.
    assert post(champion, "/v1/models/titanic:predict", {"instances": PASSENGERS}).status_code == 200
    envelope(post(champion, "/v1/models/other:predict", {"instances": PASSENGERS}), 404, "MODEL_NOT_FOUND")
    envelope(httpx.get(f"{champion.url}/nowhere"), 404, "NOT_FOUND")
    envelope(httpx.get(url), 405, "METHOD_NOT_ALLOWED")


def test_metrics_expose_every_published_name(champion: Predictor) -> None:
    post(champion, "/v1/models/titanic:predict", {"instances": PASSENGERS})
    post(champion, "/v1/models/titanic:predict", {"instances": [{"pclass": 9}]})
    text = httpx.get(champion.metrics_url).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    for name in metrics.ALL:
        if name == metrics.MODEL_LOAD_FAILURES_TOTAL or name == metrics.FEATURE_NEGATIVE_SUM_TOTAL:
            continue  # only appear once something fails / a negative value arrives
        base = name
        assert any(n == base or n.startswith(f"{base}_") for n in names), name
    assert 'ferry_predictor_requests_total{model="titanic",protocol="v1",status="422",version="1"}' in text
    assert 'ferry_predictor_predictions_total{class="1",model="titanic",version="1"}' in text
    assert (
        'ferry_predictor_feature_category_total{feature="sex",model="titanic",value="female",version="1"}'
        in text
    )
    assert 'ferry_predictor_feature_missing_total{feature="age",model="titanic",version="1"}' in text
    assert 'ferry_predictor_fast_path{model="titanic",version="1"} 1.0' in text


def test_a_pinned_version_serves_that_version(
    registered: list[Registered], pinned_v2: Predictor, champion: Predictor
) -> None:
    v2 = pinned_v2
    a = post(champion, "/v1/models/titanic:predict", {"instances": PASSENGERS}).json()
    b = post(v2, "/v1/models/titanic:predict", {"instances": PASSENGERS}).json()
    assert b["model_version"] == registered[1].version and b["color"] == "blue"
    assert a["probabilities"] != b["probabilities"]  # differently trained
    # FERRY_MODEL_NAME wins over KServe's --model_name, so both colours answer to one URL.
    assert b["model_name"] == "titanic"
    assert post(v2, "/v1/models/titanic-green:predict", {"instances": PASSENGERS}).status_code == 404


def test_a_model_that_fails_to_load_keeps_the_server_unready(broken: Predictor) -> None:
    p = broken
    wait_for("the load failure in the log", lambda: "failed to load" in p.logs(), timeout=120, interval=0.2)
    assert "no-such-model" in p.logs()
    r = httpx.get(f"{p.url}/v2/health/ready")
    assert r.status_code == 503 and r.json() == {"ready": False}
    assert httpx.get(f"{p.url}/v2/health/live").status_code == 200
    body = envelope(post(p, "/v1/models/titanic:predict", {"instances": PASSENGERS}), 503, "MODEL_NOT_READY")
    assert "not loaded" in body["message"]
    assert 'ferry_predictor_model_load_failures_total{model="titanic"}' in httpx.get(p.metrics_url).text


def test_metrics_are_on_their_own_port_and_not_where_predictions_are(champion: Predictor) -> None:
    # issue 13, finding 2: whoever may call predictions must not read every model's tallies
    envelope(httpx.get(f"{champion.url}/metrics"), 404, "NOT_FOUND")
    scraped = httpx.get(champion.metrics_url)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert "ferry_predictor_model_ready" in scraped.text
    base = champion.metrics_url.removesuffix("/metrics")
    assert httpx.get(f"{base}/v2/health/ready").status_code == 404  # nothing else is served there
    assert httpx.post(champion.metrics_url).status_code == 405


@pytest.mark.parametrize("argv", [["--help"]])
def test_help_describes_the_environment(argv: list[str]) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "ferry-predictor"
    out = subprocess.run([str(exe), *argv], capture_output=True, text=True, check=True).stdout
    for word in ("--model_name", "--http_port", "MODEL_URI", "MLFLOW_TRACKING_URI", "FERRY_COLOR"):
        assert word in out
    missing = subprocess.run(
        [str(exe), "--model_name=x"], capture_output=True, text=True, env={"PATH": "/usr/bin"}
    )
    assert missing.returncode == 2 and "MODEL_URI: not set; required" in missing.stderr
