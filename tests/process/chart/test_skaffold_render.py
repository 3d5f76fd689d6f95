"""What skaffold substitutes for its images lands in the pods helm renders (helm template)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from ferry_testing.chart import ROOT, template

SKAFFOLD: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def _key(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", image)


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
