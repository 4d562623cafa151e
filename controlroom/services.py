"""The composition root: each deployable's dependencies, built once per process from settings."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.helix import Helix, HelixConfig
from controlroom.core import eventsub
from controlroom.errors import SettingsError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

    from controlroom.adapters.emitter import SocketIOPublisher
    from controlroom.adapters.ledger import FirestoreLedger
    from controlroom.adapters.mail import SmtpMailer
    from controlroom.adapters.ratelimit import Limits, SyncLimiter
    from controlroom.adapters.secretbox import Keyring
    from controlroom.adapters.signing import Signer
    from controlroom.adapters.taskqueue import CloudTasksDispatcher, CloudTasksQueue
    from controlroom.adapters.tokens import TokenVerifier
    from controlroom.usecases.incidents import Dispatcher

# Each builder imports its own adapters, so a function bundle carries only the packages its
# deployable uses (python-socketio for persist alone, the Google clients for the webhook alone).


@dataclass(frozen=True)
class WebhookService:
    secrets: tuple[bytes, ...]
    ledger: FirestoreLedger
    queue: CloudTasksQueue
    limiter: SyncLimiter | None = None  # deliveries failing their signature, per client IP
    trusted_proxy_hops: int = 0


@dataclass(frozen=True)
class PersistService:
    pool: db.Pool
    publisher: SocketIOPublisher
    dispatcher: Dispatcher | None = None  # notification deliveries (None without NOTIFY_URL)


@functools.cache
def webhook() -> WebhookService:
    from google.cloud import firestore

    from controlroom.adapters import cloudtasks, ratelimit
    from controlroom.adapters.ledger import FirestoreLedger
    from controlroom.adapters.taskqueue import CloudTasksQueue, Target

    cfg = settings.webhook()
    limits = cfg.rate_limits or settings.RateLimitSettings()
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
        queue=CloudTasksQueue(
            cloudtasks.client(cfg.tasks_emulator_host), target, cfg.tasks_queue_shards
        ),
        limiter=ratelimit.webhook_limiter(
            limits, cfg.redis_url.reveal() if cfg.redis_url else None, cfg.redis_ca_cert
        ),
        trusted_proxy_hops=limits.trusted_proxy_hops,
    )


@functools.cache
def persist() -> PersistService:
    from controlroom.adapters.emitter import SocketIOPublisher

    cfg = settings.persist()
    return PersistService(
        # 16 concurrent requests per instance (THREADS=16): each keeps its connection idle
        # between deliveries instead of closing and reopening above the default 8
        pool=db.Pool(cfg.database, max_idle=16),
        publisher=SocketIOPublisher(cfg.redis_url.reveal(), ca_cert=cfg.redis_ca_cert),
        dispatcher=notify_dispatcher(cfg.notify),
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


@dataclass(frozen=True)
class ArchiveService:
    cfg: settings.ArchiveSettings
    s3: Any  # a boto3 S3 client for the archive bucket

    def connect(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """A connection as the runtime role for one run (autocommit: each step commits)."""
        return db.connect(self.cfg.database, autocommit=True)


def archive() -> ArchiveService:
    """Built for each run, as each run reads its settings (a scheduled call, minutes apart)."""
    from controlroom.adapters import s3

    cfg = settings.archive()
    return ArchiveService(cfg=cfg, s3=s3.client(cfg.s3_endpoint_url, aws=cfg.aws))


# Socket.IO's Redis manager: connect within 2 s, and notice a dead Redis within 10 s.
REDIS_MANAGER_OPTIONS = {"socket_connect_timeout": 2.0, "health_check_interval": 10}


@dataclass(frozen=True)
class RealtimeService:
    cfg: settings.RealtimeSettings
    pool: psycopg_pool.AsyncConnectionPool
    verifier: TokenVerifier
    s3: Any  # a boto3 S3 client for the branding bucket
    twitch: Helix | None  # resolves logins, when Twitch credentials are configured
    roster_changed: Callable[[str], None] | None  # asks functions/subscriptions to reconcile
    ready_checks: list[Callable[[], Awaitable[None]]]
    redis_url: str  # for the Socket.IO Redis manager (realtime/transport.py builds it)
    redis_options: dict[str, Any]
    redis: Any = None  # one redis.asyncio client (readiness, consent states), TLS as configured
    limits: Limits | None = None  # rate limits (realtime/middleware.py, routes, relay)
    signer: Signer | None = None  # our own tokens, when TOKEN_SIGNING_KEYS is set
    mailer: SmtpMailer | None = None  # invitations, when SMTP_HOST is set
    dispatcher: Dispatcher | None = None  # notification deliveries (None without NOTIFY_URL)


def realtime(cfg: settings.RealtimeSettings | None = None) -> RealtimeService:
    """The realtime service's dependencies (built once, by realtime.app.create_app)."""
    import redis.asyncio

    from controlroom.adapters import ratelimit, redis_tls, s3
    from controlroom.adapters.tokens import TokenVerifier

    cfg = cfg or settings.realtime()
    signer = _signer(cfg.auth)
    pool = db.async_pool(cfg.database)
    # (for rediss://, an asyncio client's URL and options from redis_tls: see client_args)
    redis_url, tls = redis_tls.client_args(cfg.redis_url.reveal(), cfg.redis_ca_cert, asyncio=True)
    redis_client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2, **tls)

    async def database_ready() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def redis_ready() -> None:
        await redis_client.ping()

    return RealtimeService(
        cfg=cfg,
        pool=pool,
        # our own keys verify in process (no HTTP); a JWKS URL or a PEM only without them
        verifier=TokenVerifier(
            issuer=cfg.auth.issuer,
            audience=cfg.auth.audience,
            jwks_url=None if signer else cfg.auth.jwks_url,
            public_key_pem=None if signer else cfg.auth.public_key_pem,
            jwks_ttl_seconds=cfg.auth.jwks_ttl_seconds,
            jwks_refetch_seconds=cfg.auth.jwks_refetch_seconds,
            keys=signer,
        ),
        s3=s3.client(cfg.s3_endpoint_url, aws=cfg.aws),
        twitch=_realtime_twitch(cfg),
        roster_changed=_roster_changed(cfg),
        ready_checks=[database_ready, redis_ready],
        redis_url=redis_url,
        redis_options={**REDIS_MANAGER_OPTIONS, **tls},
        redis=redis_client,
        limits=ratelimit.Limits.build(cfg.rate_limits, cfg.redis_url.reveal(), cfg.redis_ca_cert),
        signer=signer,
        mailer=mailer(cfg.tenancy.smtp),
        dispatcher=notify_dispatcher(cfg.notify),
    )


