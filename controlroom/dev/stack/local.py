"""The local stack: every cloud part's stand-in, started, prepared and stopped together."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from controlroom.adapters import cloudtasks, s3
from controlroom.adapters.secretbox import Keyring
from controlroom.dev import dbadmin, devkeys
from controlroom.dev.stack.emulators import FirestoreEmulator, MotoS3, TasksEmulator
from controlroom.dev.stack.functions import FunctionServer, IdentityProvider, RelayServer
from controlroom.dev.stack.idp import OidcProvider
from controlroom.dev.stack.mail import MailCatcher
from controlroom.dev.stack.notify import NotificationSink
from controlroom.dev.stack.postgres import EmbeddedPostgres
from controlroom.dev.stack.process import StandIn, free_port, port_is_free
from controlroom.dev.stack.scheduler import SchedulerJob
from controlroom.dev.stack.twitch import TwitchStandIn
from controlroom.dev.stack.valkey import EmbeddedValkey

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DATABASE = "controlroom"
PROJECT = "controlroom-local"
LOCATION = "local"
QUEUE = "persist"
SUBSCRIPTIONS_QUEUE = "subscriptions"  # the reconciler's runs, asked for by the relay
NOTIFY_QUEUE = "notify"  # notification deliveries, one task per attempt, for functions/notify
ARCHIVE_BUCKET = "controlroom-archive"
BRANDING_BUCKET = "controlroom-branding"
OIDC_CLIENT_ID = "controlroom-local"
# Cloud Scheduler calls the audience pulse every minute; locally PULSE_INTERVAL_SECONDS
# (tests set a few seconds)
PULSE_INTERVAL_SECONDS = 60

# `make run` prefers these ports so links stay the same between runs; a busy one is
# replaced by a free one (stack.env always says which).
# The local stack (make run, the tests, the benchmarks) hammers the services from one address
# and a few people: its rate limits are loose but on, so every request still goes through the
# buckets in Valkey. A variable set in the environment wins; tests of the limits set their own.
LOCAL_RATE_LIMITS = {
    f"RATE_LIMIT_{name}": "1000/s burst 100000"
    for name in ("AUTH_IP", "API_IP", "API_SUBJECT", "CONNECT_IP", "RESUME_SUBJECT", "WEBHOOK_IP")
}

PREFERRED_PORTS = {
    "postgres": 55432,
    "valkey": 56379,
    "tasks": 58123,
    "firestore": 58080,
    "s3": 55000,
    "webhook": 58081,
    "persist": 58082,
    "identity": 58083,
    "oidc": 58093,
    "relay": 8080,
    "mail": 58025,
    "twitch": 58084,
    "subscriptions": 58085,
    "pulse": 58086,
    "smtp": 51025,
    "notify": 58087,
    "notifysink": 58026,
}


@dataclass(frozen=True)
class Endpoints:
    """Where each stand-in answers, and the credentials the stack made for it."""

    admin_url: str
    owner_url: str
    database_url: str
    redis_url: str
    tasks_emulator_host: str
    firestore_emulator_host: str
    s3_endpoint_url: str

    eventsub_secret: str
    jwks_url: str
    jwt_private_key: str
    webhook_url: str | None = None
    persist_url: str | None = None
    relay_url: str | None = None
    # sign-in: the service signs with the development key (so `controlroom token` and the
    # tests mint tokens it accepts) and people sign in at the OpenID Connect stand-in
    token_signing_keys: str = ""
    oidc_issuer: str = ""
    oidc_client_secret: str = ""
    session_secret: str = ""
    mail_env: tuple[tuple[str, str], ...] = ()  # SMTP_* and MAIL_CATCHER_URL (services only)
    # the Twitch stand-in's client and URLs, the reconciler's URL and queue (services only)
    twitch_env: tuple[tuple[str, str], ...] = ()
    # the channel keyring (kept in the stack's state); NOTIFY_URL and the sink (services only)
    notification_keys: str = ""
    notify_env: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        """The environment the deployables read (see the README's configuration table)."""
        services = {
            "WEBHOOK_URL": self.webhook_url or "",
            "PERSIST_URL": self.persist_url or "",
            "RELAY_URL": self.relay_url or "",
            "PUBLIC_URL": self.relay_url or "",  # the service's origin: sign-in comes back here
        }
        return {
            "EVENTSUB_SECRET": self.eventsub_secret,
            "JWT_ISSUER": devkeys.ISSUER,
            "JWT_AUDIENCE": devkeys.AUDIENCE,
            "JWT_JWKS_URL": self.jwks_url,
            "JWT_DEV_PRIVATE_KEY": self.jwt_private_key,
            # one line (escaped newlines), so stack.env stays a file `source` reads
            "TOKEN_SIGNING_KEYS": self.token_signing_keys.replace("\n", "\\n"),
            "OIDC_ISSUER": self.oidc_issuer,
            "OIDC_CLIENT_ID": OIDC_CLIENT_ID,
            "OIDC_CLIENT_SECRET": self.oidc_client_secret,
            "OIDC_PROVIDER_NAME": "the local identity provider",
            "SESSION_SECRET": self.session_secret,
            **{k: v for k, v in services.items() if v},
            "DATABASE_URL": self.database_url,
            "DATABASE_OWNER_URL": self.owner_url,
            "DATABASE_ADMIN_URL": self.admin_url,
            "REDIS_URL": self.redis_url,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "CLOUD_TASKS_EMULATOR_HOST": self.tasks_emulator_host,
            "CLOUD_TASKS_LOCATION": LOCATION,
            "CLOUD_TASKS_QUEUE": QUEUE,
            "FIRESTORE_EMULATOR_HOST": self.firestore_emulator_host,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "ARCHIVE_BUCKET": ARCHIVE_BUCKET,
            "BRANDING_BUCKET": BRANDING_BUCKET,
            **dict(self.mail_env),
            **dict(self.twitch_env),
            # channels may point at the local notification sink (http on loopback); never set
            # in the cloud
            "NOTIFICATION_KEYS": self.notification_keys,
            "NOTIFY_ALLOW_LOOPBACK": "1",
            **dict(self.notify_env),
            **{k: os.environ.get(k, v) for k, v in LOCAL_RATE_LIMITS.items()},
        }


@dataclass(frozen=True)
class Tools:
    """Where the stand-ins that do not live in the main virtual environment are installed."""

    tasks_python: Path
    firestore_modules: Path

    @classmethod
    def default(cls) -> Tools:
        return cls(
            tasks_python=Path(os.environ.get("CONTROLROOM_TASKS_PYTHON", sys.executable)),
            firestore_modules=Path(
                os.environ.get(
                    "CONTROLROOM_FIRESTORE_MODULES",
                    PROJECT_ROOT / "tools/firestore-emulator/node_modules",
                )
            ),
        )


@dataclass
class _State:
    """Generated once per stack folder and kept, so a persistent cluster stays reachable."""

    superuser_password: str
    owner_password: str
    app_password: str
    eventsub_secret: str
    oidc_client_secret: str
    session_secret: str
    twitch_client_secret: str
    notification_keys: str  # NOTIFICATION_KEYS: the keyring sealing channel URLs

    @classmethod
    def load(cls, path: Path) -> _State:
        known = json.loads(path.read_text()) if path.exists() else {}
        fresh = {name: secrets.token_urlsafe(18) for name in cls.__dataclass_fields__}
        fresh["notification_keys"] = Keyring.generate("local1")
        state = cls(**{**fresh, **known})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(state)))
        path.chmod(0o600)
        return state


