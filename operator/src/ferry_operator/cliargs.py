"""``kubectl ferry``'s command line, built in one place: the parser, the exit codes, and shell
completion derived from the parser (so it cannot miss a command or a flag).

The cluster flags (``-n/--namespace``, ``--kubeconfig``, ``--context``) go anywhere, as with
kubectl: before the command, between it and NAME, or after NAME. They are on the top parser and,
through a shared parent, on every subcommand, where their default is ``SUPPRESS`` so a value given
before the command is not overwritten by the subcommand's default.
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from ferry_operator.cliview import OUTPUT_FORMATS

PROG = "kubectl ferry"
VERBS = ("promote", "abort", "rollback", "retry")
SHELLS = ("bash", "zsh")
WEBHOOK_ACTIONS = ("register", "status")


class Exit(IntEnum):
    """What a script can rely on. Argo Rollouts' plugin has only 0 and 1; 2 is argparse's."""

    OK = 0
    NOT_AS_ASKED = 1  # it ran, but the outcome is not what was asked
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4


class Failure(Exception):
    """A failure with its exit code and the message for stderr."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


EXIT_MEANINGS = {
    Exit.OK: "done (for status/list/history: shown)",
    Exit.NOT_AS_ASKED: (
        "ran, but not as asked: the operator ignored the command (e.g. promote with no rollout in "
        "progress, seen with --wait), --wait timed out, or the API server refused the request"
    ),
    Exit.USAGE: "usage error: unknown command or flag, bad value (e.g. -o xml)",
    Exit.NOT_FOUND: "not found: no such ModelDeployment or namespace, or the CRD is not installed",
    Exit.UNREACHABLE: (
        "cannot reach the cluster or not allowed: kubeconfig/context unusable, connection "
        "failed or timed out, 401/403, API server unavailable (5xx)"
    ),
}


def exit_codes_text() -> str:
    lines = ["exit codes:"]
    for code, text in EXIT_MEANINGS.items():
        wrapped = textwrap.wrap(text, 72)
        lines.append(f"  {int(code)}  {wrapped[0]}")
        lines.extend(f"     {more}" for more in wrapped[1:])
    return "\n".join(lines)


EXIT_SUMMARY = (
    "exit codes: 0 ok, 1 not as asked, 2 usage, 3 not found, 4 cluster unreachable or not\n"
    "allowed (details: kubectl ferry --help)"
)

CLUSTER_FLAGS_TITLE = "cluster flags (before or after the command)"


def _cluster_flags(*, suppress: bool) -> argparse.ArgumentParser:
    """The flags every command takes; ``suppress`` for the subcommands' copies (see the module doc)."""
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group(CLUSTER_FLAGS_TITLE)

    def default(value: str | None) -> str | None:
        return argparse.SUPPRESS if suppress else value

    group.add_argument(
        "-n", "--namespace", default=default(None), help="namespace (default: the context's, else 'default')"
    )
    group.add_argument(
        "--kubeconfig", default=default(None), help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    group.add_argument(
        "--context", default=default(None), help="kubeconfig context (default: the current one)"
    )
    return parent


def _output_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default="table",
        help="table (default; wide is the same), or json/yaml for scripts: the table's data, stable keys",
    )


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    example: str
    aliases: tuple[str, ...] = ()