def mailer(smtp: settings.SmtpSettings | None) -> SmtpMailer | None:
    """Mail through SMTP, when a relay is configured (else invitation links are only shown)."""
    if smtp is None:
        return None
    from controlroom.adapters.mail import SmtpMailer

    return SmtpMailer(smtp)


def _signer(auth: settings.AuthSettings) -> Signer | None:
    """The service's token signer from TOKEN_SIGNING_KEYS (current key first), if set."""
    if auth.signing_keys is None:
        return None
    from controlroom.adapters import signing

    return signing.Signer(
        signing.load_keys(auth.signing_keys.reveal()),
        auth.issuer,
        audience=auth.audience,
        access_ttl_seconds=auth.access_ttl_seconds,
    )


def _realtime_twitch(cfg: settings.RealtimeSettings) -> Helix | None:
    if not (cfg.twitch_client_id and cfg.twitch_client_secret):
        return None
    return Helix(
        HelixConfig(
            cfg.twitch_client_id,
            cfg.twitch_client_secret,
            cfg.helix_api_url,
            cfg.twitch_token_url,
            cfg.twitch_image_origin,
        )
    )


def _roster_changed(cfg: settings.RealtimeSettings) -> Callable[[str], None] | None:
    """A Cloud Task for functions/subscriptions after a creator is added or removed."""
    if not (cfg.subscriptions_url and cfg.tasks_project and cfg.tasks_location and cfg.tasks_queue):
        return None
    from controlroom.adapters import cloudtasks, taskqueue

    target = taskqueue.Target(
        queue_path=cloudtasks.queue_path(cfg.tasks_project, cfg.tasks_location, cfg.tasks_queue),
        url=cfg.subscriptions_url,
        service_account=cfg.subscriptions_invoker,
    )
    client = cloudtasks.client(cfg.tasks_emulator_host)
    return lambda reason: taskqueue.request_run(client, target, reason)


@dataclass(frozen=True)
class PulseService:
    cfg: settings.PulseSettings
    pool: db.Pool
    helix: Helix | None  # None without Twitch credentials: a run then does nothing
    publisher: SocketIOPublisher
    dispatcher: Dispatcher | None = None  # notification deliveries (None without NOTIFY_URL)


@functools.cache
def pulse() -> PulseService:
    from controlroom.adapters.emitter import SocketIOPublisher

    cfg = settings.pulse()
    helix = None
    if cfg.configured:
        assert cfg.client_id and cfg.client_secret
        helix = Helix(
            HelixConfig(
                cfg.client_id, cfg.client_secret, cfg.helix_api_url, cfg.token_url, cfg.image_origin
            )
        )
    return PulseService(
        cfg=cfg,
        pool=db.Pool(cfg.database),
        helix=helix,
        publisher=SocketIOPublisher(cfg.redis_url.reveal(), ca_cert=cfg.redis_ca_cert),
        dispatcher=notify_dispatcher(cfg.notify),
    )


def notify_dispatcher(cfg: settings.NotifySettings | None) -> CloudTasksDispatcher | None:
    """Notification deliveries handed to functions/notify through its queue; None without
    NOTIFY_URL (deliveries then wait in the database for a dispatcher)."""
    if cfg is None:
        return None
    from controlroom.adapters import cloudtasks, taskqueue

    if not (cfg.project and cfg.location):
        raise SettingsError(
            "GOOGLE_CLOUD_PROJECT and CLOUD_TASKS_LOCATION are needed with NOTIFY_URL"
        )
    target = taskqueue.Target(
        queue_path=cloudtasks.queue_path(cfg.project, cfg.location, cfg.queue),
        url=cfg.url,
        service_account=cfg.invoker,
    )
    return taskqueue.CloudTasksDispatcher(cloudtasks.client(cfg.tasks_emulator_host), target)


@dataclass(frozen=True)
class NotifyService:
    cfg: settings.NotifyFunctionSettings
    pool: db.Pool
    keyring: Keyring
    dispatcher: CloudTasksDispatcher | None  # a later attempt after a long 429


@functools.cache
def notify() -> NotifyService:
    from controlroom.adapters.secretbox import Keyring

    cfg = settings.notify()
    return NotifyService(
        cfg=cfg,
        pool=db.Pool(cfg.database),
        keyring=Keyring.parse(cfg.channels.keys.reveal()),
        dispatcher=notify_dispatcher(cfg.queue),
    )
