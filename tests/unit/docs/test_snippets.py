"""Every fenced block of every README.md and docs/*.md is named and run (or validated) by a test:
the repository check, the harness's parser and coverage rules, and the YAML blocks validated here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ferry_gateway.consumers.crd import ConsumerSpec
from ferry_gateway.limits.tiers import parse_limits
from ferry_testing import snippets

GATEWAY = snippets.claim("gateway/README.md", "consumer-resource", "limits-file")

# Blocks whose commands need root, fixed ports, the whole stack or a cluster: tied to the tests
# that do what they say. Their make lines are also dry-run (tests/process/docs/test_readme_snippets.py)
# and their curl bodies sent to the real model (tests/process/docs/test_clients_guide.py).
TIES = [
    snippets.tie(
        "README.md",
        "two-commands",
        by="tests/node/test_stack.py::test_at_load_a_scale_up_a_rollout_its_scale_down_and_a_deleted_pod_lose_nothing",
        why="the stack fixture runs `make up`'s own command; `make demo` is run by no test yet",
    ),
    snippets.tie(
        "README.md",
        "local-clusters",
        by="tests/cluster/test_cluster.py::test_server_runs_the_pinned_release_and_the_node_is_ready",
        why="the kubeconfig fixture starts the kwok cluster as `make start-cluster` does",
    ),
    snippets.tie(
        "charts/ferry/README.md",
        "prerequisites-failure",
        by="tests/cluster/chart/test_chart_prerequisites.py::test_missing_models_namespace_is_named_and_then_created",
        why="the helm failure this output shows",
    ),
    snippets.tie(
        "charts/ferry/README.md",
        "helm-test",
        by="tests/node/test_helm_test.py::test_helm_test_passes_then_fails_clearly_when_the_gateway_cannot_answer",
        why="`helm test ferry -n ferry` on the make-up stack",
    ),
    snippets.tie(
        "gateway/README.md",
        "consumers-file",
        by="gateway/tests/process/test_gateway_http.py::test_key_revocation_and_expiry_take_effect_at_once",
        why="`ferry keys create/list/revoke` on a consumers file the gateway reads",
    ),
    snippets.tie(
        "operator/README.md",
        "run-it",
        by="operator/tests/cluster/test_operator.py::test_samples_and_defaults_pass_the_api_server",
        why="the operator on the local cluster with the sample ModelDeployment",
    ),
    snippets.tie(
        "operator/README.md",
        "plugin",
        by="operator/tests/cluster/test_plugin.py::test_list_all_namespaces_as_json_and_as_a_table",
        why="the plugin's commands, flags and completion on the local cluster (test_plugin.py)",
    ),
    snippets.tie(
        "predictor/README.md",
        "run-it",
        by="predictor/tests/process/test_predictor_server.py::test_v1_predict_answers_with_classes_probabilities_and_identity",
        why="ferry-predictor started with MODEL_URI/MLFLOW_TRACKING_URI/FERRY_COLOR as the README does",
    ),
    snippets.tie(
        "tests/load/README.md",
        "locust",
        "locust-test",
        by="tests/process/test_locustfile.py::test_both_protocols_and_the_preview_are_tagged_by_version_and_colour",
        why="the locustfile run headless against a real gateway and predictors",
    ),
]


def test_every_block_in_the_docs_is_named_and_run_by_a_test() -> None:
    problems = snippets.coverage()
    assert problems == [], "\n".join(problems)


def test_the_docs_walked_include_every_readme_and_the_client_guide() -> None:
    docs = {p.relative_to(snippets.REPO).as_posix() for p in snippets.documents()}
    assert {"README.md", "gateway/README.md", "tests/load/README.md", "docs/clients.md"} <= docs
    assert not any(d.startswith((".venv/", ".local/")) for d in docs)


# ---- the gateway README's YAML, validated as the gateway reads it ------------------------------


def test_the_consumer_resource_is_a_valid_consumer() -> None:
    doc = yaml.safe_load(GATEWAY.text("consumer-resource"))
    assert (doc["apiVersion"], doc["kind"]) == ("ferry.dev/v1alpha1", "Consumer")
    spec = ConsumerSpec.model_validate(doc["spec"])
    assert spec.tier == "pro"


def test_the_limits_file_parses_with_its_per_model_limit() -> None:
    limits = parse_limits(yaml.safe_load(GATEWAY.text("limits-file")))
    assert limits.tier("free").per_minute == 30 and limits.tier("partner").per_day is None


# ---- the parser ------------------------------------------------------------------------------

MD = """# Title

