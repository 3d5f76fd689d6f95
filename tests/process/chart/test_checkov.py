"""checkov (PyPI) finds nothing in the rendered chart but the reasoned allow-list, in every
environment, and every allow-list entry is still needed (issue 13, finding 11).

The allow-list is charts/ferry/checkov-allowlist.yaml; checkov runs at a pinned version as a uv
tool (ferry_testing.checkov), installed on first use.
"""

from __future__ import annotations

import pytest
from ferry_testing import checkov
from ferry_testing.chart import ENVIRONMENTS, template

ALL_ENVS = (None, *ENVIRONMENTS)


@pytest.fixture(scope="module")
def failures() -> dict[str | None, list[checkov.Failure]]:
    """Each environment's render, scanned once (a scan takes seconds)."""
    return {env: checkov.scan(template(env)) for env in ALL_ENVS}


@pytest.mark.parametrize("env", ALL_ENVS, ids=lambda e: e or "default")
def test_rendered_chart_fails_no_check_outside_the_allow_list(
    env: str | None, failures: dict[str | None, list[checkov.Failure]]
) -> None:
    found = checkov.unexpected(failures[env], checkov.load_allowlist("chart"))
    assert not found, "\n".join(map(str, found))


def test_every_allow_list_entry_is_still_needed(failures: dict[str | None, list[checkov.Failure]]) -> None:
    every = [f for found in failures.values() for f in found]
    stale = checkov.unused(every, checkov.load_allowlist("chart"))
    assert not stale, "no longer failed, remove from the allow-list: " + ", ".join(
        f"{a.check} {a.kinds} {a.names}" for a in stale
    )


def test_the_scan_sees_what_it_must_refuse() -> None:
    """The scan is not vacuous: the chart's own Redis, with its pod hardening taken away, fails
    the checks the allow-list does not grant."""
    docs = template("dev")
    (redis,) = (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-redis"))
    pod = redis["spec"]["template"]["spec"]
    pod["securityContext"] = {}
    pod.pop("automountServiceAccountToken")
    del pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    found = {f.check for f in checkov.unexpected(checkov.scan([redis]), checkov.load_allowlist("chart"))}
    # root filesystem, seccomp, high uid, token, and its NetworkPolicy missing from the scan
    assert {"CKV_K8S_22", "CKV_K8S_31", "CKV_K8S_40", "CKV_K8S_38", "CKV2_K8S_6"} <= found, found
