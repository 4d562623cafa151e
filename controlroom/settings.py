"""Typed settings read lazily from the environment, one frozen dataclass per deployable."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controlroom.errors import SettingsError


@dataclass(frozen=True)
class Secret:
    """A value that must never reach a repr, a log line or an error message."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


_MISSING = object()


def read(
    name: str, default: str | object | None = _MISSING, env: Mapping[str, str] | None = None
) -> str | None:
    """Return the variable, the default, or fail with the variable's name in the message."""
    source = os.environ if env is None else env
    value = source.get(name)
    if value is not None and value.strip() != "":
        return value.strip()
    if default is _MISSING:
        raise SettingsError(f"{name} is not set")
    assert default is None or isinstance(default, str)
    return default


def require(name: str, env: Mapping[str, str] | None = None) -> str:
    value = read(name, env=env)
    assert value is not None
    return value


def read_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    raw = read(name, None, env)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _positive(name: str, default: int, env: Mapping[str, str] | None) -> int:
    value = read_int(name, default, env)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def _origins(name: str, env: Mapping[str, str] | None) -> tuple[str, ...]:
    """A comma-separated list of `scheme://host[:port]` origins, exactly as browsers send them."""
    origins = tuple(
        o.strip().rstrip("/") for o in (read(name, "", env) or "").split(",") if o.strip()
    )
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise SettingsError(f"{name}: {origin!r} is not an origin (scheme://host[:port])")
    return origins


def read_secret(name: str, env: Mapping[str, str] | None = None) -> Secret:
    return Secret(require(name, env))


@dataclass(frozen=True)
class DatabaseSettings:
    """How every deployable reaches PostgreSQL as the runtime role.

    Either ``DATABASE_URL`` (Aurora through RDS Proxy, or the local stack), or a Cloud SQL
    instance connection name with user, password and database name.
    """

    url: Secret | None
    cloud_sql_instance: str | None
    user: str | None
    password: Secret | None
    name: str | None
    connect_timeout: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DatabaseSettings:
        instance = read("CLOUD_SQL_INSTANCE", None, env)
        timeout = read_int("DATABASE_CONNECT_TIMEOUT", 5, env)
        if instance is not None:
            return cls(
                url=None,
                cloud_sql_instance=instance,
                user=require("DATABASE_USER", env),
                password=read_secret("DATABASE_PASSWORD", env),
                name=require("DATABASE_NAME", env),
                connect_timeout=timeout,
            )
        return cls(
            url=read_secret("DATABASE_URL", env),
            cloud_sql_instance=None,
            user=None,
            password=None,
            name=None,
            connect_timeout=timeout,
        )


@functools.cache
def database() -> DatabaseSettings:
    """The runtime database settings, read on first use and then kept."""
    return DatabaseSettings.from_env()


@dataclass(frozen=True)
class WebhookSettings:
    """functions/webhook: no database, only Firestore and Cloud Tasks."""

    eventsub_secrets: tuple[Secret, ...]
    project: str
    tasks_location: str
    tasks_queue: str
    persist_url: str
    persist_invoker: str | None
    tasks_emulator_host: str | None
    ledger_collection: str
    ledger_database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        secrets = [read_secret("EVENTSUB_SECRET", env)]
        previous = read("EVENTSUB_SECRET_PREVIOUS", None, env)
        if previous is not None:
            secrets.append(Secret(previous))
        return cls(
            eventsub_secrets=tuple(secrets),
            project=require("GOOGLE_CLOUD_PROJECT", env),
            tasks_location=require("CLOUD_TASKS_LOCATION", env),
            tasks_queue=require("CLOUD_TASKS_QUEUE", env),
            persist_url=require("PERSIST_URL", env),
            persist_invoker=read("PERSIST_INVOKER_SERVICE_ACCOUNT", None, env),
            tasks_emulator_host=read("CLOUD_TASKS_EMULATOR_HOST", None, env),
            ledger_collection=read("LEDGER_COLLECTION", "eventsub_deliveries", env) or "",
            ledger_database=read("LEDGER_DATABASE", "(default)", env) or "(default)",
        )


@dataclass(frozen=True)
class PersistSettings:
    """functions/persist: PostgreSQL as the runtime role, Redis to publish."""

    database: DatabaseSettings
    redis_url: Secret

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PersistSettings:
        return cls(database=DatabaseSettings.from_env(env), redis_url=read_secret("REDIS_URL", env))


@functools.cache
def webhook() -> WebhookSettings:
    return WebhookSettings.from_env()


@functools.cache
def persist() -> PersistSettings:
    return PersistSettings.from_env()


@dataclass(frozen=True)
class AuthSettings:
    """How dashboard tokens are verified: issuer, audience, and a JWKS URL or a PEM."""

    issuer: str
    audience: str
    jwks_url: str | None
    public_key_pem: str | None
    jwks_ttl_seconds: int = 600  # how long fetched keys are kept
    jwks_refetch_seconds: int = 60  # the least time between two fetches (unknown kid, failure)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        jwks = read("JWT_JWKS_URL", None, env)
        pem = read("JWT_PUBLIC_KEY_PEM", None, env)
        if not (jwks or pem):
            raise SettingsError("JWT_JWKS_URL is not set (or JWT_PUBLIC_KEY_PEM)")
        return cls(
            issuer=require("JWT_ISSUER", env),
            audience=require("JWT_AUDIENCE", env),
            jwks_url=jwks,
            public_key_pem=pem,
            jwks_ttl_seconds=_positive("JWT_JWKS_TTL_SECONDS", 600, env),
            jwks_refetch_seconds=_positive("JWT_JWKS_REFETCH_SECONDS", 60, env),
        )


