"""MLflow's registry webhooks, judged: is a delivery genuine, fresh and new, and whom does it concern.

Pure functions of the request and the clock; ``webhook_server`` is the HTTPS shell around them.

MLflow (3.3+) signs each delivery the Standard Webhooks way: ``X-MLflow-Signature`` is ``v1,`` and
the base64 HMAC-SHA256 of ``<delivery id>.<timestamp>.<body>`` under the webhook's secret,
``X-MLflow-Timestamp`` is the sending time in unix seconds and ``X-MLflow-Delivery-Id`` a fresh
UUID. MLflow retries a delivery (on 429 and 5xx) with the same three headers, so a delivery id is
remembered only once it has been accepted, and only for as long as its timestamp stays fresh:
after that the freshness check alone refuses it.

A delivery only ever makes the operator look at the registry sooner; what it deploys still comes
from the registry's answer, so a forged or replayed event that got through could at worst cause a
few extra registry reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ferry_common.errors import ErrorCode, FerryError, FieldError

from ferry_operator.resource import ModelRef

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
MAX_AGE_SECONDS = 300.0  # Standard Webhooks' tolerance; MLflow's retries of one delivery fit in it
MAX_BODY_BYTES = 64 * 1024  # a registry event is a few hundred bytes
MAX_DELIVERY_ID = 128
MIN_SECRET_LENGTH = 16

# The events that can change what a ModelDeployment resolves to. MLflow reports a reassigned alias
# as ``model_version_alias.created`` for the new version.
ALIAS_CREATED = "model_version_alias.created"
ALIAS_DELETED = "model_version_alias.deleted"
VERSION_CREATED = "model_version.created"
EVENTS = (ALIAS_CREATED, ALIAS_DELETED, VERSION_CREATED)

Key = tuple[str, str]  # (namespace, name) of a ModelDeployment


@dataclass(frozen=True)
class RegistryEvent:
    """One verified delivery: what happened in the registry (``kind`` is ``entity.action``)."""

    delivery_id: str
    sent_at: int
    kind: str
    model: str | None = None
    alias: str | None = None
    version: str | None = None

    @property
    def relevant(self) -> bool:
        return self.kind in EVENTS and self.model is not None

    def describe(self) -> str:
        """One line for an event or a log: what MLflow said, and which delivery said it."""
        alias = f"@{self.alias}" if self.alias else ""
        version = f" -> version {self.version}" if self.version else ""
        return f"MLflow webhook {self.kind}: {self.model}{alias}{version} (delivery {self.delivery_id})"


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` MLflow sends for this delivery."""
    signed = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def _unauthenticated(message: str, field: str, reason: str) -> FerryError:
    return FerryError(ErrorCode.UNAUTHENTICATED, message, [FieldError(field, reason)])


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise _unauthenticated(
            "unsigned delivery: MLflow signs deliveries only when the webhook has a secret",
            f"header {name}",
            "required",
        )
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    max_age: float = MAX_AGE_SECONDS,
) -> RegistryEvent:
    """The event in a delivery whose signature and timestamp hold; raises ``FerryError`` otherwise.

    ``headers`` are keyed by lower-case name. The signature is checked before the body is parsed,
    so nothing an unsigned caller sends is interpreted. Replays are ``Deliveries``' business.
    """
    if len(body) > MAX_BODY_BYTES:
        raise FerryError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"delivery body over {MAX_BODY_BYTES} bytes",
            [FieldError("body", f"at most {MAX_BODY_BYTES} bytes")],
        )
    delivery_id = _header(headers, DELIVERY_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if len(delivery_id) > MAX_DELIVERY_ID or not delivery_id.isprintable():
        raise _unauthenticated(
            "malformed delivery id",
            f"header {DELIVERY_HEADER}",
            f"at most {MAX_DELIVERY_ID} printable characters",
        )
    # Several signatures may be listed (space-separated) while a secret is rotated; one must match.
    expected = sign(secret, delivery_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signature.split()):
        raise _unauthenticated(
            "the delivery's signature does not match: is the webhook's secret the operator's?",
            f"header {SIGNATURE_HEADER}",
            "does not match the body under the shared secret",
        )
    if not timestamp.isdigit():
        raise _unauthenticated("malformed timestamp", f"header {TIMESTAMP_HEADER}", "expected unix seconds")
    sent_at = int(timestamp)
    age = now - sent_at
    if age > max_age or age < -max_age:
        raise _unauthenticated(
            f"stale delivery: sent {age:.0f} s from now, outside the {max_age:.0f} s window"
            " (a replay, or a clock off by that much)",
            f"header {TIMESTAMP_HEADER}",
            f"within {max_age:.0f} s of the operator's clock",
        )
    return parse(body, delivery_id, sent_at)


def _invalid(field: str, reason: str) -> FerryError:
    return FerryError(ErrorCode.INVALID_INPUT, f"{field}: {reason}", [FieldError(field, reason)])


def _text(data: Mapping[str, object], field: str) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
        raise _invalid(f"data.{field}", "expected a non-empty string")
    return str(value)


def parse(body: bytes, delivery_id: str, sent_at: int) -> RegistryEvent:
    """A signed body as a ``RegistryEvent``; events Ferry does not act on carry only their kind."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FerryError(ErrorCode.INVALID_JSON, f"delivery body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid("body", "expected an object {entity, action, timestamp, data}")
    entity, action = doc.get("entity"), doc.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise _invalid("entity" if not isinstance(entity, str) else "action", "expected a string")
    kind = f"{entity}.{action}"
    if kind not in EVENTS:
        return RegistryEvent(delivery_id, sent_at, kind)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise _invalid("data", "expected an object")
    model = _text(data, "name")
    if model is None:
        raise _invalid("data.name", "required")
    alias = _text(data, "alias")
    if kind in (ALIAS_CREATED, ALIAS_DELETED) and alias is None:
        raise _invalid("data.alias", "required")
    version = _text(data, "version")
    if kind in (ALIAS_CREATED, VERSION_CREATED) and version is None:
        raise _invalid("data.version", "required")
    return RegistryEvent(delivery_id, sent_at, kind, model, alias, version)


class Deliveries:
    """The delivery ids accepted within the freshness window: a second one is a replay.

    Bounded: past ``capacity`` the oldest ids are forgotten first, and an id older than the window
    is refused by its timestamp anyway, so forgetting it loses nothing.
    """

    def __init__(self, max_age: float = MAX_AGE_SECONDS, capacity: int = 10_000) -> None:
        self.max_age = max_age
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def accept(self, event: RegistryEvent, now: float) -> None:
        """Remember ``event``'s delivery; raises ``FerryError`` (409) for one already accepted."""
        while self._seen and next(iter(self._seen.values())) < now - 2 * self.max_age:
            self._seen.popitem(last=False)
        if event.delivery_id in self._seen:
            raise FerryError(
                ErrorCode.CONFLICT,
                "replayed delivery: this delivery id was accepted before",
                [FieldError(f"header {DELIVERY_HEADER}", "already accepted")],
            )
        self._seen[event.delivery_id] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


def affected(event: RegistryEvent, follows: Iterable[tuple[Key, ModelRef]]) -> list[Key]:
    """The ModelDeployments whose resolution ``event`` may change, in a stable order.

    An alias event concerns those following that model's alias; a new version concerns those
    pinned to exactly that version (they wait for it to exist). Names compare exactly, as MLflow's.
    """
    if not event.relevant:
        return []
    out = []
    for key, ref in follows:
        if ref.name != event.model:
            continue
        if event.kind == VERSION_CREATED:
            hit = ref.version is not None and ref.version == event.version
        else:
            hit = ref.alias is not None and ref.alias == event.alias
        if hit:
            out.append(key)
    return sorted(out)
