"""The operator's logging: ``ferry_common.logs``' JSON lines, ``component="operator"``, for kopf's
own lines too.

Ferry's reconcile loops bind ``model`` and ``namespace`` (see ``controller``); kopf's per-object
lines carry the object in the record's ``k8s_ref`` instead, which ``KopfObjectFields`` turns into
the same fields. kopf's own ``kopf.configure`` is not called: it would add a second, text handler.
"""

from __future__ import annotations

import logging

from ferry_common import logs
from ferry_common.contract import MODEL_DEPLOYMENT

COMPONENT = "operator"


class KopfObjectFields(logging.Filter):
    """Names the object of a kopf per-object record the way Ferry's own records do."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            fields = dict(getattr(record, "fields", None) or {})
            if ref.get("kind") == MODEL_DEPLOYMENT.kind:
                fields["model"] = str(ref.get("name"))
            else:
                fields["object"] = f"{ref.get('kind')}/{ref.get('name')}"
            if ref.get("namespace"):
                fields["namespace"] = str(ref["namespace"])
            record.fields = fields
        return True


def configure(verbose: bool) -> None:
    # asyncio's debug chatter stays off, as kopf's own setup has it.
    logs.configure(COMPONENT, "debug" if verbose else "info", quiet=("asyncio",))
    logging.getLogger("kopf.objects").addFilter(KopfObjectFields())