<!-- snippet: first -->
```bash
echo one
```

text

```yaml
a: 1
```

<!-- snippet: longer -->
````markdown
```nested
````

- item

  <!-- snippet: indented -->
  ~~~python
  print(1)
  ~~~
"""


def test_parse_names_blocks_by_the_comment_right_before_the_fence() -> None:
    got = [(b.name, b.lang, b.code, b.line) for b in snippets.parse(MD, "x.md")]
    assert got == [
        ("first", "bash", "echo one\n", 4),
        (None, "yaml", "a: 1\n", 10),
        ("longer", "markdown", "```nested\n", 15),
        ("indented", "python", "print(1)\n", 22),
    ]


def _tree(tmp_path: Path, doc: str, module: str) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(doc)
    (tmp_path / "pkg" / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "pkg" / "tests" / "unit" / "test_guide.py").write_text(module)
    return tmp_path


DOC = "<!-- snippet: a -->\n```bash\ntrue\n```\n\n<!-- snippet: b -->\n```bash\ntrue\n```\n"


def test_coverage_is_clean_when_every_block_is_claimed_and_run(tmp_path: Path) -> None:
    module = 'G = claim("docs/guide.md", "a", "b")\nG.bash("a")\nG.python("b")\n'
    assert snippets.coverage(_tree(tmp_path, DOC, module)) == []


@pytest.mark.parametrize(
    ("doc", "module", "problem"),
    [
        ("```bash\ntrue\n```\n", "", "has no `<!-- snippet: NAME -->` line"),
        (DOC, 'G = claim("docs/guide.md", "a")\nG.bash("a")\n', "snippet 'b' is run by no test"),
        (
            DOC,
            'G = claim("docs/guide.md", "a", "b")\nG.bash("a")\n',
            "claims docs/guide.md snippet 'b' but never runs",
        ),
        (
            DOC,
            'G = claim("docs/guide.md", "a", "b", "c")\nG.bash("a")\nG.bash("b")\n',
            "'c', which does not exist",
        ),
        (DOC + DOC, "", "named twice"),
        (
            DOC,
            'tie("docs/guide.md", "a", "b", by="pkg/tests/unit/test_other.py::test_x", why="")\n',
            "which is not a test function",
        ),
    ],
)
def test_coverage_names_each_gap(tmp_path: Path, doc: str, module: str, problem: str) -> None:
    problems = snippets.coverage(_tree(tmp_path, doc, module))
    assert any(problem in p for p in problems), problems


def test_a_tie_to_an_existing_test_covers_its_blocks(tmp_path: Path) -> None:
    by = "pkg/tests/unit/test_guide.py::test_x"
    module = f'tie("docs/guide.md", "a", "b", by="{by}", why="")\ndef test_x(): ...\n'
    assert snippets.coverage(_tree(tmp_path, DOC, module)) == []


def test_a_runner_refuses_a_name_its_claim_does_not_hold(tmp_path: Path) -> None:
    root = _tree(tmp_path, DOC, "")
    doc = "docs/guide.md"  # not a literal in the call: this is no claim on the repository's docs
    guide = snippets.claim(doc, "a", root=root)
    assert guide.text("a") == "true\n"
    with pytest.raises(KeyError, match="not claimed"):
        guide.text("b")
    with pytest.raises(KeyError, match="has no block named c"):
        snippets.claim(doc, "c", root=root)