COMMANDS = (
    Command(
        "list",
        "every ModelDeployment: model, active colour and version, phase, ready, preview, smoke verdict",
        "kubectl ferry list -n ml\nkubectl ferry get -A -o json",
        aliases=("get",),
    ),
    Command(
        "status",
        "colours, versions, replicas, phase, smoke verdict, conditions, recent events",
        "kubectl ferry status titanic -n ml\nkubectl ferry status titanic -n ml --watch\n"
        "kubectl ferry status titanic -n ml -o json",
    ),
    Command(
        "history",
        "promotions, aborts and rollbacks, newest first",
        "kubectl ferry history titanic -n ml\nkubectl ferry history titanic -n ml -o yaml",
    ),
    Command(
        "promote",
        "switch traffic to the verified preview (waits for verification if still running)",
        "kubectl ferry promote titanic -n ml --wait",
    ),
    Command(
        "abort",
        "tear the preview down; the active colour keeps serving",
        "kubectl ferry abort titanic -n ml --wait",
    ),
    Command(
        "rollback",
        "return to the previous version (instant while its colour still runs)",
        "kubectl ferry rollback titanic -n ml --wait",
    ),
    Command(
        "retry",
        "roll out again a version that was aborted or rolled back",
        "kubectl ferry retry titanic -n ml",
    ),
    Command(
        "webhook",
        "register the operator's receiver as an MLflow webhook (then a test delivery), or show"
        " MLflow's Ferry webhooks and the last deliveries the operator acted on",
        "kubectl ferry webhook register --mlflow https://mlflow.example \\\n"
        "    --url https://ferry-operator.example:8443/hooks/mlflow --secret-file webhook-secret\n"
        "kubectl ferry webhook status --mlflow https://mlflow.example -A",
    ),
    Command(
        "completion",
        "print a shell completion script (bash or zsh)",
        "source <(kubectl ferry completion bash)   # in ~/.bashrc\n"
        "source <(kubectl ferry completion zsh)    # in ~/.zshrc",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See and steer Ferry ModelDeployments (blue-green rollouts of MLflow models).",
        epilog="examples:\n  kubectl ferry list -A\n  kubectl ferry status titanic -n ml --watch\n\n"
        + exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_cluster_flags(suppress=False)],
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    shared = _cluster_flags(suppress=True)
    for c in COMMANDS:
        p = sub.add_parser(
            c.name,
            aliases=list(c.aliases),
            help=c.help,
            description=c.help[0].upper() + c.help[1:] + ".",
            epilog="examples:\n"
            + "\n".join(f"  {line}" for line in c.example.splitlines())
            + "\n\n"
            + EXIT_SUMMARY,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[shared],
            allow_abbrev=False,
        )
        p.set_defaults(cmd=c.name)  # the alias (`get`) runs its command (`list`)
        if c.name == "list":
            p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
            _output_flag(p)
        elif c.name == "completion":
            p.add_argument("shell", choices=SHELLS)
        elif c.name == "webhook":
            p.add_argument("action", choices=WEBHOOK_ACTIONS)
            p.add_argument("--mlflow", required=True, metavar="URI", help="the MLflow tracking server")
            p.add_argument("--token-file", metavar="FILE", help="a bearer token for MLflow, read from FILE")
            p.add_argument(
                "--url", metavar="URL", help="register: where MLflow delivers (the operator's /hooks/mlflow)"
            )
            p.add_argument(
                "--secret-file",
                metavar="FILE",
                help="register: the operator's FERRY_WEBHOOK_SECRET, read from FILE (- for stdin)",
            )
            p.add_argument(
                "--name", default="ferry", help="register: the webhook's name in MLflow (default ferry)"
            )
            p.add_argument(
                "-A", "--all-namespaces", action="store_true", help="status: deliveries in every namespace"
            )
        else:
            p.add_argument("name", metavar="NAME", help="the ModelDeployment")
            if c.name in ("status", "history"):
                _output_flag(p)
            if c.name == "status":
                p.add_argument(
                    "-w",
                    "--watch",
                    action="store_true",
                    help="print again whenever it changes (Ctrl-C stops)",
                )
            if c.name in VERBS:
                p.add_argument(
                    "--wait",
                    action="store_true",
                    help="wait until the operator has applied the command; exit 1 if it ignored it",
                )
    return parser


# ---- completion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionSpec:
    """What the parser accepts, in the shape a completion script needs."""

    global_flags: tuple[str, ...]
    commands: dict[str, tuple[str, ...]]  # command (and alias) -> its flags
    values: dict[str, tuple[str, ...]]  # flag or "<command> positional" -> its choices
    takes_name: tuple[str, ...]  # commands whose positional is a ModelDeployment name
    value_flags: tuple[str, ...]  # flags followed by a value


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError("the parser has no subcommands")


def _flags(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings:
            yield action


def completion_spec(parser: argparse.ArgumentParser) -> CompletionSpec:
    values: dict[str, tuple[str, ...]] = {}
    value_flags: set[str] = set()

    def note(action: argparse.Action) -> None:
        if action.nargs != 0:
            value_flags.update(action.option_strings)
        if action.choices:
            for opt in action.option_strings:
                values[opt] = tuple(str(c) for c in action.choices)

    global_flags: list[str] = []
    for action in _flags(parser):
        global_flags.extend(action.option_strings)
        note(action)
    commands: dict[str, tuple[str, ...]] = {}
    takes_name: list[str] = []
    for name, sub in _subparsers(parser).choices.items():
        flags: list[str] = []
        for action in _flags(sub):
            flags.extend(action.option_strings)
            note(action)
        commands[name] = tuple(flags)
        for action in sub._actions:
            if not action.option_strings and action.dest == "name":
                takes_name.append(name)
            elif not action.option_strings and action.choices:
                values[f"{name} positional"] = tuple(str(c) for c in action.choices)
    return CompletionSpec(
        tuple(global_flags), commands, values, tuple(takes_name), tuple(sorted(value_flags))
    )


def _words(items: tuple[str, ...] | list[str]) -> str:
    return shlex.quote(" ".join(items))


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A static bash completion for ``kubectl-ferry``: commands, flags, choices, and ModelDeployment
    names from the cluster (``kubectl get modeldeployments``, in the namespace typed so far)."""
    spec = completion_spec(parser)
    cases = "\n".join(
        f"        {name}) flags={_words(list(spec.commands[name]))} ;;" for name in spec.commands
    )
    value_cases = "\n".join(
        f"        {flag}) choices={_words(list(v))} ;;"
        for flag, v in spec.values.items()
        if flag.startswith("-")
    )
    positional_cases = "\n".join(
        f"        {key.split()[0]}) positional={_words(list(v))} ;;"
        for key, v in spec.values.items()
        if key.endswith(" positional")
    )
    return f"""# bash completion for kubectl-ferry, generated from its parser.
# Load it with: source <(kubectl ferry completion bash)
_kubectl_ferry_names() {{
    local ns_args=()
    [[ -n "$1" ]] && ns_args=(-n "$1")
    kubectl get modeldeployments.ferry.dev "${{ns_args[@]}}" \\
        -o jsonpath='{{range .items[*]}}{{.metadata.name}}{{" "}}{{end}}' 2>/dev/null
}}

_kubectl_ferry() {{
    local cur prev cmd="" ns="" i w have_name=""
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    # bash splits `--output=json` into `--output` `=` `json` (COMP_WORDBREAKS has `=`)
    [[ "$prev" == "=" && $COMP_CWORD -ge 2 ]] && prev="${{COMP_WORDS[COMP_CWORD-2]}}"
    local commands={_words(list(spec.commands))}
    local value_flags=" {" ".join(spec.value_flags)} "
    local takes_name=" {" ".join(spec.takes_name)} "
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ "$value_flags" == *" $w "* ]]; then
            [[ "${{COMP_WORDS[i+1]}}" == "=" ]] && ((i++))
            [[ "$w" == "-n" || "$w" == "--namespace" ]] && ns="${{COMP_WORDS[i+1]}}"
            ((i++))
            continue
        fi
        case "$w" in
            --namespace=*) ns="${{w#--namespace=}}"; continue ;;
            -n?*) ns="${{w#-n}}"; continue ;;
            -*) continue ;;
        esac
        if [[ -z "$cmd" ]]; then cmd="$w"; else have_name=1; fi
    done
    local choices=""
    case "$prev" in
{value_cases}
    esac
    if [[ -n "$choices" ]]; then
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        return
    fi
    if [[ "$value_flags" == *" $prev "* ]]; then
        COMPREPLY=()  # a value we cannot list (a namespace, a file, a context)
        return
    fi
    local flags={_words(list(spec.global_flags))} positional=""
    case "$cmd" in
{cases}
    esac
    case "$cmd" in
{positional_cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    elif [[ -n "$positional" && -z "$have_name" ]]; then
        COMPREPLY=($(compgen -W "$positional" -- "$cur"))
    elif [[ "$takes_name" == *" $cmd "* && -z "$have_name" ]]; then
        COMPREPLY=($(compgen -W "$(_kubectl_ferry_names "$ns")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    fi
}}
complete -F _kubectl_ferry kubectl-ferry
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """zsh runs the bash completion through ``bashcompinit``: one script to keep true."""
    return (
        "# zsh completion for kubectl-ferry: source <(kubectl ferry completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    if shell == "bash":
        return bash_script(parser)
    if shell == "zsh":
        return zsh_script(parser)
    raise ValueError(f"shell {shell!r}: expected one of {', '.join(SHELLS)}")


def complete_words(
    parser: argparse.ArgumentParser, words: list[str], names: Callable[[str | None], list[str]]
) -> list[str]:
    """The candidates for the last of ``words`` (the arguments after ``kubectl ferry``, the last
    one being typed, possibly empty), as the bash script computes them; ``names(namespace)``
    lists ModelDeployment names. This is what ``kubectl_complete-ferry`` answers kubectl with."""
    spec = completion_spec(parser)
    cur = words[-1] if words else ""
    cmd: str | None = None
    ns: str | None = None
    have_name = False
    done = words[:-1]
    i = 0
    while i < len(done):
        w = done[i]
        if w in spec.value_flags:
            if w in ("-n", "--namespace") and i + 1 < len(done):
                ns = done[i + 1]
            i += 2
            continue
        if w.startswith("--namespace="):
            ns = w.split("=", 1)[1]
        elif w.startswith("-n") and not w.startswith("--") and len(w) > 2:
            ns = w[2:]
        elif not w.startswith("-"):
            if cmd is None:
                cmd = w
            else:
                have_name = True
        i += 1
    prev = done[-1] if done else ""
    if "=" in cur and cur.startswith("--"):
        flag, _, value = cur.partition("=")
        return [f"{flag}={c}" for c in spec.values.get(flag, ()) if c.startswith(value)]
    if prev in spec.values:
        return [c for c in spec.values[prev] if c.startswith(cur)]
    if prev in spec.value_flags:
        return []  # a value we cannot list (a namespace, a file, a context)
    flags = spec.commands.get(cmd, spec.global_flags) if cmd else spec.global_flags
    if cur.startswith("-"):
        candidates: list[str] | tuple[str, ...] = flags
    elif cmd is None:
        candidates = list(spec.commands)
    elif f"{cmd} positional" in spec.values and not have_name:
        candidates = spec.values[f"{cmd} positional"]
    elif cmd in spec.takes_name and not have_name:
        candidates = names(ns)
    else:
        candidates = flags
    return [c for c in candidates if c.startswith(cur)]
