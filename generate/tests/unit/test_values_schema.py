"""values.schema.json from ferry_generate.values: accepts every values file, rejects what helm must.

The same rejections run through helm in tests/process/chart/test_chart_render.py; here they run
in-process against the generated schema, so a schema change shows without a helm binary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ferry_generate import values

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ferry"
ENVIRONMENTS = ("dev", "staging", "prod")


def _merge(base: Any, over: Any) -> Any:
    """helm's merge of a values file over values.yaml: maps merge, everything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base[k], v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over
        }
    return over


def _values(env: str | None) -> dict[str, Any]:
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    if env:
        merged = _merge(merged, yaml.safe_load((CHART / f"values-{env}.yaml").read_text()))
    return merged


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(values.schema())


@pytest.mark.parametrize("env", (None, *ENVIRONMENTS), ids=lambda e: e or "default")
def test_every_values_file_satisfies_the_schema_and_the_typed_values(env: str | None) -> None:
    merged = _values(env)
    _validator().validate(merged)
    values.VALUES.validate_python(merged)  # the TypedDicts themselves agree


def test_the_schema_is_a_valid_draft_7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(values.schema())
    assert values.schema()["title"] == values.TITLE


def _set(path: str, value: Any) -> dict[str, Any]:
    merged = _values(None)
    *parents, leaf = path.split(".")
    node = merged
    for p in parents:
        node = node[p]
    node[leaf] = value
    return merged


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("gateway.rateLimitFailureMode", "sometimes", ["gateway", "rateLimitFailureMode"]),
        ("gateway.replicaz", 3, ["gateway"]),
        ("gateway.port", 70000, ["gateway", "port"]),
        ("gateway.maxBodyBytes", 10 * 1024 * 1024, ["gateway", "maxBodyBytes"]),
        ("gateway.headerTimeoutSeconds", 0, ["gateway", "headerTimeoutSeconds"]),
        ("gateway.limitConcurrency", 0, ["gateway", "limitConcurrency"]),
        ("gateway.secretName", "", ["gateway"]),
        ("image.pullPolicy", "Sometimes", ["image", "pullPolicy"]),
        ("operator.peering.name", "Not_DNS", ["operator", "peering", "name"]),
        ("mlflow.external.trackingUri", "ftp://x", ["mlflow", "external", "trackingUri"]),
        ("gateway.autoscaling.maxReplicas", "many", ["gateway", "autoscaling", "maxReplicas"]),
        ("redis.external.secretName", "", ["redis"]),
        ("gateway.resources.limits.cpu", "lots", ["gateway", "resources", "limits", "cpu"]),
        ("gateway.jwt.jwksUrl", "http://idp.example/jwks", ["gateway", "jwt", "jwksUrl"]),
        ("gateway.jwt.refreshSeconds", 0, ["gateway", "jwt", "refreshSeconds"]),
    ],
)
def test_the_schema_rejects_wrong_values(path: str, value: Any, where: list[str]) -> None:
    errors = list(_validator().iter_errors(_set(path, value)))
    assert errors, f"{path}={value!r} accepted"
    assert any(list(e.absolute_path)[: len(where)] == where for e in errors), [e.message for e in errors]


def test_a_jwks_without_issuer_is_rejected_outside_dev_mode() -> None:
    merged = _set("gateway.jwt", {"jwksUrl": "https://idp.example/jwks", "issuer": "", "audience": "x"})
    assert list(_validator().iter_errors(merged))
    merged["gateway"]["devMode"] = True
    _validator().validate(merged)
