"""MLflow webhook deliveries judged (registry_events) and answered (webhook_server.Receiver).

Deliveries are signed with ``registry_events.sign``; that it is MLflow's own signature is checked
against MLflow's function and a real server's deliveries in the process tier (importing mlflow
starts a subprocess, which the unit tier refuses).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ferry_common.errors import ErrorCode, FerryError
from ferry_operator import registry_events as ev
from ferry_operator.resource import ModelRef
from ferry_operator.webhook_server import Receiver
from ferry_testing.webhooks import signed
from hypothesis import given
from hypothesis import strategies as st

SECRET = "a-shared-secret-of-some-length"
NOW = 1_780_000_000.0


def delivery(
    data: dict[str, Any] | None = None,
    *,
    entity: str = "model_version_alias",
    action: str = "created",
    sent_at: float = NOW,
    secret: str = SECRET,
) -> tuple[dict[str, str], bytes]:
    payload = {
        "entity": entity,
        "action": action,
        "timestamp": "2026-12-04T18:00:00+00:00",
        "data": data if data is not None else {"name": "titanic", "alias": "champion", "version": "4"},
    }
    body = json.dumps(payload).encode()
    return signed(secret, body, sent_at), body


def refused(headers: dict[str, str], body: bytes, now: float = NOW) -> FerryError:
    with pytest.raises(FerryError) as info:
        ev.verify(SECRET, headers, body, now)
    return info.value


def test_a_signed_fresh_alias_event_reads_back() -> None:
    headers, body = delivery()
    event = ev.verify(SECRET, headers, body, NOW + 3)
    assert (event.kind, event.model, event.alias, event.version) == (
        ev.ALIAS_CREATED,
        "titanic",
        "champion",
        "4",
    )
    assert event.relevant and event.sent_at == int(NOW)


@pytest.mark.parametrize("missing", [ev.SIGNATURE_HEADER, ev.TIMESTAMP_HEADER, ev.DELIVERY_HEADER])
def test_an_unsigned_delivery_is_refused_naming_the_header(missing: str) -> None:
    headers, body = delivery()
    del headers[missing]
    err = refused(headers, body)
    assert err.status == 401 and err.details[0].field == f"header {missing}"
    assert "unsigned" in err.message


def test_another_secret_is_refused() -> None:
    headers, body = delivery(secret="not-the-operators-secret")
    err = refused(headers, body)
    assert err.code is ErrorCode.UNAUTHENTICATED and "signature does not match" in err.message


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_of_the_body_is_refused(where: int, value: int) -> None:
    headers, body = delivery()
    i = where % len(body)
    if body[i] == value:
        value = (value + 1) % 256
    tampered = body[:i] + bytes([value]) + body[i + 1 :]
    assert refused(headers, tampered).code is ErrorCode.UNAUTHENTICATED


@pytest.mark.parametrize("header", [ev.TIMESTAMP_HEADER, ev.DELIVERY_HEADER])
def test_a_changed_signed_header_is_refused(header: str) -> None:
    headers, body = delivery()
    headers[header] = headers[header][:-1] + ("1" if headers[header][-1] != "1" else "2")
    assert refused(headers, body).code is ErrorCode.UNAUTHENTICATED


def test_one_of_several_signatures_may_match_while_a_secret_is_rotated() -> None:
    headers, body = delivery()
    headers[ev.SIGNATURE_HEADER] = "v1,b2xkLXNpZ25hdHVyZQ== " + headers[ev.SIGNATURE_HEADER]
    assert ev.verify(SECRET, headers, body, NOW).relevant


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_a_delivery_outside_the_window_is_refused_as_stale(offset: float) -> None:
    headers, body = delivery(sent_at=NOW)
    err = refused(headers, body, now=NOW + offset)
    assert err.status == 401 and err.message.startswith("stale delivery")
    assert err.details[0].field == f"header {ev.TIMESTAMP_HEADER}"


@pytest.mark.parametrize("offset", [-300, 0, 299])
def test_a_delivery_within_the_window_passes(offset: float) -> None:
    headers, body = delivery(sent_at=NOW)
    assert ev.verify(SECRET, headers, body, NOW + offset).relevant


def test_a_body_over_the_limit_is_refused_before_anything_else() -> None:
    err = refused({}, b"x" * (ev.MAX_BODY_BYTES + 1))
    assert err.status == 413


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"alias": "champion", "version": "4"}, "data.name"),
        ({"name": "titanic", "version": "4"}, "data.alias"),
        ({"name": "titanic", "alias": "champion"}, "data.version"),
        ({"name": ["titanic"], "alias": "champion", "version": "4"}, "data.name"),
        ({"name": "", "alias": "champion", "version": "4"}, "data.name"),
    ],
)
def test_a_signed_but_malformed_event_is_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    headers, body = delivery(data)
    err = refused(headers, body)
    assert err.status == 422 and err.details[0].field == field


def test_a_signed_body_that_is_not_json_is_refused() -> None:
    did, ts, body = "d", str(int(NOW)), b"{not json"
    headers = {
        ev.DELIVERY_HEADER: did,
        ev.TIMESTAMP_HEADER: ts,
        ev.SIGNATURE_HEADER: ev.sign(SECRET, did, ts, body),
    }
    assert refused(headers, body).status == 400


def test_events_ferry_does_not_act_on_are_verified_and_carry_only_their_kind() -> None:
    headers, body = delivery(
        {"name": "titanic", "version": "4", "key": "k", "value": "v"},
        entity="model_version_tag",
        action="set",
    )
    event = ev.verify(SECRET, headers, body, NOW)
    assert event.kind == "model_version_tag.set" and not event.relevant


def test_a_replay_is_refused_and_a_new_delivery_is_not() -> None:
    seen = ev.Deliveries()
    headers, body = delivery()
    event = ev.verify(SECRET, headers, body, NOW)
    seen.accept(event, NOW)
    with pytest.raises(FerryError) as info:
        seen.accept(ev.verify(SECRET, headers, body, NOW + 1), NOW + 1)
    assert info.value.status == 409 and "replayed" in info.value.message
    seen.accept(ev.verify(SECRET, *delivery(), NOW + 1), NOW + 1)


def test_the_memory_of_deliveries_is_bounded_and_forgets_the_oldest_first() -> None:
    seen = ev.Deliveries(capacity=3)

    def event(i: int) -> ev.RegistryEvent:
        return ev.RegistryEvent(f"d{i}", int(NOW), ev.ALIAS_CREATED, "m", "a", "1")

    for i in range(10):
        seen.accept(event(i), NOW)
    with pytest.raises(FerryError):
        seen.accept(event(9), NOW)  # among the last three: still a replay
    seen.accept(event(0), NOW)  # forgotten to keep the memory at three


FOLLOWS = [
    (("ml", "titanic"), ModelRef(name="titanic", alias="champion")),
    (("team-b", "titanic"), ModelRef(name="titanic", alias="champion")),
    (("ml", "titanic-challenger"), ModelRef(name="titanic", alias="challenger")),
    (("ml", "titanic-pinned"), ModelRef(name="titanic", version="5")),
    (("ml", "other"), ModelRef(name="Titanic", alias="champion")),
]


def event(kind: str, **fields: str) -> ev.RegistryEvent:
    return ev.RegistryEvent("d", int(NOW), kind, **fields)


def test_an_alias_event_concerns_exactly_the_followers_of_that_models_alias() -> None:
    moved = event(ev.ALIAS_CREATED, model="titanic", alias="champion", version="4")
    assert ev.affected(moved, FOLLOWS) == [("ml", "titanic"), ("team-b", "titanic")]
    deleted = event(ev.ALIAS_DELETED, model="titanic", alias="challenger")
    assert ev.affected(deleted, FOLLOWS) == [("ml", "titanic-challenger")]


def test_a_new_version_concerns_those_pinned_to_it_only() -> None:
    assert ev.affected(event(ev.VERSION_CREATED, model="titanic", version="5"), FOLLOWS) == [
        ("ml", "titanic-pinned")
    ]
    assert ev.affected(event(ev.VERSION_CREATED, model="titanic", version="6"), FOLLOWS) == []


def test_names_compare_exactly_and_irrelevant_events_concern_nobody() -> None:
    assert ev.affected(event(ev.ALIAS_CREATED, model="TITANIC", alias="champion", version="1"), FOLLOWS) == []
    assert ev.affected(event("registered_model.created", model="titanic"), FOLLOWS) == []


# ---- the receiver's answers ----


class Calls:
    def __init__(self) -> None:
        self.events: list[ev.RegistryEvent] = []

    def __call__(self, event: ev.RegistryEvent) -> list[ev.Key]:
        self.events.append(event)
        return [("ml", "titanic")]


def test_the_receiver_acts_once_per_genuine_delivery_and_says_so() -> None:
    calls = Calls()
    receiver = Receiver(SECRET, calls, clock=lambda: NOW)
    headers, body = delivery()
    first = receiver.receive(headers, body)
    assert (first.status, first.body) == (202, {"event": ev.ALIAS_CREATED, "deployments": 1})
    again = receiver.receive(headers, body)
    assert again.status == 409 and again.body["error_code"] == "CONFLICT"
    assert len(calls.events) == 1


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        (lambda h: h.pop(ev.SIGNATURE_HEADER), 401),
        (lambda h: h.update({ev.SIGNATURE_HEADER: "v1,AAAA"}), 401),
    ],
)
def test_a_refused_delivery_acts_on_nothing_and_answers_the_envelope(tamper: Any, status: int) -> None:
    calls = Calls()
    receiver = Receiver(SECRET, calls, clock=lambda: NOW)
    headers, body = delivery()
    tamper(headers)
    answer = receiver.receive(headers, body)
    assert answer.status == status and calls.events == []
    assert set(answer.body) == {"error_code", "message", "details", "request_id", "timestamp"}
    assert SECRET not in json.dumps(answer.body)


def test_a_stale_delivery_acts_on_nothing() -> None:
    calls = Calls()
    receiver = Receiver(SECRET, calls, clock=lambda: NOW + 3600)
    answer = receiver.receive(*delivery(sent_at=NOW))
    assert answer.status == 401 and "stale" in answer.body["message"] and calls.events == []


def test_an_event_ferry_ignores_is_accepted_without_acting() -> None:
    calls = Calls()
    receiver = Receiver(SECRET, calls, clock=lambda: NOW)
    answer = receiver.receive(*delivery({"name": "titanic"}, entity="registered_model", action="created"))
    assert (answer.status, answer.body["deployments"]) == (202, 0) and calls.events == []
