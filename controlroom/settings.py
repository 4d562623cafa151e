"""Typed settings read lazily from the environment, one frozen dataclass per deployable."""

from __future__ import annotations

import functools
import os
import re
import ssl
import urllib.parse
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


def read_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); unset means `default`."""
    raw = read(name, None, env)
    if raw is None:
        return default
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


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


TWITCH_IMAGE_ORIGIN = "https://static-cdn.jtvnw.net"


def image_origin(env: Mapping[str, str] | None = None) -> str:
    """TWITCH_IMAGE_ORIGIN: where avatars and previews are shown from (allowed in the CSP's
    img-src; image URLs elsewhere are dropped). https, or http on a loopback stand-in."""
    origin = (read("TWITCH_IMAGE_ORIGIN", TWITCH_IMAGE_ORIGIN, env) or "").rstrip("/")
    https = re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin)
    loopback = re.fullmatch(r"http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?", origin)
    if not (https or loopback):
        raise SettingsError(
            f"TWITCH_IMAGE_ORIGIN: {origin!r} is not an https origin (or a loopback http one)"
        )
    return origin


def read_secret(name: str, env: Mapping[str, str] | None = None) -> Secret:
    return Secret(require(name, env))


_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def redis_ca_cert(redis_url: Secret | None, env: Mapping[str, str] | None = None) -> str | None:
    """REDIS_CA_CERT: the CA a `rediss://` REDIS_URL's server must chain to (Memorystore's
    server CA; see controlroom/adapters/redis_tls.py), as PEM text (what terraform sets; several
    certificates during a CA rotation) or the path of a PEM file. Unset: the system's CAs."""
    raw = read("REDIS_CA_CERT", None, env)
    if raw is None:
        return None
    pem = raw
    if _PEM_CERTIFICATE not in raw:
        try:
            pem = Path(raw).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(
                f"REDIS_CA_CERT is neither PEM text nor a readable PEM file ({raw!r}: {e})"
            ) from None
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as e:
        raise SettingsError(f"REDIS_CA_CERT holds no valid PEM certificate ({e})") from None
    if redis_url is not None and urllib.parse.urlsplit(redis_url.reveal()).scheme != "rediss":
        raise SettingsError("REDIS_CA_CERT is set but REDIS_URL is not a rediss:// (TLS) URL")
    return pem


_SESSION_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{2,64}")


@dataclass(frozen=True)
class AwsSettings:
    """How a deployable reaches AWS (docs/deploy.md, "AWS credentials from Google Cloud").

    On Google Cloud, AWS_ROLE_ARN names the role this deployable assumes with a Google
    identity token for AWS_WEB_IDENTITY_AUDIENCE; elsewhere (AWS_ACCESS_KEY_ID set, or no
    role) boto's ordinary credential chain applies. AWS_REGION is the buckets' and the
    database's region: presigned URLs and database tokens are signed for it.
    """

    region: str | None
    role_arn: str | None = None  # set: federated credentials, fetched and refreshed in process
    audience: str | None = None  # the identity token's `aud`, checked by the role's trust policy
    session_name: str = "controlroom"  # RoleSessionName: the deployable, seen in CloudTrail
    metadata_host: str = "metadata.google.internal"  # GCE_METADATA_HOST (a stand-in in tests)
    sts_endpoint_url: str | None = None  # AWS_ENDPOINT_URL_STS (moto in tests)

    @property
    def federated(self) -> bool:
        return self.role_arn is not None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, deployable: str = "controlroom"
    ) -> AwsSettings:
        region = read("AWS_REGION", None, env) or read("AWS_DEFAULT_REGION", None, env)
        role = read("AWS_ROLE_ARN", None, env)
        if read("AWS_ACCESS_KEY_ID", None, env) is not None:
            role = None  # explicit keys (the local stack, a developer's shell) win
        session_name = read("AWS_ROLE_SESSION_NAME", None, env) or deployable
        if not _SESSION_NAME.fullmatch(session_name):
            raise SettingsError(
                f"AWS_ROLE_SESSION_NAME must be 2-64 of A-Z a-z 0-9 +=,.@_-, got {session_name!r}"
            )
        if role is None:
            return cls(region=region, session_name=session_name)
        if region is None:
            raise SettingsError("AWS_REGION is not set (needed with AWS_ROLE_ARN)")
        return cls(
            region=region,
            role_arn=role,
            audience=require("AWS_WEB_IDENTITY_AUDIENCE", env),
            session_name=session_name,
            metadata_host=read("GCE_METADATA_HOST", cls.metadata_host, env) or cls.metadata_host,
            sts_endpoint_url=read("AWS_ENDPOINT_URL_STS", None, env),
        )


