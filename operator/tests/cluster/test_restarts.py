"""The operator killed (-9) and started again in every phase of a rollout, on the local cluster.

Each phase is held still so the kill lands in it: Deploying by a pod quota that keeps the preview's
pods from being created, Verifying and Promoting by a smoke test held open (``ferry_testing.smoke``'s
``hold:``), the retiring colour by ``scaleDownDelaySeconds``. A watch records every selector the
``<name>`` Service ever had, so "never routes to the preview before it is verified" is checked on
the whole history, not on samples.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

from ferry_common.timefmt import parse_time
from ferry_devcluster.procs import wait_for
from ferry_testing.operator import (
    WAIT,
    OperatorProcess,
    RegisteredModel,
    actions,
    annotate,
    colour,
    condition,
    core,
    get_md,
    hold_pods,
    isvc,
    patch_md,
    release_pods,
    routes_to,
    start_stable,
    wait_phase,
    wait_status,
)
from ferry_testing.smoke import ANNOTATION as SMOKE
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException


class SelectorLog:
    """Every colour the Service ``name`` has selected, in order, from a watch."""

    def __init__(self, api: client.ApiClient, ns: str, name: str) -> None:
        self.api, self.ns, self.name = api, ns, name
        self.seen: list[tuple[int, str | None]] = []  # (resourceVersion, colour)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {name}")

    def __enter__(self) -> SelectorLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        rv: str | None = None
        try:
            while not self._stop.is_set():
                stream = watch.Watch().stream(
                    core(self.api).list_namespaced_service,
                    self.ns,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv,
                    timeout_seconds=5,
                )
                try:
                    for event in stream:
                        obj = event["object"]
                        rv = obj.metadata.resource_version
                        self.seen.append((int(rv), (obj.spec.selector or {}).get("ferry.dev/color")))
                except ApiException as exc:
                    if exc.status != 410:
                        raise
                    rv = None  # history compacted: list again (the current state is re-sent)
        except BaseException as exc:  # surfaced by colours()
            self.error = exc

    def colours(self) -> list[str | None]:
        """The colours selected so far, once the watch has caught up with the Service as it is now."""
        now = int(core(self.api).read_namespaced_service(self.name, self.ns).metadata.resource_version)

        def caught_up() -> bool:
            if self.error is not None:
                raise AssertionError(f"selector watch failed: {self.error!r}")
            return bool(self.seen) and self.seen[-1][0] >= now

        wait_for(f"watch of {self.name} caught up", caught_up, WAIT, interval=0.2)
        out: list[str | None] = []
        for _, c in self.seen:
            if not out or out[-1] != c:
                out.append(c)
        return out


def restart(proc: OperatorProcess) -> None:
    """kill -9, then a new process (up once it serves metrics; a held smoke test may keep its
    first pass from finishing, so not waiting for a reconcile here)."""
    proc.kill()
    proc.start()


def epoch(iso: str) -> float:
    return parse_time(iso)


def test_killed_while_deploying_verifying_and_retiring_the_rollout_still_completes(
    api: client.ApiClient,
    namespace: str,
    operator_proc: OperatorProcess,
    registered_model: RegisteredModel,
    tmp_path: Path,
) -> None:
    v1, v2 = registered_model.versions[:2]
    delay = 45
    start_stable(api, namespace, "rs", registered_model, rollout={"scaleDownDelaySeconds": delay})
    release = tmp_path / "verdict"
    waiting = Path(f"{release}.waiting")
    annotate(api, namespace, "rs", **{SMOKE: f"hold:{release}"})
    hold_pods(api, namespace)
    with SelectorLog(api, namespace, "rs") as log:
        patch_md(api, namespace, "rs", {"spec": {"model": {"version": v2}}})

        # Deploying: green exists but has no pod.
        wait_status(
            api,
            namespace,
            "rs",
            "green deploying",
            lambda st: st.get("phase") == "Deploying" and st.get("preview", {}).get("modelVersion") == v2,
        )
        wait_for("green created", lambda: isvc(api, namespace, "rs-green") is not None, WAIT)
        restart(operator_proc)
        wait_for("the new process reconciled", lambda: operator_proc.reconciles() >= 1, WAIT)
        md = get_md(api, namespace, "rs")
        assert md["status"]["phase"] == "Deploying" and md["status"]["preview"]["color"] == "green"
        assert md["status"]["active"]["modelVersion"] == v1 and colour(api, namespace, "rs") != "green"
        release_pods(api, namespace)

        # Verifying: green Ready, its smoke test running (held), and status says so.
        wait_for("smoke test of green started", waiting.exists, WAIT)
        md = wait_phase(api, namespace, "rs", "Verifying")
        assert condition(md, "RolloutInProgress")["reason"] == "Verifying"
        assert f"smoke-testing version {v2} (green)" in condition(md, "RolloutInProgress")["message"]
        waiting.unlink()
        restart(operator_proc)
        wait_for("the new process runs the smoke test again", waiting.exists, WAIT)
        assert get_md(api, namespace, "rs")["status"]["phase"] == "Verifying"
        assert "green" not in log.colours(), log.colours()  # held at blue through both restarts
        release.write_text("pass")

        md = wait_phase(api, namespace, "rs", "Stable", observedGeneration=2)
        assert md["status"]["active"]["color"] == "green"
        routes_to(api, namespace, "rs", "green")
        until = epoch(md["status"]["rollout"]["retiring"]["until"])

        # Retiring: killed inside the rollback window; blue still goes when the window ends.
        restart(operator_proc)
        if time.time() < until - 1:
            assert isvc(api, namespace, "rs-blue") is not None, "blue removed before its window ended"
        wait_for("blue removed after the window", lambda: isvc(api, namespace, "rs-blue") is None, WAIT)
        assert time.time() >= until
        md = wait_status(
            api,
            namespace,
            "rs",
            "window closed in status",
            lambda st: "retiring" not in st.get("rollout", {}),
        )
        assert actions(md) == ["Promoted", "Promoted"], md["status"]["history"]
        routes_to(api, namespace, "rs", "green")  # (polled: kwok's node may flap NotReady a moment)


def test_killed_while_promoting_the_requested_promotion_still_happens(
    api: client.ApiClient,
    namespace: str,
    operator_proc: OperatorProcess,
    registered_model: RegisteredModel,
    tmp_path: Path,
) -> None:
    v1, v2 = registered_model.versions[:2]
    start_stable(api, namespace, "rp", registered_model, rollout={"autoPromote": False})
    release = tmp_path / "verdict"
    waiting = Path(f"{release}.waiting")
    annotate(api, namespace, "rp", **{SMOKE: f"hold:{release}"})
    hold_pods(api, namespace)
    with SelectorLog(api, namespace, "rp") as log:
        patch_md(api, namespace, "rp", {"spec": {"model": {"version": v2}}})
        wait_phase(api, namespace, "rp", "Deploying")
        # A human promotes before green is even Ready: promotion waits for verification.
        annotate(api, namespace, "rp", **{"ferry.dev/command": "promote@1"})
        wait_status(
            api,
            namespace,
            "rp",
            "promotion requested",
            lambda st: st.get("rollout", {}).get("promoteRequested") is True,
        )
        release_pods(api, namespace)

        wait_for("smoke test of green started", waiting.exists, WAIT)
        md = wait_phase(api, namespace, "rp", "Promoting")
        assert md["status"]["preview"]["modelVersion"] == v2
        waiting.unlink()
        restart(operator_proc)
        wait_for("the new process runs the smoke test again", waiting.exists, WAIT)
        md = get_md(api, namespace, "rp")
        assert md["status"]["phase"] == "Promoting", md["status"]
        assert "green" not in log.colours()
        release.write_text("pass")

        # No second command: the request survived the restart in status.
        md = wait_phase(api, namespace, "rp", "Stable", observedGeneration=2)
        assert (md["status"]["active"]["color"], md["status"]["active"]["modelVersion"]) == ("green", v2)
        routes_to(api, namespace, "rp", "green")
        assert actions(md) == ["Promoted", "Promoted"], md["status"]["history"]
        assert md["status"]["rollout"]["lastCommand"] == "promote@1"
        assert md["status"]["history"][-1]["fromVersion"] == v1
