"""``kubectl ferry webhook register|status``: MLflow's side of the registry webhooks.

``register`` creates (or brings up to date, by name) the MLflow webhook that delivers the alias
and version events to the operator's receiver, with the shared secret, then asks MLflow for a test
delivery so a wrong secret, an untrusted certificate or a refused private address shows at once,
not at the next alias move. ``status`` lists MLflow's webhooks that deliver to a Ferry receiver
and the last deliveries the operator acted on (its RegistryNotified events).

MLflow's REST API (``/api/2.0/mlflow/webhooks``) is called with httpx; the plugin carries no
MLflow client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from ferry_operator.cliargs import Exit, Failure
from ferry_operator.registry_events import EVENTS, MIN_SECRET_LENGTH
from ferry_operator.webhook_server import PATH

API = "/api/2.0/mlflow/webhooks"
TIMEOUT = 30.0  # MLflow's test delivery waits for the receiver (its own timeout is 30 s)


def events_body(events: Iterable[str] = EVENTS) -> list[dict[str, str]]:
    """MLflow's JSON for ``entity.action`` event names: upper-case enum names."""
    out = []
    for event in events:
        entity, _, action = event.partition(".")
        out.append({"entity": entity.upper(), "action": action.upper()})
    return out


def event_names(events: Iterable[dict[str, str]]) -> list[str]:
    return sorted(f"{e.get('entity', '').lower()}.{e.get('action', '').lower()}" for e in events)


def read_file(flag: str, path: str, stdin: TextIO) -> str:
    """A credential from a file (``-``: standard input), never from the command line (ps shows it)."""
    try:
        return (stdin.read() if path == "-" else Path(path).read_text()).strip()
    except OSError as exc:
        raise Failure(Exit.USAGE, f"{flag} {path}: {exc.strerror}") from None


def read_secret(path: str, stdin: TextIO) -> str:
    """The shared secret (--secret-file), as long as the operator requires it."""
    secret = read_file("--secret-file", path, stdin)
    if len(secret) < MIN_SECRET_LENGTH:
        raise Failure(
            Exit.USAGE,
            f"--secret-file {path}: the secret must have at least {MIN_SECRET_LENGTH} characters"
            " (the operator refuses a shorter FERRY_WEBHOOK_SECRET)",
        )
    return secret


HINTS = {
    "non-public IP": "set MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true on the MLflow server",
    "scheme": "MLflow delivers over https only unless MLFLOW_WEBHOOK_ALLOWED_SCHEMES allows http",
    "CERTIFICATE_VERIFY_FAILED": "MLflow does not trust the receiver's certificate: append its CA to"
    " the file `python -c 'import certifi; print(certifi.where())'` names on the MLflow server"
    " (MLflow ignores REQUESTS_CA_BUNDLE)",
    "signature does not match": "the secret differs from the operator's FERRY_WEBHOOK_SECRET",
    "Connection refused": "nothing listens at --url: is the operator running with FERRY_WEBHOOK_SECRET set?",
}


def hint(message: str) -> str:
    found = [h for needle, h in HINTS.items() if needle in message]
    return f"\nhint: {found[0]}" if found else ""


@dataclass
class Mlflow:
    """The few webhook calls, against one tracking server."""

    uri: str
    token: str | None = None

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.uri.rstrip("/"), headers=headers, timeout=TIMEOUT)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            with self._client() as http:
                response = http.request(method, f"{API}{path}", json=body, params=params)
        except httpx.HTTPError as exc:
            raise Failure(Exit.UNREACHABLE, f"cannot reach MLflow at {self.uri}: {exc}") from None
        try:
            doc: dict[str, Any] = response.json()
        except ValueError:
            doc = {}
        if response.status_code in (401, 403):
            raise Failure(
                Exit.UNREACHABLE, f"MLflow at {self.uri} refused the credentials ({response.status_code})"
            )
        if response.status_code == 404 and not doc.get("error_code"):
            raise Failure(Exit.NOT_FOUND, f"MLflow at {self.uri} has no webhook API (MLflow 3.3+ has)")
        if response.status_code >= 400:
            message = str(doc.get("message") or response.text[:300])
            raise Failure(Exit.NOT_AS_ASKED, f"MLflow refused: {message}{hint(message)}")
        return doc

    def webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.call(
                "GET", "", params={"max_results": 100, **({"page_token": token} if token else {})}
            )
            found += page.get("webhooks", [])
            token = page.get("next_page_token")
            if not token:
                return found


def register(mlflow: Mlflow, name: str, url: str, secret: str, out: TextIO) -> Exit:
    if not url.startswith("https://") or not url.rstrip("/").endswith(PATH):
        print(f"note: the operator receives on https://HOST:PORT{PATH}; --url is {url}", file=out)
    body = {"name": name, "url": url, "events": events_body(), "secret": secret, "status": "ACTIVE"}
    same = [w for w in mlflow.webhooks() if w.get("name") == name]
    if same:
        webhook = mlflow.call("PATCH", f"/{same[0]['webhook_id']}", body)["webhook"]
        verb = "updated"
    else:
        webhook = mlflow.call("POST", "", body)["webhook"]
        verb = "created"
    events = ", ".join(event_names(webhook.get("events", [])))
    print(f"{verb} MLflow webhook {name!r} ({webhook['webhook_id']}): {events} -> {url}", file=out)
    result = mlflow.call("POST", f"/{webhook['webhook_id']}/test", {}).get("result", {})
    status = result.get("response_status")
    if result.get("success"):
        print(f"MLflow's test delivery: {status}, accepted by the receiver", file=out)
        return Exit.OK
    detail = str(result.get("error_message") or result.get("response_body") or "")
    print(f"MLflow's test delivery failed ({status or 'no answer'}): {detail[:400]}{hint(detail)}", file=out)
    return Exit.NOT_AS_ASKED


def status_lines(webhooks: list[dict[str, Any]], notified: list[dict[str, Any]]) -> list[str]:
    """What ``status`` prints: the Ferry webhooks in MLflow, then the last deliveries acted on."""
    ours = [w for w in webhooks if str(w.get("url", "")).rstrip("/").endswith(PATH)]
    lines = [f"MLflow webhooks delivering to {PATH}: {len(ours)}"]
    for w in sorted(ours, key=lambda w: str(w.get("name"))):
        events = ", ".join(event_names(w.get("events", [])))
        lines.append(f"  {w.get('name')}  {w.get('status')}  {w.get('url')}  {events}")
    lines.append(f"Last deliveries the operator acted on: {len(notified)}")
    for e in notified:
        lines.append(f"  {e['time']}  {e['namespace']}/{e['name']}  {e['message']}")
    return lines
