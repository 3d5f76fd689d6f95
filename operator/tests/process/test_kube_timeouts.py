"""Every Kubernetes call of ``Kube`` gives up instead of hanging when the API server stops
answering (a loopback listener that accepts and never replies).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ferry_operator import kube as kube_module
from ferry_operator.kube import Kube
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

NS, NAME = "ml", "titanic"


# ---- bounded API calls ----


class SilentServer:
    """Accepts connections, never answers: an API connection cut or wedged somewhere on the way."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()

    def hang_up(self) -> None:
        """Stop listening, close what was accepted: a waiting client gets EOF, its retries a refusal."""
        self.stop.set()
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_api_server() -> Iterator[SilentServer]:
    server = SilentServer()
    listener, accepted, stop = server.listener, server.accepted, server.stop

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    server.hang_up()
    thread.join(5)


MD = {"metadata": {"name": NAME, "namespace": NS, "uid": "u1"}}
ISVC = {
    "metadata": {
        "name": "titanic-green",
        "namespace": NS,
        "labels": {},
        "annotations": {},
        "ownerReferences": [],
    },
    "spec": {"predictor": {}},
}
SVC = {
    "metadata": {"name": NAME, "namespace": NS, "labels": {}, "ownerReferences": []},
    "spec": {"selector": {}, "ports": []},
}
PDB = {
    "metadata": {"name": "titanic-green-predictor", "namespace": NS, "labels": {}, "ownerReferences": []},
    "spec": {"maxUnavailable": 1},
}
POLICY = {
    "metadata": {"name": f"{NAME}-predictors", "namespace": NS, "labels": {}, "ownerReferences": []},
    "spec": {"podSelector": {}},
}
CALLS: dict[str, Any] = {
    "get_md": lambda k: k.get_md(NS, NAME),
    "patch_md_status": lambda k: k.patch_md_status(NS, NAME, {"phase": "Stable"}),
    "patch_md_annotations": lambda k: k.patch_md_annotations(NS, NAME, {"a": "b"}),
    "get_isvc": lambda k: k.get_isvc(NS, "titanic-green"),
    "create_isvc": lambda k: k.apply_isvc(ISVC, None),
    "patch_isvc": lambda k: k.apply_isvc(ISVC, {"metadata": {}, "spec": {"x": 1}}),
    "delete_isvc": lambda k: k.delete_isvc(NS, "titanic-green"),
    "ready_replicas": lambda k: k.ready_replicas(NS, "titanic-green"),
    "get_service": lambda k: k.get_service(NS, NAME),
    "create_service": lambda k: k.apply_service(SVC, None),
    "patch_service": lambda k: k.apply_service(SVC, {"metadata": {}, "spec": {}}),
    "get_pdb": lambda k: k.get_pdb(NS, "titanic-green-predictor"),
    "create_pdb": lambda k: k.apply_pdb(PDB, None),
    "patch_pdb": lambda k: k.apply_pdb(PDB, {"metadata": {}, "spec": {}}),
    "delete_pdb": lambda k: k.delete_pdb(NS, "titanic-green-predictor"),
    "get_network_policy": lambda k: k.get_network_policy(NS, f"{NAME}-predictors"),
    "create_network_policy": lambda k: k.apply_network_policy(POLICY, None),
    "patch_network_policy": lambda k: k.apply_network_policy(POLICY, {"metadata": {}, "spec": {}}),
    "delete_network_policy": lambda k: k.delete_network_policy(NS, f"{NAME}-predictors"),
    "post_event": lambda k: k.post_event(MD, "Normal", "Promoted", "m"),
    "list_events": lambda k: k.list_events(NS, NAME),
}


@pytest.mark.parametrize("call", list(CALLS))
async def test_every_api_call_gives_up_when_the_server_never_answers(
    call: str, silent_api_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", 0.3)
    kube = Kube(k8s.ApiClient(k8s.Configuration(host=silent_api_server.url)))
    started = time.monotonic()
    try:
        # 0.3 s a try, urllib3 retries idempotent requests 3 times: well inside 10 s when bounded.
        await asyncio.wait_for(CALLS[call](kube), timeout=10)
    except TimeoutError:
        silent_api_server.hang_up()  # else the blocked thread holds up the event loop's shutdown
        pytest.fail(f"{call} still waiting for the API server after 10 s")
    except (ApiException, HTTPError):  # a timeout, after urllib3's retries: bounded and visible
        pass
    else:
        assert call == "post_event", f"{call} returned without an answer from the server"
    assert time.monotonic() - started < 10
