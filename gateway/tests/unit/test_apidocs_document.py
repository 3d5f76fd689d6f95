"""The OpenAPI document as a pure function of the models' v2 metadata."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import schemathesis
from ferry_common.errors import ErrorCode
from ferry_gateway.apidocs.document import DATATYPES, build, signature, spec, value_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok

EXAMPLE_V1 = {"instances": [{"pclass": 3, "sex": "male", "age": 22.0}]}
EXAMPLE_V2 = {"inputs": [{"name": "pclass", "datatype": "INT64", "shape": [1], "data": [3]}]}


def col(name: str, datatype: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [-1], "parameters": {"required": required}}


def titanic(version: str = "2", examples: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "titanic",
        "versions": [version],
        "platform": "mlflow-sklearn",
        "inputs": [col("pclass", "INT64"), col("sex", "BYTES"), col("age", "FP64", required=False)],
        "outputs": [
            {"name": "predictions", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
        ],
        "parameters": {"color": "blue", "ready": True},
    }
    if examples:
        meta["parameters"]["examples"] = {"v1": EXAMPLE_V1, "v2": EXAMPLE_V2}
    return meta


def body_of(op: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = op["requestBody"]["content"]["application/json"]
    return media


def test_no_models_describes_the_gateway_routes_only() -> None:
    doc = build({})
    assert doc == spec()
    assert set(doc["components"]["schemas"]) == {"Error"}
    assert "tags" not in doc
    for path in ("/v1/models/{name}:predict", "/v2/models/{name}/infer", "/v1/models", "/v1/usage"):
        assert path in doc["paths"]
    # the envelope names every error code the gateway may answer with
    envelope = doc["components"]["schemas"]["Error"]
    assert envelope["properties"]["error_code"]["enum"] == [c.value for c in ErrorCode]
    assert doc["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }


def test_kserve_health_metadata_and_readiness_routes_are_described() -> None:
    paths = build({})["paths"]
    for path in ("/", "/livez", "/v2", "/v2/health/live", "/v2/health/ready", "/healthz", "/readyz"):
        assert paths[path]["get"]["security"] == [], path  # load balancers probe these unauthenticated
    for path in (
        "/v1/models/{name}",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
    ):
        op = paths[path]["get"]
        assert "security" not in op, path  # the document's default: a credential
        assert {"200", "401", "403", "404"} <= set(op["responses"]), path
    assert "503" in paths["/v1/models/{name}"]["get"]["responses"]


def test_a_model_gets_its_own_operations_with_its_signature_and_example() -> None:
    doc = build({"titanic": titanic()})
    schemas = doc["components"]["schemas"]
    v1 = doc["paths"]["/v1/models/titanic:predict"]["post"]
    v2 = doc["paths"]["/v2/models/titanic/infer"]["post"]
    assert body_of(v1)["example"] == EXAMPLE_V1 and body_of(v2)["example"] == EXAMPLE_V2
    assert v1["x-ferry-model-version"] == "2" and "version 2" in v1["summary"]
    assert v1["tags"] == ["titanic"] and doc["tags"][0]["name"] == "titanic"
    assert body_of(v1)["schema"] == {"$ref": "#/components/schemas/titanic.v1.request"}
    row = schemas["titanic.v1.instance"]
    assert row["properties"] == {
        "pclass": {"type": "integer", "format": "int64"},
        "sex": {"type": "string"},
        "age": {"type": "number", "nullable": True},
    }
    assert row["required"] == ["pclass", "sex"]  # age is optional
    request = schemas["titanic.v2.request"]["properties"]["inputs"]
    assert "Required: pclass, sex; optional: age" in request["description"]
    assert request["minItems"] == 2 and request["maxItems"] == 3
    age = schemas["titanic.v2.input.age"]
    assert age["properties"]["name"]["enum"] == ["age"] and age["properties"]["datatype"]["enum"] == ["FP64"]
    assert age["properties"]["data"]["items"] == {"type": "number", "nullable": True}
    v1_out = schemas["titanic.v1.response"]["properties"]
    assert v1_out["predictions"] == {"type": "array", "items": value_schema("INT64")}
    assert v1_out["probabilities"]["items"] == {"type": "array", "items": {"type": "number"}}
    for op in (v1, v2):
        assert {"401", "403", "404", "422", "429", "503"} <= set(op["responses"])
    # the generic operations stay for models not (yet) described
    assert "/v1/models/{name}:predict" in doc["paths"]


def test_a_model_without_an_example_has_schemas_but_no_example() -> None:
    doc = build({"titanic": titanic(examples=False)})
    for path in ("/v1/models/titanic:predict", "/v2/models/titanic/infer"):
        media = body_of(doc["paths"][path]["post"])
        assert "example" not in media and "$ref" in media["schema"]


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_maps_to_a_json_type(datatype: str) -> None:
    schema = value_schema(datatype)
    expected = {"BOOL": "boolean", "BYTES": "string"}.get(datatype)
    if expected is None:
        expected = "integer" if "INT" in datatype else "number"
    assert schema["type"] == expected
    if datatype.startswith("UINT"):
        assert schema["minimum"] == 0
    doc = build({"m": {"versions": ["1"], "inputs": [col("x", datatype)], "outputs": []}})
    assert doc["components"]["schemas"]["m.v1.instance"]["properties"]["x"] == schema


def test_an_unknown_datatype_accepts_any_value() -> None:
    assert value_schema("FP8") == {}


def test_metadata_without_inputs_is_not_described() -> None:
    # an echo server, an error body, a predictor of another protocol: the model stays generic
    for meta in ({"upstream": "echo"}, {"inputs": "x"}, {"inputs": [{"datatype": "FP64"}]}):
        assert signature(meta) is None
        assert build({"titanic": meta}) == spec()


def test_removing_a_model_removes_its_operations_and_schemas() -> None:
    both = build({"titanic": titanic(), "iris": {"versions": ["1"], "inputs": [col("x", "FP32")]}})
    assert "/v2/models/iris/infer" in both["paths"]
    assert build({"titanic": titanic()}) == build({"titanic": titanic(), "bad name!": titanic()})
    only = build({"titanic": titanic()})
    assert "/v2/models/iris/infer" not in only["paths"]
    assert not any(k.startswith("iris.") for k in only["components"]["schemas"])


def test_schemathesis_reads_the_document_with_models() -> None:
    doc = build({"titanic": titanic()})
    operations = set()
    for result in schemathesis.openapi.from_dict(doc).get_all_operations():
        assert isinstance(result, Ok), result
        operations.add(result.ok().label)
    assert "POST /v1/models/titanic:predict" in operations and "POST /v2/models/titanic/infer" in operations


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
_column = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8)},
    optional={"datatype": st.sampled_from([*DATATYPES, "odd"]), "shape": _json, "parameters": _json},
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["titanic", "iris", "x"]),
        st.fixed_dictionaries(
            {},
            optional={
                "inputs": st.lists(_column, max_size=4) | _json,
                "versions": _json,
                "outputs": _json,
                "parameters": _json,
            },
        ),
        max_size=3,
    )
)
def test_any_metadata_gives_a_json_document(models: dict[str, dict[str, Any]]) -> None:
    doc = build(models)
    assert orjson.loads(orjson.dumps(doc)) == doc
    assert set(spec()["paths"]) <= set(doc["paths"])
