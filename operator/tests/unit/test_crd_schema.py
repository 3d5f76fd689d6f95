"""The CRD schema: generated from the models, structural, and as strict as the operator's parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ferry_generate import crds, files
from ferry_operator.resource import MAX_NAME_LENGTH, ModelDeploymentSpec
from ferry_testing.operator import GOOD, INVALID
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests/samples").glob("*.yaml"))


def test_committed_crds_match_the_models() -> None:
    assert files.stale(ROOT, only=["crds"]) == [], "run `make generate` and commit the result"


def test_stale_check_notices_a_hand_edit(tmp_path: Path) -> None:
    files.write(tmp_path, only=["crds"])
    assert files.stale(tmp_path, only=["crds"]) == []
    path = tmp_path / "manifests/crds/modeldeployments.ferry.dev.yaml"
    path.write_text(path.read_text().replace("maximum: 100", "maximum: 1000", 1))
    assert files.stale(tmp_path, only=["crds"]) == ["manifests/crds/modeldeployments.ferry.dev.yaml"]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for k, v in node.get("properties", {}).items():
            out += _walk(v, f"{path}.{k}")
        if "items" in node:
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    schema = crds.modeldeployment_schema()
    for path, node in _walk(schema):
        assert "$ref" not in node and "title" not in node and "const" not in node, path
        assert node.get("default", 0) is not None, f"{path}: null default"
        if "anyOf" in node:  # the only union Kubernetes allows without a type: int-or-string
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path


def test_schema_carries_the_validation_rules() -> None:
    spec = crds.modeldeployment_schema()["properties"]["spec"]["properties"]
    rules = [r["rule"] for r in spec["model"]["x-kubernetes-validations"]]
    assert rules == ["has(self.alias) != has(self.version)"]
    assert spec["autoscaling"]["properties"]["metric"]["enum"] == ["cpu", "memory"]
    assert spec["rollout"]["properties"]["strategy"]["enum"] == ["BlueGreen"]
    assert spec["rollout"]["properties"]["scaleDownDelaySeconds"]["minimum"] == 0
    assert "self.minReplicas <= self.maxReplicas" in str(spec["autoscaling"]["x-kubernetes-validations"])


def test_printer_columns_show_model_version_colour_phase_ready_age() -> None:
    version = crds.modeldeployment_crd()["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0]
    assert names == ["Model", "Version", "Color", "Phase", "Ready", "Age"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid(sample: Path) -> None:
    doc = yaml.safe_load(sample.read_text())
    assert doc["kind"] == "ModelDeployment" and doc["apiVersion"] == "ferry.dev/v1alpha1"
    assert len(doc["metadata"]["name"]) <= MAX_NAME_LENGTH
    ModelDeploymentSpec.model_validate(doc["spec"])


def test_samples_include_titanic() -> None:
    assert any("titanic-survival" in p.read_text() for p in SAMPLES)


@pytest.mark.parametrize(("case", "spec", "reason"), INVALID, ids=[c[0] for c in INVALID])
def test_operator_parser_rejects(case: str, spec: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate(spec)
    assert reason.lower() in str(err.value).lower()


def test_defaults_fill_a_minimal_spec() -> None:
    spec = ModelDeploymentSpec.model_validate(GOOD)
    assert (spec.autoscaling.minReplicas, spec.autoscaling.maxReplicas) == (1, 3)
    assert spec.rollout.autoPromote is True and spec.rollout.scaleDownDelaySeconds == 300
    assert spec.predictor.runtime == "ferry-mlflow"
    assert spec.model.uri == "models:/titanic-survival@champion"


@given(lo=st.integers(1, 100), hi=st.integers(1, 100))
def test_replica_bounds_accepted_exactly_when_ordered(lo: int, hi: int) -> None:
    spec = {**GOOD, "autoscaling": {"minReplicas": lo, "maxReplicas": hi}}
    if lo <= hi:
        assert ModelDeploymentSpec.model_validate(spec).autoscaling.minReplicas == lo
    else:
        with pytest.raises(ValidationError):
            ModelDeploymentSpec.model_validate(spec)
