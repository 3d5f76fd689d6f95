"""Clients that misbehave on the wire, against the real ``ferry-predictor`` process (uvicorn):
one that trickles its body past the read deadline, one that hangs up halfway through it."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from ferry_devcluster.procs import wait_for
from ferry_mlflow_example.train import Registered
from ferry_testing.predictor import Predictor, StartPredictor

PATH = "/v1/models/titanic:predict"
DEADLINE = 1.0  # FERRY_BODY_TIMEOUT_SECONDS for this predictor
HALF_BODY = b'{"instances": [{"pclass": 1, '


@pytest.fixture(scope="module")
def impatient(registered: list[Registered], mlflow_uri: str, start_predictor: StartPredictor) -> Predictor:
    return start_predictor(
        registered[0].model_uri,
        mlflow_uri,
        # debug: the predictor says when a client went away, so the test knows it was handled
        extra_env={"FERRY_BODY_TIMEOUT_SECONDS": str(DEADLINE), "FERRY_LOG_LEVEL": "debug"},
    )


def _connect(p: Predictor) -> socket.socket:
    url = urlsplit(p.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    sock.sendall(head.encode() + HALF_BODY)  # 200 bytes promised, a fraction sent
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    response = http.client.HTTPResponse(sock)  # parses what a real client would (chunked or not)
    response.begin()
    body: dict[str, object] = json.loads(response.read())
    return response.status, body


def test_a_body_trickled_past_the_deadline_gets_408_in_the_envelope(impatient: Predictor) -> None:
    with _connect(impatient) as sock:
        started = time.monotonic()
        status, body = _read_response(sock)  # sent nothing more: the predictor must give up first
        waited = time.monotonic() - started
    assert status == 408, body
    assert body["error_code"] == "REQUEST_TIMEOUT" and body["details"] == [
        {"field": "body", "reason": f"send the whole body within {DEADLINE:g} s"}
    ]
    assert waited >= DEADLINE * 0.9, "answered before the deadline: not the read deadline at work"


def test_a_client_that_hangs_up_mid_body_leaves_the_predictor_serving(impatient: Predictor) -> None:
    sock = _connect(impatient)
    sock.close()  # gone before the body is complete: nobody to answer
    r = httpx.post(
        f"{impatient.url}{PATH}",
        json={"instances": [{"pclass": 1, "sex": "female", "sibsp": 0, "parch": 0}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    wait_for(
        "the predictor to notice the hang-up",
        lambda: "client went away before sending its whole body" in impatient.logs(),
        timeout=30,
    )
    # The hang-up is not an error of the predictor's: no traceback and no error line for it.
    errors = [line for line in impatient.logs().splitlines() if '"level":"error"' in line]
    assert not errors, errors
