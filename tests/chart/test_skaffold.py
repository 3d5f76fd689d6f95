"""skaffold.yaml builds the three images from their Containerfiles and deploys the chart per profile."""

from __future__ import annotations

import re
from typing import Any

import yaml
from chartlib import CHART, ROOT, template

SKAFFOLD: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def _key(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", image)


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


def test_image_templates_set_chart_values_that_reach_the_pods() -> None:
    """What skaffold substitutes for IMAGE_REPO_*/IMAGE_TAG_* lands in the rendered images."""
    templates = SKAFFOLD["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    sets: list[str] = []
    expected = set()
    for a in SKAFFOLD["build"]["artifacts"]:
        repo, tag = f"registry.local:5000/{a['image'].rsplit('/', 1)[1]}", "abc123"
        for value, tmpl in templates.items():
            if tmpl == f"{{{{.IMAGE_REPO_{_key(a['image'])}}}}}":
                sets += ["--set", f"{value}={repo}"]
            elif tmpl == f"{{{{.IMAGE_TAG_{_key(a['image'])}}}}}":
                sets += ["--set", f"{value}={tag}"]
            elif tmpl == f"{{{{.IMAGE_FULLY_QUALIFIED_{_key(a['image'])}}}}}":
                sets += ["--set", f"{value}={repo}:{tag}"]
        expected.add(f"{repo}:{tag}")
    assert len(sets) == 2 * 7, "each image needs its repository and tag (or one fully qualified name)"
    images = set()
    for doc in template("dev", *sets):
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec)
        images |= {c["image"] for c in pod.get("containers", [])}
    assert expected <= images, images


def test_dev_mlflow_image_pins_the_workspaces_mlflow() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    (pin,) = re.findall(r'"mlflow==([^"]+)"', pyproject)
    assert f"mlflow=={pin}" in (ROOT / "mlflow" / "Containerfile").read_text()
