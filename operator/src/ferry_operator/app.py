"""The operator's running parts, built from its configuration: the work behind ``handlers.py``.

``ferry-operator`` loads the ``OperatorConfig`` and hands it to kopf inside a ``Memo``; kopf
passes that memo to every handler. ``start`` (kopf's startup) tunes kopf's settings and builds the
Kubernetes client, registry, smoke tester, reconciler and controller; the watch handlers only
``kick`` a ModelDeployment's reconcile loop, and so does a registry webhook, after making it ask
the registry again; ``stop`` (kopf's cleanup) ends the loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kopf
from ferry_common.contract import LABEL_DEPLOYMENT
from prometheus_client import start_http_server

from ferry_operator import webhook_tls
from ferry_operator.config import OperatorConfig, WebhookConfig
from ferry_operator.controller import Controller, Key
from ferry_operator.kube import Kube, load_api_client
from ferry_operator.metrics import WEBHOOK_REFRESHES
from ferry_operator.reconcile import Reconciler
from ferry_operator.registry import Registry
from ferry_operator.registry_events import RegistryEvent, affected
from ferry_operator.smoketest import load_tester
from ferry_operator.webhook_server import OnEvent, Receiver, WebhookServer

log = logging.getLogger("ferry.operator")


@dataclass(frozen=True)
class Parts:
    """What ``start`` built; ``stop`` closes it."""

    registry: Registry
    controller: Controller
    webhooks: WebhookServer | None = None


@dataclass
class Memo:
    """kopf's memo (``kopf.run(memo=...)``): the configuration, and the parts once started.

    kopf gives each object's handlers a shallow copy of it, made after startup, so they all share
    the one ``Parts``.
    """

    config: OperatorConfig
    parts: Parts | None = None


def tune(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf's settings for Ferry."""
    # Ferry posts its own, human-meaningful events; kopf's per-handler log events are noise.
    settings.posting.enabled = False
    # Short server-side watch timeouts make the operator stop promptly (tests, rolling updates).
    if config.watch_server_timeout:
        settings.watching.server_timeout = config.watch_server_timeout
        settings.watching.client_timeout = config.watch_server_timeout + 5
    settings.peering.priority = config.peering_priority


async def start(settings: kopf.OperatorSettings, memo: Memo) -> None:
    config = memo.config
    tune(settings, config)
    # Kubernetes calls run in threads (the client is synchronous); the default pool (cores + 4)
    # serialises many ModelDeployments behind a handful of slow API calls.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=config.api_threads, thread_name_prefix="kube")
    )
    registry = Registry(config.registry)
    reconciler = Reconciler(
        Kube(load_api_client(config.kubeconfig)),
        registry,
        load_tester(config.smoke_tester, config.smoke_url_template),
        config,
    )
    controller = Controller(reconciler.reconcile)
    webhooks = None
    if config.webhook is not None:
        webhooks = webhook_server(
            config.webhook, lambda event: registry_changed(reconciler, controller, event)
        )
        await webhooks.start()
    memo.parts = Parts(registry, controller, webhooks)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    log.info(
        "ferry operator: registry %s, poll every %.0fs, smoke tester %s, metrics on :%d",
        config.registry.tracking_uri,
        config.poll_seconds,
        config.smoke_tester,
        config.metrics_port,
    )


def webhook_server(config: WebhookConfig, on_event: OnEvent) -> WebhookServer:
    if config.tls_dir is not None:
        tls = webhook_tls.from_dir(config.tls_dir)
    else:
        tls = webhook_tls.self_made(config.cert_hosts, config.ca_file)
        where = f", its CA written to {config.ca_file}" if config.ca_file else ""
        log.info("webhook receiver: a self-made certificate for %s%s", ", ".join(config.cert_hosts), where)
    receiver = Receiver(config.secret, on_event, config.max_age_seconds)
    return WebhookServer(receiver, config.host, config.port, tls)


def registry_changed(reconciler: Reconciler, controller: Controller, event: RegistryEvent) -> list[Key]:
    """A verified registry event: the ModelDeployments it concerns ask the registry now."""
    keys = affected(event, reconciler.follows())
    for key in keys:
        reconciler.refresh(key, event.describe())
        controller.kick(key)
    WEBHOOK_REFRESHES.inc(len(keys))
    return keys


async def stop(memo: Memo) -> None:
    if memo.parts is not None:
        if memo.parts.webhooks is not None:
            await memo.parts.webhooks.stop()
        await memo.parts.controller.stop()
        await memo.parts.registry.aclose()


def modeldeployment_changed(memo: Memo, namespace: str | None, name: str) -> None:
    if namespace and memo.parts is not None:
        memo.parts.controller.kick((namespace, name))


def inferenceservice_changed(memo: Memo, namespace: str | None, labels: Mapping[str, str]) -> None:
    """An InferenceService Ferry manages changed: look at the ModelDeployment that owns it."""
    owner = labels.get(LABEL_DEPLOYMENT)
    if owner and namespace and memo.parts is not None:
        memo.parts.controller.kick((namespace, owner))
