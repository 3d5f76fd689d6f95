"""kubectl-ferry's command line: cluster flags in any position, list/-A, -o, help, completion."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

import pytest
from ferry_operator.cli import complete_main
from ferry_operator.cliargs import (
    COMMANDS,
    EXIT_MEANINGS,
    Exit,
    build_parser,
    complete_words,
    completion_script,
    completion_spec,
)

PARSER = build_parser()
SUBCOMMANDS = [c.name for c in COMMANDS] + [a for c in COMMANDS for a in c.aliases]


def parse(*argv: str) -> argparse.Namespace:
    return PARSER.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "ml", "status", "titanic"],  # before the command
        ["status", "-n", "ml", "titanic"],  # between the command and NAME
        ["status", "titanic", "-n", "ml"],  # after NAME
        ["--namespace=ml", "status", "titanic"],
        ["status", "titanic", "--namespace=ml"],
        ["-nml", "status", "titanic"],
        ["status", "titanic", "-nml"],
        ["status", "--namespace", "ml", "titanic"],
    ],
)
def test_the_namespace_goes_anywhere_in_every_spelling(argv: list[str]) -> None:
    args = parse(*argv)
    assert (args.cmd, args.name, args.namespace) == ("status", "titanic", "ml")


@pytest.mark.parametrize("cmd", ["status", "history", "promote", "abort", "rollback", "retry"])
@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_every_cluster_flag_in_every_position_of_every_command(cmd: str, where: str) -> None:
    flags = ["-n", "ml", "--kubeconfig", "/tmp/kc", "--context", "kwok"]
    argv = {
        "before": [*flags, cmd, "titanic"],
        "between": [cmd, *flags, "titanic"],
        "after": [cmd, "titanic", *flags],
    }[where]
    args = parse(*argv)
    assert (args.cmd, args.name) == (cmd, "titanic")
    assert (args.namespace, args.kubeconfig, args.context) == ("ml", "/tmp/kc", "kwok")


def test_mixed_positions_keep_each_flag_and_a_flag_before_is_not_reset_by_the_subcommand() -> None:
    args = parse("--kubeconfig", "/tmp/kc", "status", "--context", "kwok", "titanic", "-n", "ml", "-w")
    assert (args.namespace, args.kubeconfig, args.context, args.watch) == ("ml", "/tmp/kc", "kwok", True)
    args = parse("-n", "ml", "--context", "kwok", "history", "titanic")  # nothing after: still set
    assert (args.namespace, args.context, args.kubeconfig) == ("ml", "kwok", None)
    args = parse("status", "titanic")
    assert (args.namespace, args.kubeconfig, args.context) == (None, None, None)
    args = parse("-n", "first", "status", "titanic", "-n", "last")  # as kubectl: the last one wins
    assert args.namespace == "last"


@pytest.mark.parametrize("cmd", ["list", "get"])
def test_list_and_its_alias_get_take_all_namespaces_and_output(cmd: str) -> None:
    args = parse(cmd, "-A", "-o", "json")
    assert (args.cmd, args.all_namespaces, args.output) == ("list", True, "json")
    args = parse("-n", "ml", cmd, "--all-namespaces", "--output=yaml")
    assert (args.all_namespaces, args.output, args.namespace) == (True, "yaml", "ml")
    args = parse(cmd, "-n", "ml")
    assert (args.all_namespaces, args.output, args.namespace) == (False, "table", "ml")


@pytest.mark.parametrize("cmd", [["status", "titanic"], ["history", "titanic"], ["list"]])
def test_output_is_table_by_default_and_json_or_yaml_on_request(cmd: list[str]) -> None:
    assert parse(*cmd).output == "table"
    assert parse(*cmd, "-o", "json").output == "json"
    assert parse(*cmd, "--output", "yaml").output == "yaml"
    assert parse(*cmd, "-ojson").output == "json"


def test_a_bad_output_is_a_usage_error_naming_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("status", "titanic", "-o", "xml")
    err = capsys.readouterr().err
    assert exit_.value.code == Exit.USAGE == 2
    assert "--output" in err and "'xml'" in err and "json" in err


def test_all_namespaces_is_a_list_flag_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("status", "titanic", "-A")
    assert exit_.value.code == 2 and "-A" in capsys.readouterr().err


def test_flags_are_not_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    """As kubectl: `--name` is not silently `--namespace`."""
    with pytest.raises(SystemExit):
        parse("status", "titanic", "--name", "ml")
    assert "unrecognized arguments: --name" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help_with_an_example_and_the_exit_codes(
    cmd: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(cmd, "--help")
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    canonical = next(c.name for c in COMMANDS if cmd in (c.name, *c.aliases))
    assert f"examples:\n  kubectl ferry {canonical}" in out or f"kubectl ferry {canonical} bash" in out
    assert "cluster flags (before or after the command)" in out and "exit codes:" in out


def test_top_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    assert [int(c) for c in EXIT_MEANINGS] == [0, 1, 2, 3, 4]
    for code in EXIT_MEANINGS:
        assert f"\n  {int(code)}  " in out


def _parser_tree() -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Commands, each one's flags, and every choice, read from the parser (not a list here)."""
    sub = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
    flags = {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}
    choices = {str(c) for p in sub.choices.values() for a in p._actions if a.choices for c in a.choices}
    return set(sub.choices), flags, choices


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_has_every_command_flag_and_choice(shell: str) -> None:
    script = completion_script(PARSER, shell)
    commands, flags, choices = _parser_tree()
    assert commands >= set(SUBCOMMANDS)
    assert "complete -F _kubectl_ferry kubectl-ferry" in script
    words = set(script.replace("'", " ").replace('"', " ").split())
    assert commands <= words
    for cmd, cmd_flags in flags.items():
        line = next(x for x in script.splitlines() if x.strip().startswith(f"{cmd}) flags="))
        assert set(line.split("=", 1)[1].strip(" ;'").split()) == cmd_flags, cmd
    assert choices <= words
    assert {"-n", "--namespace", "--kubeconfig", "--context", "-A", "--all-namespaces", "-o"} <= words
    if shell == "zsh":
        assert "bashcompinit" in script


