"""A real MLflow server set up to deliver registry webhooks to a receiver on this machine.

MLflow 3.17 refuses private and loopback receivers unless MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true,
and caches each event's webhook list for MLFLOW_WEBHOOK_CACHE_TTL seconds (60 by default, which
would delay a just-created webhook's first delivery by up to a minute).

Its delivery session sets ``trust_env = False``, so REQUESTS_CA_BUNDLE is ignored: it verifies
the receiver against certifi's bundle only. An administrator with a private CA appends it to that
bundle (``python -c 'import certifi; print(certifi.where())'``); here, to leave the installed
certifi untouched, the server's PYTHONPATH puts first a ``certifi`` whose bundle is the installed
one plus the receiver's CA: the same file an administrator would end up with.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import certifi
from ferry_operator import registry_events as ev


def trusting(ca_pem: bytes, workdir: Path) -> dict[str, str]:
    """Environment for ``start_mlflow``: deliver to private addresses, at once, trusting ``ca_pem``."""
    package = workdir / "trust" / "certifi"
    package.mkdir(parents=True, exist_ok=True)
    bundle = package / "cacert.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca_pem)
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "__version__ = 'ferry-test'\n"
        f"_BUNDLE = {str(bundle)!r}\n"
        "def where() -> str:\n    return _BUNDLE\n"
        "def contents() -> str:\n    return Path(_BUNDLE).read_text()\n"
    )
    python_path = os.pathsep.join(p for p in (str(package.parent), os.environ.get("PYTHONPATH")) if p)
    return {
        "PYTHONPATH": python_path,
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }


def signed(secret: str, body: bytes, sent_at: float | None = None) -> dict[str, str]:
    """The three headers MLflow sends with ``body`` (keys lower-case, as the receiver reads them):
    a fresh delivery id, the sending time (now unless ``sent_at``) and its signature."""
    delivery_id = str(uuid.uuid4())
    timestamp = str(int(time.time() if sent_at is None else sent_at))
    return {
        ev.DELIVERY_HEADER: delivery_id,
        ev.TIMESTAMP_HEADER: timestamp,
        ev.SIGNATURE_HEADER: ev.sign(secret, delivery_id, timestamp, body),
    }