def _iam_database_url(url: str) -> None:
    """With IAM authentication the URL names who and where, and never carries a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SettingsError(
            "DATABASE_IAM_AUTH needs DATABASE_URL as postgresql://user@host:port/db"
        )
    if parts.password is not None:
        raise SettingsError("DATABASE_URL must not carry a password with DATABASE_IAM_AUTH")
    if not parts.username or not parts.hostname:
        raise SettingsError("DATABASE_URL must name the user and the host with DATABASE_IAM_AUTH")


@dataclass(frozen=True)
class DatabaseSettings:
    """How every deployable reaches PostgreSQL as the runtime role.

    Either ``DATABASE_URL`` (Aurora through RDS Proxy, or the local stack), or a Cloud SQL
    instance connection name with user, password and database name. With DATABASE_IAM_AUTH
    the URL carries no password: each connection signs an RDS IAM token with `aws`.
    """

    url: Secret | None
    cloud_sql_instance: str | None
    user: str | None
    password: Secret | None
    name: str | None
    connect_timeout: int
    iam_auth: bool = False  # RDS Proxy IAM authentication (a token per connection)
    aws: AwsSettings | None = None  # the credentials and region the tokens are signed with

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, deployable: str = "controlroom"
    ) -> DatabaseSettings:
        instance = read("CLOUD_SQL_INSTANCE", None, env)
        timeout = read_int("DATABASE_CONNECT_TIMEOUT", 5, env)
        iam_auth = read_bool("DATABASE_IAM_AUTH", False, env)
        if instance is not None and iam_auth:
            raise SettingsError("DATABASE_IAM_AUTH is for RDS Proxy, not with CLOUD_SQL_INSTANCE")
        if iam_auth:
            url = read_secret("DATABASE_URL", env)
            _iam_database_url(url.reveal())
            aws = AwsSettings.from_env(env, deployable)
            if aws.region is None:
                raise SettingsError("AWS_REGION is not set (needed with DATABASE_IAM_AUTH)")
            return cls(
                url=url,
                cloud_sql_instance=None,
                user=None,
                password=None,
                name=None,
                connect_timeout=timeout,
                iam_auth=True,
                aws=aws,
            )
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
    # the persist queue and CLOUD_TASKS_QUEUE-1 ... -(n-1): one queue dispatches 500/s at most
    tasks_queue_shards: int = 1
    # optional: without REDIS_URL, each instance keeps its own buckets in memory
    redis_url: Secret | None = None
    rate_limits: RateLimitSettings | None = None
    redis_ca_cert: str | None = None  # PEM: the CA a rediss:// server must chain to

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
            tasks_queue_shards=_positive("CLOUD_TASKS_QUEUE_SHARDS", 1, env),
            persist_url=require("PERSIST_URL", env),
            persist_invoker=read("PERSIST_INVOKER_SERVICE_ACCOUNT", None, env),
            tasks_emulator_host=read("CLOUD_TASKS_EMULATOR_HOST", None, env),
            ledger_collection=read("LEDGER_COLLECTION", "eventsub_deliveries", env) or "",
            ledger_database=read("LEDGER_DATABASE", "(default)", env) or "(default)",
            redis_url=(redis := Secret(url) if (url := read("REDIS_URL", None, env)) else None),
            rate_limits=RateLimitSettings.from_env(env),
            redis_ca_cert=redis_ca_cert(redis, env),
        )


@dataclass(frozen=True)
class PersistSettings:
    """functions/persist: PostgreSQL as the runtime role, Redis to publish."""

    database: DatabaseSettings
    redis_url: Secret
    redis_ca_cert: str | None = None  # PEM: the CA a rediss:// server must chain to
    notify: NotifySettings | None = None  # where notification deliveries are enqueued

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PersistSettings:
        redis = read_secret("REDIS_URL", env)
        return cls(
            database=DatabaseSettings.from_env(env, "persist"),
            redis_url=redis,
            redis_ca_cert=redis_ca_cert(redis, env),
            notify=NotifySettings.from_env(env),
        )


@functools.cache
def webhook() -> WebhookSettings:
    return WebhookSettings.from_env()


@functools.cache
def persist() -> PersistSettings:
    return PersistSettings.from_env()


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID Connect issuer people sign in at (Google, Twitch, Auth0, Entra ID, the local
    stand-in: configuration only)."""

    issuer: str
    client_id: str
    client_secret: Secret
    scopes: str = "openid email profile"
    provider_name: str | None = None
    # the issuer's email counts as verified without an email_verified claim (Entra ID sends
    # none): only for a directory whose administrators control every address
    trust_email: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OidcSettings | None:
        """None when OIDC_ISSUER is unset (sign-in is then off; tokens may still be verified)."""
        issuer = read("OIDC_ISSUER", None, env)
        if issuer is None:
            return None
        scopes = read("OIDC_SCOPES", cls.scopes, env) or cls.scopes
        if "openid" not in scopes.split():
            raise SettingsError(f"OIDC_SCOPES must include openid, got {scopes!r}")
        return cls(
            issuer=issuer,  # exactly as the provider writes it (Auth0's ends with a slash)
            client_id=require("OIDC_CLIENT_ID", env),
            client_secret=read_secret("OIDC_CLIENT_SECRET", env),
            scopes=scopes,
            provider_name=read("OIDC_PROVIDER_NAME", None, env),
            trust_email=read_bool("OIDC_TRUST_EMAIL", False, env),
        )


