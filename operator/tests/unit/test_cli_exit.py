"""kubectl-ferry's exit codes from the API errors scripts meet, with a fake cluster (no network)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from ferry_operator import cli
from ferry_operator.cliargs import Exit
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import MaxRetryError, ReadTimeoutError


def api_error(status: int, reason: str, message: str = "") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message}) if message else None
    return exc


MD = {
    "metadata": {"name": "titanic", "namespace": "ml", "creationTimestamp": "2026-11-23T18:00:00Z"},
    "spec": {"model": {"name": "titanic-survival", "version": "3"}},
    "status": {"phase": "Stable", "history": [{"action": "Promoted", "toVersion": "3", "time": "t1"}]},
}


class FakeCluster:
    """Cluster's surface; each call answers from ``objects`` or raises ``error``."""

    error: ClassVar[BaseException | None] = None
    namespaces: ClassVar[set[str]] = {"ml"}
    objects: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}
    apply_command: ClassVar[bool] = True

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        if isinstance(self.error, ConfigException):
            raise self.error
        self.default_namespace = "default"
        self.commands: list[str] = []

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def get(self, ns: str, name: str) -> dict[str, Any]:
        self._raise()
        if (ns, name) not in self.objects:
            raise api_error(404, "Not Found", f'modeldeployments.ferry.dev "{name}" not found')
        md = json.loads(json.dumps(self.objects[(ns, name)]))
        if self.commands and self.apply_command:  # the operator applied it, changing nothing
            md["status"]["rollout"] = {"lastCommand": self.commands[-1]}
        return md  # type: ignore[no-any-return]

    def list_mds(self, ns: str | None) -> list[dict[str, Any]]:
        self._raise()
        return [md for (n, _), md in self.objects.items() if ns in (None, n)]

    def namespace_missing(self, ns: str) -> bool:
        return ns not in self.namespaces

    def routes(self, ns: str, name: str) -> dict[str, str | None]:
        return {name: "blue", f"{name}-preview": "blue"}

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        return []

    def command(self, ns: str, name: str, verb: str) -> str:
        self.commands.append(f"{verb}@now")
        return self.commands[-1]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeCluster]:
    class Fake(FakeCluster):
        error = None
        objects: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {("ml", "titanic"): MD}

    monkeypatch.setattr(cli, "Cluster", Fake)
    return Fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_missing_modeldeployment_is_exit_3_naming_it_and_its_namespace(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["status", "nope", "-n", "ml"],
        ["history", "nope", "-n", "ml"],
        ["promote", "nope", "-nml"],
    ):
        code, _, err = run(capsys, *argv)
        assert (code, err) == (3, "error: modeldeployment 'nope' not found in namespace 'ml'\n"), argv


def test_a_missing_namespace_is_exit_3_naming_the_namespace(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "status", "titanic", "-n", "mll")
    assert (code, err) == (3, "error: namespace 'mll' not found\n")


def test_list_without_the_crd_is_exit_3_saying_to_install_it(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.error = api_error(404, "Not Found", "the server could not find the requested resource")
    code, _, err = run(capsys, "list", "-A")
    assert code == Exit.NOT_FOUND and "modeldeployments.ferry.dev" in err and "CRD" in err


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (api_error(401, "Unauthorized"), "not allowed: the API server said 401 Unauthorized"),
        (
            api_error(403, "Forbidden", 'modeldeployments.ferry.dev is forbidden: User "bob" cannot get'),
            'the API server said 403 Forbidden: modeldeployments.ferry.dev is forbidden: User "bob"',
        ),
        (api_error(503, "Service Unavailable"), "cannot reach the cluster: the API server said 503"),
        (MaxRetryError(None, "/apis", "Connection refused"), "cannot reach the cluster"),  # type: ignore[arg-type]
        (ReadTimeoutError(None, "/apis", "Read timed out."), "cannot reach the cluster"),  # type: ignore[arg-type]
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (ConfigException("Expected key current-context in kube-config"), "cannot use the kubeconfig"),
    ],
)
def test_unreachable_or_unauthorised_is_exit_4_with_the_reason(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str], error: BaseException, words: str
) -> None:
    fake.error = error
    for argv in (["status", "titanic"], ["list", "-A"], ["abort", "titanic"]):
        code, out, err = run(capsys, *argv)
        assert code == Exit.UNREACHABLE == 4, (argv, err)
        assert err.startswith("error: ") and words in err and out == ""


def test_another_api_refusal_is_exit_1(fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    fake.error = api_error(422, "Unprocessable Entity", "metadata.annotations: Invalid value")
    code, _, err = run(capsys, "-n", "ml", "retry", "titanic")
    assert code == Exit.NOT_AS_ASKED and "422 Unprocessable Entity: metadata.annotations" in err


def test_a_bug_is_not_hidden_behind_an_exit_code(fake: type[FakeCluster]) -> None:
    fake.error = KeyError("status")
    with pytest.raises(KeyError):
        cli.main(["status", "titanic", "-n", "ml"])


def test_a_command_the_operator_ignored_is_exit_1_with_wait_and_0_without(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "promote", "titanic", "-n", "ml", "--wait")
    assert code == Exit.NOT_AS_ASKED
    assert "promote requested for ml/titanic" in out
    assert err == "error: the operator ignored the command: promote: no rollout in progress (phase Stable)\n"
    code, out, _ = run(capsys, "promote", "titanic", "-n", "ml")
    assert code == Exit.OK and "promote requested" in out


def test_retry_with_wait_is_exit_0_once_applied(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "retry", "--wait", "titanic", "-n", "ml")
    assert code == Exit.OK and "applied: phase Stable" in out


def test_list_and_status_print_the_chosen_format(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "-A", "-o", "json")
    assert code == 0 and [r["name"] for r in json.loads(out)["items"]] == ["titanic"]
    code, out, _ = run(capsys, "list", "-n", "ml")
    assert code == 0 and out.splitlines()[0].startswith("NAME ")
    code, out, err = run(capsys, "list", "-n", "empty")
    assert (code, out, err) == (0, "", "No ModelDeployments found in namespace 'empty'.\n")
    code, out, _ = run(capsys, "list", "-n", "empty", "-o", "json")
    assert json.loads(out) == {"items": []}
    code, out, _ = run(capsys, "status", "titanic", "-n", "ml", "-o", "json")
    assert json.loads(out)["services"] == {"titanic": "blue", "titanic-preview": "blue"}


def test_completion_needs_no_cluster(fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    fake.error = ConfigException("no kubeconfig")
    code, out, _ = run(capsys, "completion", "bash")
    assert code == 0 and "complete -F _kubectl_ferry kubectl-ferry" in out


def test_a_kubeconfig_that_is_not_there_is_named(
    fake: type[FakeCluster], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "list", "--kubeconfig", "/nonexistent/kubeconfig")
    assert (code, err) == (4, "error: --kubeconfig /nonexistent/kubeconfig: no such file\n")
