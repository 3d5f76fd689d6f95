"""charts/ferry/README.md's Prerequisites name every value the install checks, and its commands.

The checks themselves run against a cluster (tests/cluster/chart/test_chart_prerequisites.py,
which asserts the same `kubectl create` lines in helm's message).
"""

from __future__ import annotations

import re

from ferry_testing.chart import CHART

CHECKS = (CHART / "templates" / "_prerequisites.tpl").read_text()
README = (CHART / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_checked_value_is_in_the_prerequisites_section() -> None:
    values = {v.split(",")[0].split(":")[0] for v in re.findall(r'"value" (?:\(printf )?"([^"]+)"', CHECKS)}
    assert values >= {"gateway.secretName", "redis.external.secretName", "tests.apiKeySecret"}, values
    prerequisites = section("Prerequisites")
    missing = sorted(v for v in values if f"`{v}`" not in prerequisites)
    assert not missing, f"checked by _prerequisites.tpl, not in the README's Prerequisites: {missing}"
    for other in ("gateway.modelNamespace", "predictor.runtime.name", "gateway.createModelNamespace"):
        assert other in CHECKS and other in prerequisites, other


def test_the_readmes_commands_are_the_ones_the_failure_shows() -> None:
    """Each literal `--from-...` the checks print appears, with its Secret, in the README."""
    prerequisites = section("Prerequisites")
    literal = re.findall(r'"create" "((?:[^"\\]|\\.)+)"', CHECKS)
    assert literal, "no literal create arguments found in _prerequisites.tpl"
    for args in literal:
        unescaped = args.replace('\\"', '"')
        assert unescaped in prerequisites, f"{unescaped!r} not in the README's Prerequisites"
    assert "kubectl create namespace ml-staging" in prerequisites
    assert "kubectl delete clusterservingruntime ferry-mlflow" in prerequisites


def test_helm_test_section_names_the_hook_and_its_values() -> None:
    text = section("helm test")
    for needed in ("templates/tests/test-prediction.yaml", "`tests.apiKeySecret`", "`tests.enabled: false`"):
        assert needed in text, needed
    assert (CHART / "templates" / "tests" / "test-prediction.yaml").is_file()
