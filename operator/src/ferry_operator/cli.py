"""``kubectl ferry``: see and steer a ModelDeployment's blue-green rollout.

Commands act through the resource: ``promote``, ``abort``, ``rollback`` and ``retry`` set the
annotation ``ferry.dev/command`` to ``<verb>@<timestamp>``, which the operator applies once. So
every action is declarative, visible in ``kubectl get -o yaml`` and in the API server's audit log.

This module is the thin shell: the parser and exit codes are in ``cliargs``, what is shown in
``cliview`` (pure functions); here are the API calls and the dispatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ferry_common.contract import ANNOTATION_COMMAND, GROUP, LABEL_COLOR, MODEL_DEPLOYMENT, VERSION
from ferry_common.timefmt import format_time

from ferry_operator import cliwebhook
from ferry_operator.builders import service_names
from ferry_operator.cliargs import Exit, Failure, build_parser, complete_words, completion_script
from ferry_operator.cliview import (
    MACHINE_FORMATS,
    command_refused,
    dump,
    history_view,
    list_view,
    render_history,
    render_list,
    render_status,
    status_view,
)
from ferry_operator.reconcile import REGISTRY_NOTIFIED

PLURAL = MODEL_DEPLOYMENT.plural


class Cluster:
    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client, config

        from ferry_operator.kube import REQUEST_TIMEOUT

        self.timeout = REQUEST_TIMEOUT  # a wedged connection fails the command instead of hanging it
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.custom: Any = client.CustomObjectsApi(api)
        self.core: Any = client.CoreV1Api(api)
        try:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            self.default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
        except Exception:
            self.default_namespace = "default"

    def get(self, ns: str, name: str) -> dict[str, Any]:
        md: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, _request_timeout=self.timeout
        )
        return md

    def list_mds(self, ns: str | None) -> list[dict[str, Any]]:
        """Every ModelDeployment in ``ns``, or in every namespace when ``ns`` is None."""
        if ns is None:
            found = self.custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=self.timeout
            )
        else:
            found = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, _request_timeout=self.timeout
            )
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def namespace_missing(self, ns: str) -> bool:
        """True only when the API server says the namespace does not exist (not when forbidden)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespace(ns, _request_timeout=self.timeout)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    def routes(self, ns: str, name: str) -> dict[str, str | None]:
        from kubernetes.client.exceptions import ApiException

        out: dict[str, str | None] = {}
        for svc in service_names(name):
            try:
                selector = (
                    self.core.read_namespaced_service(svc, ns, _request_timeout=self.timeout).spec.selector
                    or {}
                )
                value = selector.get(LABEL_COLOR)
                out[svc] = value if value in ("blue", "green") else None
            except ApiException:
                out[svc] = None
        return out

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}", _request_timeout=self.timeout
        )
        items: list[dict[str, Any]] = self.core.api_client.sanitize_for_serialization(found).get("items", [])
        return [e for e in items if (e.get("involvedObject") or {}).get("kind") == MODEL_DEPLOYMENT.kind]

    def notified(self, ns: str | None, limit: int = 10) -> list[dict[str, str]]:
        """The last RegistryNotified events (re-resolves a webhook asked for), newest first."""
        selector = f"reason={REGISTRY_NOTIFIED}"
        if ns is None:
            items = self.core.list_event_for_all_namespaces(
                field_selector=selector, _request_timeout=self.timeout
            )
        else:
            items = self.core.list_namespaced_event(
                ns, field_selector=selector, _request_timeout=self.timeout
            )

        def when(e: Any) -> str:
            t = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
            return format_time(t.timestamp()) if t is not None else ""

        events = sorted(items.items, key=when, reverse=True)[:limit]
        return [
            {
                "time": when(e),
                "namespace": e.involved_object.namespace or "",
                "name": e.involved_object.name or "",
                "message": e.message or "",
            }
            for e in events
        ]

    def command(self, ns: str, name: str, verb: str) -> str:
        value = f"{verb}@{format_time(timespec='milliseconds')}"
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            name,
            {"metadata": {"annotations": {ANNOTATION_COMMAND: value}}},
            _request_timeout=self.timeout,
        )
        return value


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    message = body.get("message", "") if isinstance(body, dict) else ""
    return str(message)


