"""The kopf shell: wiring only. Handlers read an event and kick the controller; nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from prometheus_client import start_http_server

from ferry_operator.builders import LABEL_DEPLOYMENT, LABEL_MANAGED_BY
from ferry_operator.config import OperatorConfig
from ferry_operator.controller import Controller
from ferry_operator.kube import Kube, load_api_client
from ferry_operator.reconcile import Reconciler
from ferry_operator.registry import Registry
from ferry_operator.resource import GROUP, PLURAL, VERSION
from ferry_operator.smoketest import load_tester

log = logging.getLogger("ferry.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Ferry posts its own, human-meaningful events; kopf's per-handler log events are noise.
    settings.posting.enabled = False
    # Short server-side watch timeouts make the operator stop promptly (tests, rolling updates).
    timeout = os.environ.get("FERRY_WATCH_SERVER_TIMEOUT")
    if timeout:
        settings.watching.server_timeout = int(timeout)
        settings.watching.client_timeout = int(timeout) + 5
    settings.peering.priority = int(os.environ.get("FERRY_PEERING_PRIORITY", "0"))
    # Kubernetes calls run in threads (the client is synchronous); the default pool (cores + 4)
    # serialises many ModelDeployments behind a handful of slow API calls.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(
            max_workers=int(os.environ.get("FERRY_API_THREADS", "32")), thread_name_prefix="kube"
        )
    )
    config = OperatorConfig.from_env()
    registry = Registry(config.registry)
    reconciler = Reconciler(
        Kube(load_api_client(os.environ.get("KUBECONFIG") or None)),
        registry,
        load_tester(config.smoke_tester, config.smoke_url_template),
        config,
    )
    memo["registry"] = registry
    memo["controller"] = Controller(reconciler.reconcile)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    log.info(
        "ferry operator: registry %s, poll every %.0fs, smoke tester %s, metrics on :%d",
        config.registry.tracking_uri,
        config.poll_seconds,
        config.smoke_tester,
        config.metrics_port,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if "controller" in memo:
        await memo["controller"].stop()
        await memo["registry"].aclose()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    if namespace:
        memo["controller"].kick((namespace, name))


@kopf.on.event("serving.kserve.io", "v1beta1", "inferenceservices", labels={LABEL_MANAGED_BY: "ferry"})
async def inferenceservice_event(
    labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    owner = labels.get(LABEL_DEPLOYMENT)
    if owner and namespace:
        memo["controller"].kick((namespace, owner))
