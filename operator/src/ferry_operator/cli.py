"""``kubectl ferry``: see and steer a ModelDeployment's blue-green rollout.

Commands act through the resource: ``promote``, ``abort``, ``rollback`` and ``retry`` set the
annotation ``ferry.dev/command`` to ``<verb>@<timestamp>``, which the operator applies once. So
every action is declarative, visible in ``kubectl get -o yaml`` and in the API server's audit log.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ferry_common.contract import ANNOTATION_COMMAND, GROUP, LABEL_COLOR, MODEL_DEPLOYMENT, VERSION
from ferry_common.timefmt import format_time, parse_time

from ferry_operator.builders import service_names

PLURAL = MODEL_DEPLOYMENT.plural

VERBS = ("promote", "abort", "rollback", "retry")


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    try:
        # Back to a datetime (exact to the microsecond) so whole seconds subtract exactly.
        then = datetime.fromtimestamp(parse_time(stamp), UTC)
    except ValueError:
        return stamp
    s = int((now - then).total_seconds())
    if s < 120:
        return f"{max(s, 0)}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _colour_line(label: str, block: dict[str, Any] | None) -> str:
    if not block:
        return f"{label:<9} -"
    ready = "ready" if block.get("ready") else "not ready"
    replicas = block.get("replicas")
    reps = f"  replicas {replicas}" if replicas is not None else ""
    return (
        f"{label:<9} {block['color']:<6} version {block['modelVersion']:<5} "
        f"{block['inferenceService']:<24} {ready}{reps}"
    )


def render_status(
    md: dict[str, Any],
    routes: dict[str, str | None],
    events: list[dict[str, Any]],
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    meta, spec, st = md["metadata"], md.get("spec", {}), md.get("status") or {}
    model = spec.get("model", {})
    ref = (
        f"{model.get('name')}@{model['alias']}"
        if model.get("alias")
        else f"{model.get('name')}/{model.get('version')}"
    )
    resolved = st.get("model") or {}
    lines = [f"ModelDeployment {meta['namespace']}/{meta['name']}"]
    target = f" -> version {resolved['version']}" if resolved.get("version") else " (not resolved)"
    run = f" (run {resolved['runId'][:12]})" if resolved.get("runId") else ""
    lines.append(f"Model:    {ref}{target}{run}")
    ready: dict[str, Any] = next((c for c in st.get("conditions", []) if c.get("type") == "Ready"), {})
    lines.append(f"Phase:    {st.get('phase', 'Unknown')}  {ready.get('message', '')}".rstrip())
    lines.append(_colour_line("Active:", st.get("active")))
    lines.append(_colour_line("Preview:", st.get("preview")))
    route_text = ", ".join(f"{svc} -> {color or 'nowhere'}" for svc, color in routes.items())
    lines.append(f"Services: {route_text}")
    lines.append("Conditions:")
    for c in st.get("conditions", []):
        lines.append(
            f"  {c['type']:<18} {c['status']:<7} {c.get('reason', ''):<22} "
            f"{_age(c.get('lastTransitionTime'), now):>4}  {c.get('message', '')}".rstrip()
        )
    if events:
        lines.append("Recent events:")
        recent = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-8:]
        for e in recent:
            when = _age(e.get("lastTimestamp") or e.get("eventTime"), now)
            lines.append(
                f"  {when:>4}  {e.get('type', ''):<7} {e.get('reason', ''):<18} {e.get('message', '')}"
            )
    return "\n".join(lines)


def render_history(md: dict[str, Any], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    history = (md.get("status") or {}).get("history", [])
    if not history:
        return "no promotions or aborts yet"
    lines = [f"{'AGE':>5}  {'ACTION':<11} {'FROM':<6} {'TO':<6} {'COLOR':<6} REASON"]
    for h in reversed(history):
        lines.append(
            f"{_age(h.get('time'), now):>5}  {h['action']:<11} {h.get('fromVersion') or '-':<6} "
            f"{h.get('toVersion') or '-':<6} {h.get('color') or '-':<6} {h.get('reason', '')}".rstrip()
        )
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubectl ferry",
        description="See and steer Ferry ModelDeployments (blue-green rollouts of MLflow models).",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's)")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p_status = sub.add_parser("status", help="colours, versions, replicas, phase, conditions, recent events")
    p_status.add_argument("name")
    p_status.add_argument(
        "-w", "--watch", action="store_true", help="print again whenever it changes (Ctrl-C stops)"
    )
    p_history = sub.add_parser("history", help="promotions, aborts and rollbacks, newest first")
    p_history.add_argument("name")
    helps = {
        "promote": "switch traffic to the verified preview (waits for verification if still running)",
        "abort": "tear the preview down; the active colour keeps serving",
        "rollback": "return to the previous version (instant while its colour still runs)",
        "retry": "roll out again a version that was aborted or rolled back",
    }
    for verb in VERBS:
        p = sub.add_parser(verb, help=helps[verb])
        p.add_argument("name")
        p.add_argument("--wait", action="store_true", help="wait until the operator has applied the command")
    args = parser.parse_args(argv)

    from kubernetes.client.exceptions import ApiException

    try:
        cluster = Cluster(args.kubeconfig, args.context)
        ns = args.namespace or cluster.default_namespace
        if args.cmd == "status":
            return _status(cluster, ns, args.name, args.watch)
        if args.cmd == "history":
            print(render_history(cluster.get(ns, args.name)))
            return 0
        cluster.get(ns, args.name)  # a clear "not found" before writing anything
        value = cluster.command(ns, args.name, args.cmd)
        print(f"{args.cmd} requested for {ns}/{args.name} ({ANNOTATION_COMMAND}={value})")
        if args.wait:
            return _wait_applied(cluster, ns, args.name, value)
        return 0
    except ApiException as exc:
        if exc.status == 404:
            print(f"error: modeldeployment {args.name!r} not found in namespace {ns!r}", file=sys.stderr)
            return 1
        print(f"error: the API server said {exc.status} {exc.reason}", file=sys.stderr)
        return 1


def _status(cluster: Cluster, ns: str, name: str, watch: bool) -> int:
    last = ""
    while True:
        text = render_status(cluster.get(ns, name), cluster.routes(ns, name), cluster.events(ns, name))
        if text != last:
            if last:
                print("\n" + "-" * 72)
            print(text, flush=True)
            last = text
        if not watch:
            return 0
        try:
            time.sleep(2)  # a human's refresh rate, not a readiness wait
        except KeyboardInterrupt:
            return 0


def _wait_applied(cluster: Cluster, ns: str, name: str, value: str, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = cluster.get(ns, name).get("status") or {}
        if (st.get("rollout") or {}).get("lastCommand") == value:
            print(f"applied: phase {st.get('phase')}")
            return 0
        time.sleep(0.5)
    print(f"error: the operator did not apply the command within {timeout:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
