"""The kopf registrations, and nothing else: each handler is one call into ``ferry_operator.app``.

Imported by ``ferry-operator`` (``__main__``) to register them. Handlers take the injected
arguments they use plus ``**_``; ``memo`` is the ``app.Memo`` that ``__main__`` hands kopf.
"""

from __future__ import annotations

from typing import Any

import kopf
from ferry_common.contract import GROUP, ISVC_GROUP, LABEL_MANAGED_BY, MODEL_DEPLOYMENT, PART_OF, VERSION

from ferry_operator import app
from ferry_operator.kube import ISVC_PLURAL, ISVC_VERSION


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: app.Memo, **_: Any) -> None:
    await app.start(settings, memo)


@kopf.on.cleanup()
async def cleanup(memo: app.Memo, **_: Any) -> None:
    await app.stop(memo)


@kopf.on.event(GROUP, VERSION, MODEL_DEPLOYMENT.plural)
async def modeldeployment_event(name: str, namespace: str | None, memo: app.Memo, **_: Any) -> None:
    app.modeldeployment_changed(memo, namespace, name)


@kopf.on.event(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, labels={LABEL_MANAGED_BY: PART_OF})
async def inferenceservice_event(
    labels: kopf.Labels, namespace: str | None, memo: app.Memo, **_: Any
) -> None:
    app.inferenceservice_changed(memo, namespace, labels)