def test_completion_spec_knows_which_flags_take_a_value() -> None:
    spec = completion_spec(PARSER)
    assert {"-n", "--namespace", "--kubeconfig", "--context", "-o", "--output"} <= set(spec.value_flags)
    assert not {"-A", "-w", "--wait", "--watch"} & set(spec.value_flags)
    assert set(spec.takes_name) == {"status", "history", "promote", "abort", "rollback", "retry"}


def names(ns: str | None) -> list[str]:
    return {"ml": ["titanic", "iris"]}.get(ns or "default", ["default-one"])


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([""], list(completion_spec(PARSER).commands)),
        (["st"], ["status"]),
        (["-n", "ml", "st"], ["status"]),
        (["status", "--wa"], ["--watch"]),
        (["list", "-o", ""], ["table", "wide", "json", "yaml"]),
        (["list", "--output=j"], ["--output=json"]),
        (["-n", "ml", "status", "ti"], ["titanic"]),
        (["status", "--namespace=ml", ""], ["titanic", "iris"]),
        (["status", "-nml", "i"], ["iris"]),
        (["promote", ""], ["default-one"]),
        (["status", "titanic", ""], list(completion_spec(PARSER).commands["status"])),
        (["completion", ""], ["bash", "zsh"]),
        (["status", "-n", ""], []),  # a namespace: not listed
        (["list", "-"], list(completion_spec(PARSER).commands["list"])),
    ],
)
def test_kubectl_complete_answers_as_the_bash_script(words: list[str], expected: list[str]) -> None:
    assert complete_words(PARSER, words, names) == expected


def test_kubectl_complete_prints_cobras_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert complete_main(["hist"]) == 0
    assert capsys.readouterr().out == "history\n:4\n"


def test_both_executables_are_installed_entry_points() -> None:
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["kubectl-ferry"] == "ferry_operator.cli:main"
    assert scripts["kubectl_complete-ferry"] == "ferry_operator.cli:complete_main"
