"""The composition root: each deployable's dependencies, built once per process from settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.helix import Helix, HelixConfig
from controlroom.core import eventsub

if TYPE_CHECKING:
    from controlroom.adapters.emitter import SocketIOPublisher
    from controlroom.adapters.ledger import FirestoreLedger
    from controlroom.adapters.taskqueue import CloudTasksQueue

# Each builder imports its own adapters, so a function bundle carries only the packages its
# deployable uses (python-socketio for persist alone, the Google clients for the webhook alone).


@dataclass(frozen=True)
class WebhookService:
    secrets: tuple[bytes, ...]
    ledger: FirestoreLedger
    queue: CloudTasksQueue


@dataclass(frozen=True)
class PersistService:
    pool: db.Pool
    publisher: SocketIOPublisher


@functools.cache
def webhook() -> WebhookService:
    from google.cloud import firestore

    from controlroom.adapters import cloudtasks
    from controlroom.adapters.ledger import FirestoreLedger
    from controlroom.adapters.taskqueue import CloudTasksQueue, Target

    cfg = settings.webhook()
    secrets = eventsub.check_secrets([s.reveal() for s in cfg.eventsub_secrets])
    target = Target(
        queue_path=cloudtasks.queue_path(cfg.project, cfg.tasks_location, cfg.tasks_queue),
        url=cfg.persist_url,
        service_account=cfg.persist_invoker,
    )
    return WebhookService(
        secrets=secrets,
        ledger=FirestoreLedger(
            firestore.Client(project=cfg.project, database=cfg.ledger_database),
            cfg.ledger_collection,
        ),
        queue=CloudTasksQueue(cloudtasks.client(cfg.tasks_emulator_host), target),
    )


@functools.cache
def persist() -> PersistService:
    from controlroom.adapters.emitter import SocketIOPublisher

    cfg = settings.persist()
    return PersistService(
        pool=db.Pool(cfg.database), publisher=SocketIOPublisher(cfg.redis_url.reveal())
    )


@dataclass(frozen=True)
class SubscriptionsService:
    cfg: settings.SubscriptionsSettings
    pool: db.Pool
    helix: Helix | None


@functools.cache
def subscriptions() -> SubscriptionsService:
    cfg = settings.subscriptions()
    helix = None
    if cfg.configured:
        assert cfg.client_id and cfg.client_secret
        helix = Helix(
            HelixConfig(cfg.client_id, cfg.client_secret, cfg.helix_api_url, cfg.token_url)
        )
    return SubscriptionsService(cfg=cfg, pool=db.Pool(cfg.database), helix=helix)