def _port(name: str, preferred: bool) -> int:
    wanted = PREFERRED_PORTS[name]
    return wanted if preferred and port_is_free(wanted) else free_port()


class LocalStack:
    """Starts PostgreSQL, Valkey, the Cloud Tasks and Firestore emulators and moto's S3.

    `durable=True` (make run) keeps PostgreSQL's data in `root` between runs; tests use a
    throwaway `root` and durable=False.
    """

    def __init__(
        self,
        root: Path,
        *,
        durable: bool = False,
        services: bool = False,
        tools: Tools | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.durable = durable
        self.services = services
        self.tools = tools or Tools.default()
        self.progress = progress or (lambda _msg: None)
        state = _State.load(root / "state.json")
        self.state = state
        logs = root / "logs"
        self.postgres = EmbeddedPostgres(
            root / "postgres", _port("postgres", durable), state.superuser_password, durable=durable
        )
        self.valkey = EmbeddedValkey(root / "valkey", _port("valkey", durable))
        self.tasks = TasksEmulator(self.tools.tasks_python, logs, _port("tasks", durable))
        self.firestore = FirestoreEmulator(
            self.tools.firestore_modules, logs, _port("firestore", durable)
        )
        self.s3 = MotoS3(logs, _port("s3", durable))
        self.keys = devkeys.DevKeys.create(root / "jwt")
        self.identity = IdentityProvider(root / "jwt" / "public", logs, _port("identity", durable))
        self.oidc = OidcProvider(
            logs, _port("oidc", durable), OIDC_CLIENT_ID, state.oidc_client_secret
        )
        self.twitch = TwitchStandIn(logs, _port("twitch", durable), state.twitch_client_secret)
        self.mail = MailCatcher(logs, _port("mail", durable), _port("smtp", durable))
        self.sink = NotificationSink(logs, _port("notifysink", durable))
        self._logs = logs
        self.webhook: FunctionServer | None = None
        self.persist: FunctionServer | None = None
        self.subscriptions: FunctionServer | None = None
        self.pulse: FunctionServer | None = None
        self.notify: FunctionServer | None = None
        self.pulse_job: SchedulerJob | None = None
        self.relays: list[RelayServer] = []
        self._started: list[StandIn] = []
        self.endpoints: Endpoints | None = None

    def _start(self, stand_in: StandIn, label: str) -> None:
        self._start_together([(stand_in, label)])

    def _start_together(self, stand_ins: list[tuple[StandIn, str]]) -> None:
        """Launch every process first, then wait for each to answer: they boot side by side
        (a stack of fifteen processes started one by one spent most of its time waiting)."""
        for stand_in, label in stand_ins:
            self.progress(f"starting {label} on 127.0.0.1:{stand_in.port} ...")
            self._started.append(stand_in)  # stopped by stop() even if it never answers
            stand_in.launch()
        for stand_in, _ in stand_ins:
            stand_in.wait_ready()

    def start(self) -> Endpoints:
        try:
            parts: list[tuple[StandIn, str]] = [
                (self.valkey, "Valkey"),
                (self.tasks, "the Cloud Tasks emulator"),
                (self.firestore, "the Firestore emulator"),
                (self.s3, "moto's S3 server"),
                (self.identity, "the identity provider's stand-in (JWKS)"),
                (self.oidc, "the OpenID Connect provider's stand-in"),
            ]
            if self.services:
                parts += [
                    (self.mail, "the mail catcher (SMTP and its page)"),
                    (self.twitch, "the Twitch stand-in (OAuth, Helix, EventSub)"),
                    (self.sink, "the notification sink (Discord, Slack, webhooks)"),
                ]
            # PostgreSQL last: its first start runs initdb while the others boot
            self._start_together([*parts, (self.postgres, "PostgreSQL")])
            self.endpoints = self._prepare()
            if self.services:
                self.endpoints = self._start_services(self.endpoints)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _prepare(self) -> Endpoints:
        admin = self.postgres.admin_url
        self.progress("creating roles and applying migrations ...")
        dbadmin.bootstrap(admin, DATABASE, self.state.owner_password, self.state.app_password)
        owner = dbadmin.with_database(
            dbadmin.with_credentials(admin, dbadmin.OWNER_ROLE, self.state.owner_password), DATABASE
        )
        app = dbadmin.with_database(
            dbadmin.with_credentials(admin, dbadmin.APP_ROLE, self.state.app_password), DATABASE
        )
        dbadmin.migrate(owner)
        self.progress("creating the task queue and the buckets ...")
        tasks = cloudtasks.client(self.tasks.host)
        for queue in (QUEUE, SUBSCRIPTIONS_QUEUE, NOTIFY_QUEUE):
            cloudtasks.ensure_queue(tasks, PROJECT, LOCATION, queue)
        endpoints = Endpoints(
            admin_url=admin,
            owner_url=owner,
            database_url=app,
            redis_url=self.valkey.url,
            tasks_emulator_host=self.tasks.host,
            firestore_emulator_host=self.firestore.host,
            s3_endpoint_url=self.s3.endpoint_url,
            eventsub_secret=self.state.eventsub_secret,
            jwks_url=self.identity.jwks_url,
            jwt_private_key=str(self.root / "jwt" / "signing-key.pem"),
            token_signing_keys=self.keys.private_pem.decode(),
            oidc_issuer=self.oidc.issuer,
            oidc_client_secret=self.state.oidc_client_secret,
            session_secret=self.state.session_secret,
            mail_env=tuple(self.mail.env().items()) if self.services else (),
            twitch_env=tuple(self.twitch.env().items()) if self.services else (),
            notification_keys=self.state.notification_keys,
        )
        self._prepare_buckets(endpoints)
        return endpoints

    def start_relay(
        self, port: int | None = None, extra_env: dict[str, str] | None = None
    ) -> RelayServer:
        """Another relay instance on its own port: they share Redis, so any number works."""
        relay = self._new_relay(port, extra_env)
        self._start(relay, _relay_label(relay))
        return relay

    def _new_relay(self, port: int | None, extra_env: dict[str, str] | None) -> RelayServer:
        assert self.endpoints is not None
        port = port or free_port()
        env = {
            **os.environ,
            **self.endpoints.env(),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",  # its sign-in redirects come back here
            **(extra_env or {}),
        }
        relay = RelayServer(f"relay-{len(self.relays) + 1}", self._logs, port, env)
        self.relays.append(relay)
        return relay

    def start_function(
        self,
        function: str,
        instance: str | None = None,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> FunctionServer:
        """An instance of one of functions/ on its own port (the soak runs several of each)."""
        server = self._new_function(function, instance, extra_env, port)
        self._start(server, _function_label(server))
        return server

    def _new_function(
        self, function: str, instance: str | None, extra: dict[str, str] | None, port: int | None
    ) -> FunctionServer:
        assert self.endpoints is not None
        env = {**os.environ, **self.endpoints.env(), "LOG_LEVEL": "INFO", **(extra or {})}
        return FunctionServer(function, self._logs, port or free_port(), env, instance=instance)

    def _start_services(self, endpoints: Endpoints) -> Endpoints:
        persist_port, webhook_port = _port("persist", self.durable), _port("webhook", self.durable)
        endpoints = dataclasses.replace(
            endpoints,
            persist_url=f"http://127.0.0.1:{persist_port}/",
            webhook_url=f"http://127.0.0.1:{webhook_port}/",
        )
        # the reconciler subscribes at the Twitch stand-in with the webhook as callback; the
        # relay asks for a run through its queue when the roster changes or a creator consents
        subscriptions_port = _port("subscriptions", self.durable)
        endpoints = dataclasses.replace(
            endpoints,
            twitch_env=(
                *endpoints.twitch_env,
                ("EVENTSUB_CALLBACK_URL", f"http://127.0.0.1:{webhook_port}/"),
                ("SUBSCRIPTIONS_URL", f"http://127.0.0.1:{subscriptions_port}/"),
                ("SUBSCRIPTIONS_QUEUE", SUBSCRIPTIONS_QUEUE),
            ),
        )
        # functions/notify first: persist, pulse and the relay dispatch to it through its queue
        notify_port = _port("notify", self.durable)
        endpoints = dataclasses.replace(
            endpoints,
            notify_env=(
                ("NOTIFY_URL", f"http://127.0.0.1:{notify_port}/"),
                ("NOTIFY_QUEUE", NOTIFY_QUEUE),
                ("NOTIFY_SINK_URL", self.sink.url),
            ),
        )
        self.endpoints = endpoints
        # its alerts link to the dashboard, which the relay (started below) serves
        relay_port = _port("relay", self.durable)
        dashboard = {"PUBLIC_URL": f"http://127.0.0.1:{relay_port}"}
        self.notify = self._new_function("notify", None, dashboard, notify_port)
        self.persist = self._new_function("persist", None, None, persist_port)
        self.webhook = self._new_function("webhook", None, None, webhook_port)
        self.subscriptions = self._new_function("subscriptions", None, None, subscriptions_port)
        self.pulse = self._new_function("pulse", None, None, _port("pulse", self.durable))
        functions = [self.notify, self.persist, self.webhook, self.subscriptions, self.pulse]
        # what they call at run time goes through the task queues, which retry: none needs
        # another to answer before it starts, so all boot side by side
        relay = self._new_relay(relay_port, None)
        self._start_together(
            [(server, _function_label(server)) for server in functions]
            + [(relay, _relay_label(relay))]
        )
        self._schedule_pulse(self.pulse)
        return dataclasses.replace(endpoints, relay_url=relay.url)

    def _schedule_pulse(self, pulse: FunctionServer) -> None:
        """The scheduler's stand-in that calls functions/pulse."""
        interval = int(os.environ.get("PULSE_INTERVAL_SECONDS") or PULSE_INTERVAL_SECONDS)
        self.progress(f"scheduling the audience pulse every {interval} s ...")
        self.pulse_job = SchedulerJob("pulse", pulse.url, interval, self.progress)
        self.pulse_job.start()

    def _prepare_buckets(self, endpoints: Endpoints) -> None:
        env = endpoints.env()
        client = s3.client(
            endpoints.s3_endpoint_url,
            credentials=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
        )
        s3.ensure_bucket(client, ARCHIVE_BUCKET)
        s3.ensure_bucket(client, BRANDING_BUCKET)
        # the browser PUTs logos straight to S3 from the dashboard's origin
        client.put_bucket_cors(
            Bucket=BRANDING_BUCKET,
            CORSConfiguration=s3.branding_cors(["*"]),  # type: ignore[arg-type]
        )
        client.put_bucket_lifecycle_configuration(
            Bucket=ARCHIVE_BUCKET,
            LifecycleConfiguration=s3.lifecycle_rules(),  # type: ignore[arg-type]
        )

    def processes(self) -> list[StandIn]:
        return list(self._started)

    def stop(self) -> None:
        if self.pulse_job is not None:
            self.pulse_job.stop()
            self.pulse_job = None
        # our services first, then what they use; each group stops side by side
        started = list(reversed(self._started))
        services = [p for p in started if isinstance(p, FunctionServer | RelayServer)]
        for group in (services, [p for p in started if p not in services]):
            for stand_in in group:
                self.progress(f"stopping {stand_in.name} ...")
                stand_in.signal_stop()
            for stand_in in group:
                stand_in.wait_stopped()
        self._started.clear()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _function_label(server: FunctionServer) -> str:
    instance = f" ({server.name})" if server.name != server.function else ""
    return f"functions/{server.function}{instance}"


def _relay_label(relay: RelayServer) -> str:
    return f"the realtime relay #{relay.name.removeprefix('relay-')}"


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """A file that both `source` (POSIX shell) and people can read; private to its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by `make run`; every endpoint and development credential of the stack"]
    lines += [f"{key}='{value}'" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