def classify(exc: BaseException) -> tuple[Exit, str] | None:
    """The exit code and message for an error of the API client or the kubeconfig loader;
    None for an error that is not one of those (a bug: it is raised with its traceback).
    A 404 gets the generic message here; ``main`` says what was not found."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        status = exc.status or 0
        said = f"the API server said {status} {exc.reason}"
        detail = _api_message(exc)
        said += f": {detail}" if detail else ""
        if status == 404:
            return Exit.NOT_FOUND, said
        if status in (401, 403):
            return Exit.UNREACHABLE, f"not allowed: {said}"
        if status == 0 or status >= 500:
            return Exit.UNREACHABLE, f"cannot reach the cluster: {said}"
        return Exit.NOT_AS_ASKED, said
    if isinstance(exc, ConfigException):
        return Exit.UNREACHABLE, f"cannot use the kubeconfig (--kubeconfig, --context): {exc}"
    if isinstance(exc, HTTPError | OSError):
        return Exit.UNREACHABLE, f"cannot reach the cluster: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "completion":
        print(completion_script(parser, args.shell), end="")
        return int(Exit.OK)
    if args.cmd == "webhook" and args.action == "register":
        try:
            return int(_webhook_register(args))  # MLflow only: no cluster needed
        except Failure as failure:
            print(f"error: {failure.message}", file=sys.stderr)
            return int(failure.code)
    ns: str | None = args.namespace
    if args.kubeconfig and not Path(args.kubeconfig).is_file():
        print(f"error: --kubeconfig {args.kubeconfig}: no such file", file=sys.stderr)
        return int(Exit.UNREACHABLE)
    try:
        cluster = Cluster(args.kubeconfig, args.context)
        ns = ns or cluster.default_namespace
        return int(_run(cluster, args, ns))
    except Failure as failure:
        print(f"error: {failure.message}", file=sys.stderr)
        return int(failure.code)
    except Exception as exc:
        known = classify(exc)
        if known is None:
            raise
        code, message = known
        print(f"error: {message}", file=sys.stderr)
        return int(code)


def _get(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    """The ModelDeployment, or a Failure that says which of it and its namespace is missing."""
    from kubernetes.client.exceptions import ApiException

    try:
        return cluster.get(ns, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        if cluster.namespace_missing(ns):
            raise Failure(Exit.NOT_FOUND, f"namespace {ns!r} not found") from None
        raise Failure(Exit.NOT_FOUND, f"modeldeployment {name!r} not found in namespace {ns!r}") from None


def _mlflow(args: argparse.Namespace) -> cliwebhook.Mlflow:
    token = cliwebhook.read_file("--token-file", args.token_file, sys.stdin) if args.token_file else None
    return cliwebhook.Mlflow(args.mlflow, token)


def _webhook_register(args: argparse.Namespace) -> Exit:
    missing = [
        flag for flag, value in (("--url", args.url), ("--secret-file", args.secret_file)) if not value
    ]
    if missing:
        raise Failure(Exit.USAGE, f"webhook register needs {' and '.join(missing)}")
    secret = cliwebhook.read_secret(args.secret_file, sys.stdin)
    return cliwebhook.register(_mlflow(args), args.name, args.url, secret, sys.stdout)


def _webhook_status(cluster: Cluster, args: argparse.Namespace, ns: str) -> Exit:
    webhooks = _mlflow(args).webhooks()
    notified = cluster.notified(None if args.all_namespaces else ns)
    print("\n".join(cliwebhook.status_lines(webhooks, notified)))
    return Exit.OK


def _run(cluster: Cluster, args: argparse.Namespace, ns: str) -> Exit:
    if args.cmd == "webhook":
        return _webhook_status(cluster, args, ns)
    if args.cmd == "list":
        return _list(cluster, None if args.all_namespaces else ns, args.output)
    if args.cmd == "status":
        return _status(cluster, ns, args.name, args.watch, args.output)
    if args.cmd == "history":
        md = _get(cluster, ns, args.name)
        out = dump(history_view(md), args.output) if args.output in MACHINE_FORMATS else render_history(md)
        print(out)
        return Exit.OK
    before = _get(cluster, ns, args.name)  # a clear "not found" before writing anything
    value = cluster.command(ns, args.name, args.cmd)
    print(f"{args.cmd} requested for {ns}/{args.name} ({ANNOTATION_COMMAND}={value})")
    if args.wait:
        return _wait_applied(cluster, ns, args.name, args.cmd, value, before)
    return Exit.OK


def _list(cluster: Cluster, ns: str | None, output: str) -> Exit:
    from kubernetes.client.exceptions import ApiException

    try:
        items = cluster.list_mds(ns)
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise Failure(
            Exit.NOT_FOUND,
            f"the API server does not serve {MODEL_DEPLOYMENT.crd_name}: is the CRD installed? "
            "(kubectl apply -f manifests/crds, or the Helm chart)",
        ) from None
    view = list_view(items)
    if output in MACHINE_FORMATS:
        print(dump(view, output))
    elif not items:
        where = "any namespace" if ns is None else f"namespace {ns!r}"
        print(f"No ModelDeployments found in {where}.", file=sys.stderr)  # as kubectl: not an error
    else:
        print(render_list(view, all_namespaces=ns is None))
    return Exit.OK


def _status(cluster: Cluster, ns: str, name: str, watch: bool, output: str) -> Exit:
    last = ""
    while True:
        md = _get(cluster, ns, name)
        routes, events = cluster.routes(ns, name), cluster.events(ns, name)
        if output in MACHINE_FORMATS:
            text = dump(status_view(md, routes, events), output)
        else:
            text = render_status(md, routes, events)
        if text != last:
            if last:
                print("---" if output == "yaml" else "" if output == "json" else "\n" + "-" * 72)
            print(text, flush=True)
            last = text
        if not watch:
            return Exit.OK
        try:
            time.sleep(2)  # a human's refresh rate, not a readiness wait
        except KeyboardInterrupt:
            return Exit.OK


def _wait_applied(
    cluster: Cluster,
    ns: str,
    name: str,
    verb: str,
    value: str,
    before: dict[str, Any],
    timeout: float = 120.0,
) -> Exit:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = _get(cluster, ns, name)
        st = md.get("status") or {}
        if (st.get("rollout") or {}).get("lastCommand") == value:
            refused = command_refused(verb, before, md)
            if refused is not None:
                print(
                    f"error: the operator ignored the command: {refused} (phase {st.get('phase')})",
                    file=sys.stderr,
                )
                return Exit.NOT_AS_ASKED
            print(f"applied: phase {st.get('phase')}")
            return Exit.OK
        time.sleep(0.5)
    print(f"error: the operator did not apply the command within {timeout:.0f}s", file=sys.stderr)
    return Exit.NOT_AS_ASKED


def _names_from_args(words: list[str]) -> Any:
    """ModelDeployment names for completion, with the --kubeconfig/--context typed so far; none
    on any error (completion must not print one)."""

    def names(ns: str | None) -> list[str]:
        known, _ = build_parser().parse_known_args([w for w in words[:-1] if w not in ("-h", "--help")])
        try:
            cluster = Cluster(getattr(known, "kubeconfig", None), getattr(known, "context", None))
            cluster.timeout = 3.0  # a TAB press: answer quickly or not at all
            return sorted(md["metadata"]["name"] for md in cluster.list_mds(ns or cluster.default_namespace))
        except Exception:
            return []

    return names


def complete_main(argv: list[str] | None = None) -> int:
    """``kubectl_complete-ferry``: kubectl (1.26+) runs it for ``kubectl ferry <TAB>`` with the
    words typed so far; it answers one candidate a line, then ``:4`` (no file completion)."""
    words = list(sys.argv[1:] if argv is None else argv) or [""]
    try:
        candidates = complete_words(build_parser(), words, _names_from_args(words))
    except SystemExit:  # parse_known_args on a half-typed line
        candidates = []
    print("\n".join([*candidates, ":4"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