@dataclass(frozen=True)
class RealtimeSettings:
    """realtime/: the relay (and, later, the REST API and dashboard) on Cloud Run."""

    database: DatabaseSettings
    redis_url: Secret
    auth: AuthSettings
    batch_ms: int
    reconcile_seconds: int
    replay_page: int
    send_queue_limit: int  # frames queued for one socket before it is cut off as too slow
    branding_bucket: str
    s3_endpoint_url: str | None
    twitch_client_id: str | None
    twitch_client_secret: Secret | None
    helix_api_url: str
    twitch_token_url: str
    subscriptions_url: str | None
    tasks_project: str | None
    tasks_location: str | None
    tasks_queue: str | None
    tasks_emulator_host: str | None
    subscriptions_invoker: str | None
    dashboard_dir: str
    # Browser origins besides the service's own allowed to call the API and open sockets.
    allowed_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RealtimeSettings:
        return cls(
            database=DatabaseSettings.from_env(env),
            redis_url=read_secret("REDIS_URL", env),
            auth=AuthSettings.from_env(env),
            batch_ms=read_int("RELAY_BATCH_MS", 0, env),
            reconcile_seconds=read_int("RELAY_RECONCILE_SECONDS", 2, env),
            replay_page=read_int("RELAY_REPLAY_PAGE", 500, env),
            send_queue_limit=_positive("RELAY_SEND_QUEUE_LIMIT", 1000, env),
            branding_bucket=require("BRANDING_BUCKET", env),
            s3_endpoint_url=read("AWS_ENDPOINT_URL_S3", None, env),
            twitch_client_id=read("TWITCH_CLIENT_ID", None, env),
            twitch_client_secret=Secret(v)
            if (v := read("TWITCH_CLIENT_SECRET", None, env))
            else None,
            helix_api_url=read("HELIX_API_URL", "https://api.twitch.tv/helix", env) or "",
            twitch_token_url=read("TWITCH_TOKEN_URL", "https://id.twitch.tv/oauth2/token", env)
            or "",
            subscriptions_url=read("SUBSCRIPTIONS_URL", None, env),
            tasks_project=read("GOOGLE_CLOUD_PROJECT", None, env),
            tasks_location=read("CLOUD_TASKS_LOCATION", None, env),
            tasks_queue=read("SUBSCRIPTIONS_QUEUE", None, env)
            or read("CLOUD_TASKS_QUEUE", None, env),
            tasks_emulator_host=read("CLOUD_TASKS_EMULATOR_HOST", None, env),
            subscriptions_invoker=read("SUBSCRIPTIONS_INVOKER_SERVICE_ACCOUNT", None, env),
            dashboard_dir=read("DASHBOARD_DIR", None, env)
            or str(Path(__file__).resolve().parents[1] / "dashboard" / "dist"),
            allowed_origins=_origins("ALLOWED_ORIGINS", env),
        )


@functools.cache
def realtime() -> RealtimeSettings:
    return RealtimeSettings.from_env()


@dataclass(frozen=True)
class SubscriptionsSettings:
    """functions/subscriptions: Twitch app credentials (optional locally), the callback."""

    database: DatabaseSettings
    client_id: str | None
    client_secret: Secret | None
    callback_url: str | None
    eventsub_secret: Secret | None
    helix_api_url: str
    token_url: str
    chat_user_id: str | None

    @property
    def configured(self) -> bool:
        return bool(
            self.client_id and self.client_secret and self.callback_url and self.eventsub_secret
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SubscriptionsSettings:
        secret = read("TWITCH_CLIENT_SECRET", None, env)
        eventsub_secret = read("EVENTSUB_SECRET", None, env)
        return cls(
            database=DatabaseSettings.from_env(env),
            client_id=read("TWITCH_CLIENT_ID", None, env),
            client_secret=Secret(secret) if secret else None,
            callback_url=read("EVENTSUB_CALLBACK_URL", None, env),
            eventsub_secret=Secret(eventsub_secret) if eventsub_secret else None,
            helix_api_url=read("HELIX_API_URL", "https://api.twitch.tv/helix", env) or "",
            token_url=read("TWITCH_TOKEN_URL", "https://id.twitch.tv/oauth2/token", env) or "",
            chat_user_id=read("TWITCH_CHAT_USER_ID", None, env),
        )


@functools.cache
def subscriptions() -> SubscriptionsSettings:
    return SubscriptionsSettings.from_env()


@dataclass(frozen=True)
class ArchiveSettings:
    """functions/archive: PostgreSQL as the runtime role, the archive bucket, a retention."""

    database: DatabaseSettings
    bucket: str
    s3_endpoint_url: str | None
    retention_days: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ArchiveSettings:
        retention = read("ARCHIVE_RETENTION_DAYS", None, env)
        if retention is not None and not retention.isdigit():
            raise SettingsError(f"ARCHIVE_RETENTION_DAYS must be a whole number, got {retention!r}")
        return cls(
            database=DatabaseSettings.from_env(env),
            bucket=require("ARCHIVE_BUCKET", env),
            s3_endpoint_url=read("AWS_ENDPOINT_URL_S3", None, env),
            retention_days=int(retention) if retention is not None else None,
        )


@functools.cache
def archive() -> ArchiveSettings:
    return ArchiveSettings.from_env()
