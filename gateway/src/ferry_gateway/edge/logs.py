"""The gateway's two structured loggers; the JSON lines themselves come from ``ferry_common.logs``
(component "gateway", the request id and model bound per request). Never pass a token or an API
key in here."""

from __future__ import annotations

import logging
from typing import Any

audit_log = logging.getLogger("ferry_gateway.audit")
access_log = logging.getLogger("ferry_gateway.access")


def audit(event: str, **fields: Any) -> None:
    """An audit event (every denied request produces one)."""
    audit_log.warning(event, extra={"fields": {"event": event, **fields}})
