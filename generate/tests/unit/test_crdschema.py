"""ferry_common.crdschema: pydantic JSON Schema -> structural schema, the one translator of both CRDs."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from ferry_common import crdschema
from ferry_common.contract import Resource
from ferry_gateway.consumers import crd as consumer_crd
from ferry_generate import crds
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, create_model

JSON = dict[str, Any]


def _nodes(node: Any, path: str = "") -> list[tuple[str, JSON]]:
    """Every schema node of a structural schema, with a readable path."""
    out: list[tuple[str, JSON]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for k, v in node.get("properties", {}).items():
            out += _nodes(v, f"{path}.{k}")
        if isinstance(node.get("items"), dict):
            out += _nodes(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _nodes(node["additionalProperties"], f"{path}{{}}")
    return out


def assert_structural(schema: JSON) -> None:
    # metadata's schema is the API server's own; a CRD may only say it is an object.
    for path, node in _nodes(schema):
        assert not {"$ref", "$defs", "title", "const", "allOf", "oneOf"} & set(node), path
        assert node.get("default", 0) is not None, f"{path}: null default"
        if "anyOf" in node:  # the only union Kubernetes allows: int-or-string
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        if node.get("type") == "object" and "properties" not in node and path != ".metadata":
            assert "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Inner(_Strict):
    count: int = Field(default=1, ge=0, description="How many.")


class Outer(_Strict):
    """The outer object."""

    name: str
    inner: Inner = Field(default_factory=Inner, description="The inner one.")
    unset: int | None = None
    overridable: int | None = 5
    required_or_null: str | None
    fixed: Literal["only"] = "only"
    tags: dict[str, str] = Field(default_factory=dict)
    free: dict[str, Any] = Field(default_factory=dict)
    items: list[Inner] = Field(default_factory=list)
    cpu: Annotated[
        int | Annotated[str, Field(pattern=r"^[0-9]+m?$")],
        Field(json_schema_extra={crdschema.QUANTITY_MARKER: True}),
    ] = 1


def test_each_rule_of_the_translation() -> None:
    schema = crdschema.structural(Outer.model_json_schema())
    assert_structural(schema)
    props = schema["properties"]
    assert schema["description"] == "The outer object." and schema["required"] == ["name", "required_or_null"]
    # $ref inlined; the field's own description wins over the definition's.
    assert props["inner"]["properties"]["count"] == {
        "default": 1, "description": "How many.", "minimum": 0, "type": "integer"
    }  # fmt: skip
    assert props["inner"]["description"] == "The inner one."
    # The null rule: absence is unset; nullable only where null says something absence does not.
    assert props["unset"] == {"type": "integer"}
    assert props["overridable"] == {"type": "integer", "default": 5, "nullable": True}
    assert props["required_or_null"] == {"type": "string", "nullable": True}
    assert props["fixed"]["enum"] == ["only"] and "const" not in props["fixed"]
    assert props["tags"]["additionalProperties"] == {"type": "string"}
    assert props["free"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["items"]["items"]["type"] == "object"
    assert props["cpu"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": r"^[0-9]+m?$",
        "x-kubernetes-int-or-string": True,
    }


def test_the_null_rule_matches_what_the_models_parse() -> None:
    """Without nullable the API server prunes a null to absence; the model reads absence as None."""
    assert Outer.model_validate({"name": "a", "required_or_null": None}).unset is None
    assert Outer.model_validate({"name": "a", "required_or_null": None}).overridable == 5
    assert (
        Outer.model_validate({"name": "a", "required_or_null": None, "overridable": None}).overridable is None
    )


def test_both_crds_come_out_of_the_one_translator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    translate, wrap = crdschema.structural, crdschema.custom_resource_definition

    def spy_structural(schema: JSON, defs: JSON | None = None) -> JSON:
        if defs is None:  # top-level calls only
            seen.append(str(schema.get("title")))
        return translate(schema, defs)

    def spy_crd(resource: Resource, **kwargs: Any) -> JSON:
        seen.append(f"crd:{resource.kind}")
        return wrap(resource, **kwargs)

    monkeypatch.setattr(crdschema, "structural", spy_structural)
    monkeypatch.setattr(crdschema, "custom_resource_definition", spy_crd)
    documents = crds.documents()
    assert seen == [
        "ModelDeploymentSpec", "ModelDeploymentStatus", "crd:ModelDeployment", "ConsumerSpec", "crd:Consumer"
    ]  # fmt: skip
    for name in ("modeldeployments.ferry.dev.yaml", "consumers.ferry.dev.yaml"):
        assert_structural(documents[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    # The gateway's public builders are the same function's output.
    assert documents["consumers.ferry.dev.yaml"] == consumer_crd.consumer_crd()


# Random nested pydantic models: every translation is structural, and an instance the model
# dumps (absent for None, as the operator and gateway write them) validates against it.
_SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers(-5, 5)),
    (str, st.text(max_size=4)),
    (bool, st.booleans()),
    (float, st.floats(-1, 1)),
    (Literal["a", "b"], st.sampled_from(["a", "b"])),
]


@st.composite
def _model(draw: st.DrawFn, depth: int = 0) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["scalar", "optional", "list", "dict"] + (["model"] if depth < 2 else []))
        )
        if kind == "model":
            sub = draw(_model(depth + 1))
            fields[f"m{i}"] = (sub, Field(default_factory=sub))
            continue
        tp, values = draw(st.sampled_from(_SCALARS))
        value = draw(values)
        if kind == "scalar":
            fields[f"s{i}"] = (tp, value)
        elif kind == "optional":
            fields[f"o{i}"] = (tp | None, draw(st.sampled_from([None, value])))
        elif kind == "list":
            fields[f"l{i}"] = (list[tp], [value])  # type: ignore[valid-type]
        else:
            fields[f"d{i}"] = (dict[str, tp], {"k": value})  # type: ignore[valid-type]
    name = f"M{depth}x{draw(st.integers(0, 10**6))}"
    model: type[BaseModel] = create_model(name, __base__=_Strict, **fields)
    return model


@settings(max_examples=60, deadline=None)
@given(model=_model())
def test_random_models_give_structural_schemas_their_instances_satisfy(
    model: type[BaseModel],
) -> None:
    schema = crdschema.structural(model.model_json_schema())
    assert_structural(schema)
    instance = json.loads(model().model_dump_json(exclude_none=True, by_alias=True))
    jsonschema.Draft7Validator(schema).validate(instance)