@dataclass(frozen=True)
class AuthSettings:
    """Sign-in and tokens: our own signing keys (TOKEN_SIGNING_KEYS, current first) or, for a
    service that only verifies, a JWKS URL or a PEM; the issuer (PUBLIC_URL unless JWT_ISSUER
    says otherwise), the audience, token and session lifetimes, and the OIDC issuer."""

    issuer: str
    audience: str
    jwks_url: str | None
    public_key_pem: str | None
    jwks_ttl_seconds: int = 600  # how long fetched keys are kept
    jwks_refetch_seconds: int = 60  # the least time between two fetches (unknown kid, failure)
    signing_keys: Secret | None = None  # PEM private keys, current first (Secret Manager)
    public_url: str | None = None  # the service's external origin (redirects, cookies)
    access_ttl_seconds: int = 900
    refresh_ttl_seconds: int = 30 * 24 * 3600
    oidc: OidcSettings | None = None
    session_secret: Secret | None = None  # signs the short-lived login-state cookie
    cookie_secure: bool = True
    dev_token_sign_in: bool = False  # the dashboard may offer token pasting (local only)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        keys = read("TOKEN_SIGNING_KEYS", None, env)
        jwks = read("JWT_JWKS_URL", None, env)
        pem = read("JWT_PUBLIC_KEY_PEM", None, env)
        if not (keys or jwks or pem):
            raise SettingsError(
                "TOKEN_SIGNING_KEYS is not set (or JWT_JWKS_URL, JWT_PUBLIC_KEY_PEM)"
            )
        public_url = read("PUBLIC_URL", None, env)
        if public_url is not None:
            public_url = public_url.rstrip("/")
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", public_url):
                raise SettingsError(f"PUBLIC_URL: {public_url!r} is not an origin")
        issuer = read("JWT_ISSUER", None, env) or public_url
        if issuer is None:
            raise SettingsError("PUBLIC_URL is not set (or JWT_ISSUER)")
        oidc = OidcSettings.from_env(env)
        session_secret = read("SESSION_SECRET", None, env)
        if oidc is not None and (public_url is None or session_secret is None):
            raise SettingsError("OIDC_ISSUER needs PUBLIC_URL and SESSION_SECRET")
        if oidc is not None and keys is None:
            raise SettingsError("OIDC_ISSUER needs TOKEN_SIGNING_KEYS (sign-in issues tokens)")
        return cls(
            issuer=issuer,
            audience=read("JWT_AUDIENCE", "controlroom", env) or "controlroom",
            jwks_url=jwks,
            public_key_pem=pem,
            jwks_ttl_seconds=_positive("JWT_JWKS_TTL_SECONDS", 600, env),
            jwks_refetch_seconds=_positive("JWT_JWKS_REFETCH_SECONDS", 60, env),
            signing_keys=Secret(keys) if keys else None,
            public_url=public_url,
            access_ttl_seconds=_positive("ACCESS_TOKEN_TTL_SECONDS", 900, env),
            refresh_ttl_seconds=_positive("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, env),
            oidc=oidc,
            session_secret=Secret(session_secret) if session_secret else None,
            cookie_secure=read_bool("COOKIE_SECURE", True, env),
            dev_token_sign_in=read_bool("DEV_TOKEN_SIGN_IN", False, env),
        )


@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes: an SMTP relay (the local stack's mail catcher in development)."""

    host: str
    port: int = 587
    sender: str = "Creator Control Room <no-reply@localhost>"
    starttls: bool = True
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings | None:
        """None when SMTP_HOST is unset: invitations are then only shown, not mailed."""
        host = read("SMTP_HOST", None, env)
        if host is None:
            return None
        password = read("SMTP_PASSWORD", None, env)
        return cls(
            host=host,
            port=_positive("SMTP_PORT", 587, env),
            sender=read("SMTP_FROM", cls.sender, env) or cls.sender,
            starttls=read_bool("SMTP_STARTTLS", True, env),
            username=read("SMTP_USERNAME", None, env),
            password=Secret(password) if password else None,
            timeout_seconds=_positive("SMTP_TIMEOUT_SECONDS", 10, env),
        )


@dataclass(frozen=True)
class TenancySettings:
    """Companies and invitations: link lifetimes, the deletion grace period, mail."""

    public_url: str = "http://127.0.0.1:8080"  # where invitation links point (PUBLIC_URL)
    invitation_ttl_days: int = 7
    delete_grace_days: int = 30
    smtp: SmtpSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TenancySettings:
        grace = read_int("COMPANY_DELETE_GRACE_DAYS", 30, env)
        if grace < 0:
            raise SettingsError(f"COMPANY_DELETE_GRACE_DAYS must be 0 or more, got {grace}")
        public = read("PUBLIC_URL", None, env) or read("RELAY_URL", cls.public_url, env)
        return cls(
            public_url=(public or cls.public_url).rstrip("/"),
            invitation_ttl_days=_positive("INVITATION_TTL_DAYS", 7, env),
            delete_grace_days=grace,
            smtp=SmtpSettings.from_env(env),
        )


@functools.cache
def tenancy() -> TenancySettings:
    return TenancySettings.from_env()


@dataclass(frozen=True)
class Rate:
    """A token bucket: `limit` tokens every `period_seconds`, holding at most `burst`."""

    limit: int
    period_seconds: int
    burst: int


_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600}
_RATE = re.compile(r"(\d+)\s*/\s*([a-z]+)(?:\s+burst\s+(\d+))?")


def _rate(name: str, default: str, env: Mapping[str, str] | None) -> Rate | None:
    """`<count>/<s|min|h> [burst <n>]` (burst defaults to count), or `off`."""
    raw = (read(name, default, env) or default).lower()
    if raw == "off":
        return None
    found = _RATE.fullmatch(raw)
    if not found or found[2] not in _PERIODS or int(found[1]) < 1 or found[3] == "0":
        raise SettingsError(f"{name} must look like '60/min burst 30' or 'off', got {raw!r}")
    limit, period = int(found[1]), _PERIODS[found[2]]
    if limit % period:
        # the bucket refills in whole seconds and drops a fraction: 30/min would never refill
        # under one request a second
        raise SettingsError(f"{name} must refill a whole number per second, got {raw!r}")
    return Rate(limit, period, int(found[3] or limit))


@dataclass(frozen=True)
class RateLimitSettings:
    """Token buckets per client IP and per signed-in subject (README: configuration).

    Defaults are generous: they stop floods, not people (an agency's staff share one NAT).
    """

    auth_ip: Rate | None = Rate(600, 60, 300)  # /auth/* and /connect*, per IP
    api_ip: Rate | None = Rate(1200, 60, 600)  # /api/*, per IP, before the token is read
    api_subject: Rate | None = Rate(600, 60, 300)  # /api/*, per subject, once verified
    connect_ip: Rate | None = Rate(300, 60, 300)  # socket connects, per IP
    resume_subject: Rate | None = Rate(120, 60, 60)  # socket resumes, per subject
    webhook_ip: Rate | None = Rate(60, 60, 30)  # deliveries failing their signature, per IP
    trusted_proxy_hops: int = 0  # proxies in front appending to X-Forwarded-For (Cloud Run: 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateLimitSettings:
        off = read("RATE_LIMITS", "on", env) == "off"  # all of them, for benchmarks
        hops = read_int("TRUSTED_PROXY_HOPS", 0, env)
        if hops < 0:
            raise SettingsError(f"TRUSTED_PROXY_HOPS must be 0 or more, got {hops}")

        def rate(name: str, default: str) -> Rate | None:
            found = _rate(f"RATE_LIMIT_{name}", default, env)
            return None if off else found

        return cls(
            auth_ip=rate("AUTH_IP", "600/min burst 300"),
            api_ip=rate("API_IP", "1200/min burst 600"),
            api_subject=rate("API_SUBJECT", "600/min burst 300"),
            connect_ip=rate("CONNECT_IP", "300/min burst 300"),
            resume_subject=rate("RESUME_SUBJECT", "120/min burst 60"),
            webhook_ip=rate("WEBHOOK_IP", "60/min burst 30"),
            trusted_proxy_hops=hops,
        )


@dataclass(frozen=True)
class ConsentSettings:
    """Creator consent: Twitch's OAuth endpoints (the local stand-in in development) and how
    long a connect link stays valid. The client is TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET."""

    authorize_url: str = "https://id.twitch.tv/oauth2/authorize"
    validate_url: str = "https://id.twitch.tv/oauth2/validate"
    link_ttl_days: int = 7

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsentSettings:
        return cls(
            authorize_url=read("TWITCH_AUTHORIZE_URL", cls.authorize_url, env) or "",
            validate_url=read("TWITCH_VALIDATE_URL", cls.validate_url, env) or "",
            link_ttl_days=_positive("CONNECT_LINK_TTL_DAYS", 7, env),
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
    twitch_image_origin: str
    subscriptions_url: str | None
    tasks_project: str | None
    tasks_location: str | None
    tasks_queue: str | None
    tasks_emulator_host: str | None
    subscriptions_invoker: str | None
    dashboard_dir: str
    # Browser origins besides the service's own allowed to call the API and open sockets.
    allowed_origins: tuple[str, ...] = ()
    tenancy: TenancySettings = TenancySettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    consent: ConsentSettings = ConsentSettings()
    aws: AwsSettings = AwsSettings(region=None, session_name="realtime")  # branding uploads
    redis_ca_cert: str | None = None  # PEM: the CA a rediss:// server must chain to
    notify: NotifySettings | None = None  # where notification deliveries are enqueued
    # live frames written pre-encoded to idle websockets' transports (docs/realtime.md)
    fast_write: bool = True
    # uvicorn's worker processes (`--workers` defaults to WEB_CONCURRENCY): with more than one,
    # sockets are websocket-only (a long-polling client's requests could reach any of them)
    workers: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RealtimeSettings:
        return cls(
            database=DatabaseSettings.from_env(env, "realtime"),
            redis_url=read_secret("REDIS_URL", env),
            auth=AuthSettings.from_env(env),
            batch_ms=read_int("RELAY_BATCH_MS", 0, env),
            reconcile_seconds=read_int("RELAY_RECONCILE_SECONDS", 2, env),
            replay_page=read_int("RELAY_REPLAY_PAGE", 500, env),
            send_queue_limit=_positive("RELAY_SEND_QUEUE_LIMIT", 1000, env),
            fast_write=read_bool("RELAY_FAST_WRITE", True, env),
            workers=_positive("WEB_CONCURRENCY", 1, env),
            branding_bucket=require("BRANDING_BUCKET", env),
            s3_endpoint_url=read("AWS_ENDPOINT_URL_S3", None, env),
            twitch_client_id=read("TWITCH_CLIENT_ID", None, env),
            twitch_client_secret=Secret(v)
            if (v := read("TWITCH_CLIENT_SECRET", None, env))
            else None,
            helix_api_url=read("HELIX_API_URL", "https://api.twitch.tv/helix", env) or "",
            twitch_token_url=read("TWITCH_TOKEN_URL", "https://id.twitch.tv/oauth2/token", env)
            or "",
            twitch_image_origin=image_origin(env),
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
            tenancy=TenancySettings.from_env(env),
            rate_limits=RateLimitSettings.from_env(env),
            consent=ConsentSettings.from_env(env),
            aws=AwsSettings.from_env(env, "realtime"),
            redis_ca_cert=redis_ca_cert(Secret(require("REDIS_URL", env)), env),
            notify=NotifySettings.from_env(env),
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
            database=DatabaseSettings.from_env(env, "subscriptions"),
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
    branding_bucket: str | None = None  # purged with the archive's prefixes
    aws: AwsSettings = AwsSettings(region=None, session_name="archive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ArchiveSettings:
        retention = read("ARCHIVE_RETENTION_DAYS", None, env)
        if retention is not None and not retention.isdigit():
            raise SettingsError(f"ARCHIVE_RETENTION_DAYS must be a whole number, got {retention!r}")
        return cls(
            database=DatabaseSettings.from_env(env, "archive"),
            bucket=require("ARCHIVE_BUCKET", env),
            s3_endpoint_url=read("AWS_ENDPOINT_URL_S3", None, env),
            retention_days=int(retention) if retention is not None else None,
            branding_bucket=read("BRANDING_BUCKET", None, env),
            aws=AwsSettings.from_env(env, "archive"),
        )


@functools.cache
def archive() -> ArchiveSettings:
    return ArchiveSettings.from_env()


@dataclass(frozen=True)
class NotifySettings:
    """Where notification deliveries are enqueued (functions/notify through its Cloud Tasks
    queue); None when NOTIFY_URL is unset (no dispatcher: deliveries wait in the database)."""

    url: str
    queue: str
    invoker: str | None  # the service account whose OIDC token Cloud Tasks presents
    project: str | None
    location: str | None
    tasks_emulator_host: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings | None:
        url = read("NOTIFY_URL", None, env)
        if url is None:
            return None
        return cls(
            url=url,
            queue=read("NOTIFY_QUEUE", "notify", env) or "notify",
            invoker=read("NOTIFY_INVOKER", None, env),
            project=read("GOOGLE_CLOUD_PROJECT", None, env),
            location=read("CLOUD_TASKS_LOCATION", None, env),
            tasks_emulator_host=read("CLOUD_TASKS_EMULATOR_HOST", None, env),
        )


@dataclass(frozen=True)
class PulseSettings:
    """functions/pulse: PostgreSQL as the runtime role, Redis to publish, Twitch's app
    credentials (optional locally: without them a run does nothing), notifications."""

    database: DatabaseSettings
    redis_url: Secret
    client_id: str | None
    client_secret: Secret | None
    helix_api_url: str
    token_url: str
    notify: NotifySettings | None = None
    redis_ca_cert: str | None = None  # PEM: the CA a rediss:// server must chain to
    image_origin: str = TWITCH_IMAGE_ORIGIN  # avatars and previews stored only from here

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PulseSettings:
        redis = read_secret("REDIS_URL", env)
        secret = read("TWITCH_CLIENT_SECRET", None, env)
        return cls(
            database=DatabaseSettings.from_env(env, "pulse"),
            redis_url=redis,
            client_id=read("TWITCH_CLIENT_ID", None, env),
            client_secret=Secret(secret) if secret else None,
            helix_api_url=read("HELIX_API_URL", "https://api.twitch.tv/helix", env) or "",
            token_url=read("TWITCH_TOKEN_URL", "https://id.twitch.tv/oauth2/token", env) or "",
            notify=NotifySettings.from_env(env),
            redis_ca_cert=redis_ca_cert(redis, env),
            image_origin=image_origin(env),
        )


@functools.cache
def pulse() -> PulseSettings:
    return PulseSettings.from_env()


@dataclass(frozen=True)
class ChannelSettings:
    """Notification channels, for the API (sealing) and functions/notify (opening).

    NOTIFICATION_KEYS: the key-encryption keyring, "kid1:<base64 32 bytes>,kid0:<...>" (first
    seals; Secret Manager in the cloud, the stack's state locally). NOTIFY_ALLOW_LOOPBACK: accept
    http://127.0.0.1 / localhost channel URLs (the local notification sink); never in the cloud.
    """

    keys: Secret
    allow_loopback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ChannelSettings:
        return cls(
            keys=read_secret("NOTIFICATION_KEYS", env),
            allow_loopback=read_bool("NOTIFY_ALLOW_LOOPBACK", False, env),
        )


@functools.cache
def channels() -> ChannelSettings:
    return ChannelSettings.from_env()


@dataclass(frozen=True)
class NotifyFunctionSettings:
    """functions/notify: PostgreSQL as the runtime role, the channel keyring, the dashboard's
    origin for links (PUBLIC_URL), and its own queue (a long 429 schedules a later task)."""

    database: DatabaseSettings
    channels: ChannelSettings
    public_url: str | None
    queue: NotifySettings | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifyFunctionSettings:
        public_url = read("PUBLIC_URL", None, env)
        return cls(
            database=DatabaseSettings.from_env(env, "notify"),
            channels=ChannelSettings.from_env(env),
            public_url=public_url.rstrip("/") if public_url else None,
            queue=NotifySettings.from_env(env),
        )


@functools.cache
def notify() -> NotifyFunctionSettings:
    return NotifyFunctionSettings.from_env()
