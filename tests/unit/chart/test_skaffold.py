"""skaffold.yaml builds the three images from their Containerfiles and deploys the chart per profile.

(That its image templates reach the rendered pods is in tests/process/chart/test_skaffold_render.py.)
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from ferry_testing.chart import CHART, ROOT

SKAFFOLD: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def test_every_artifact_builds_from_a_containerfile_of_the_repository() -> None:
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert sorted(a["image"].rsplit("/", 1)[1] for a in artifacts) == [
        "ferry-gateway",
        "ferry-mlflow",
        "ferry-operator",
        "ferry-predictor",
    ]
    for a in artifacts:
        assert (ROOT / a["context"] / a["docker"]["dockerfile"]).is_file(), a


def test_profiles_deploy_each_environment_values_file() -> None:
    release = SKAFFOLD["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    files = {"dev": release["valuesFiles"]}
    for profile in SKAFFOLD["profiles"]:
        for patch in profile.get("patches", []):
            if patch["path"].endswith("/valuesFiles"):
                files[profile["name"]] = patch["value"]
    assert {env: [f.rsplit("/", 1)[1] for f in v] for env, v in files.items()} == {
        env: [f"values-{env}.yaml"] for env in ("dev", "staging", "prod")
    }
    assert {p["name"] for p in SKAFFOLD["profiles"]} == {"dev", "staging", "prod"}


def test_dev_mlflow_image_pins_the_workspaces_mlflow() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    (pin,) = re.findall(r'"mlflow==([^"]+)"', pyproject)
    assert f"mlflow=={pin}" in (ROOT / "mlflow" / "Containerfile").read_text()
