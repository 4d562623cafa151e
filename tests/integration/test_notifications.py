"""Notification channels and deliveries on the real stack: PostgreSQL under the runtime role
and RLS, the local notification sink answering as Discord, Slack or a webhook would (scripted
429s and 5xx included), and the Cloud Tasks emulator carrying notify tasks to functions/notify.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controlroom import services, settings
from controlroom.adapters import db
from controlroom.adapters.secretbox import Keyring
from controlroom.dev.stack import Endpoints, LocalStack
from controlroom.dev.stack.notify import NotificationSink
from controlroom.dev.stack.process import free_port
from controlroom.errors import InvalidError, NotFoundError, NotificationRetryError
from controlroom.usecases import audit, incidents, notifications
from tests.integration.conftest import new_company

ADMIN = audit.Actor(subject="notify-test-admin")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotificationSink]:
    stand_in = NotificationSink(Path(tmp_path_factory.mktemp("sink")), free_port())
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def keyring(endpoints: Endpoints) -> Keyring:
    return Keyring.parse(endpoints.env()["NOTIFICATION_KEYS"])


class Api:
    """The async use cases as the API calls them, each on a connection of its own."""

    def __init__(self, cfg: settings.DatabaseSettings, keyring: Keyring) -> None:
        self.cfg = cfg
        self.keyring = keyring

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            async with await db.connect_async(self.cfg, autocommit=True) as conn:
                return await fn(conn, *args, **kwargs)

        return asyncio.run(run())

    def create(self, company: uuid.UUID, url: str, kind: str = "discord", **kw: Any) -> Any:
        kw = {"name": f"{kind}-{uuid.uuid4().hex[:6]}", "min_severity": "info", **kw}
        return self(
            notifications.create_channel,
            company,
            ADMIN,
            kind=kind,
            url=url,
            keyring=self.keyring,
            allow_loopback=True,
            **kw,
        )


@pytest.fixture
def api(db_settings: settings.DatabaseSettings, keyring: Keyring) -> Api:
    return Api(db_settings, keyring)


def incident(
    conn: psycopg.Connection[Any], company: uuid.UUID, severity: str = "warning"
) -> uuid.UUID:
    """An incident row written directly (detection is tested elsewhere), with its creator."""
    with db.tenant_transaction(conn, company):
        creator = conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, %s, %s, 'Streamer One') RETURNING id",
            (company, str(uuid.uuid4().int % 10**12), f"s{uuid.uuid4().hex[:10]}"),
        ).fetchone()["id"]
        number = conn.execute(
            "INSERT INTO event_sequences (company_id) VALUES (%s) ON CONFLICT (company_id) "
            "DO UPDATE SET last_incident = event_sequences.last_incident + 1 "
            "RETURNING last_incident",
            (company,),
        ).fetchone()["last_incident"]
        return uuid.UUID(
            str(
                conn.execute(
                    "INSERT INTO incidents (company_id, number, creator_id, rule, severity, "
                    "title, dedup_key, opened_at) VALUES (%s, %s, %s, 'raid_incoming', %s, "
                    "'Raid of 5,000 viewers', %s, now()) RETURNING id",
                    (company, number + 1, creator, severity, uuid.uuid4().hex),
                ).fetchone()["id"]
            )
        )


def delivery(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    channel: str,
    incident_id: uuid.UUID,
    *,
    transition: str = "opened",
    created_at: datetime | None = None,
) -> uuid.UUID:
    with db.tenant_transaction(conn, company):
        row = conn.execute(
            "INSERT INTO notification_deliveries (company_id, channel_id, incident_id, "
            "transition, created_at) VALUES (%s, %s, %s, %s, coalesce(%s, now())) RETURNING id",
            (company, channel, incident_id, transition, created_at),
        ).fetchone()
    return uuid.UUID(str(row["id"]))


def row(conn: psycopg.Connection[Any], company: uuid.UUID, delivery_id: uuid.UUID) -> Any:
    with db.tenant_transaction(conn, company):
        return conn.execute(
            "SELECT * FROM notification_deliveries WHERE id = %s", (delivery_id,)
        ).fetchone()


@pytest.fixture
def company(app_conn: psycopg.Connection[Any]) -> uuid.UUID:
    return new_company(app_conn, "Notify Agency")


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def deliver(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    delivery_id: uuid.UUID,
    keyring: Keyring,
    **kw: Any,
) -> notifications.DeliveryOutcome:
    return notifications.deliver(
        conn,
        company,
        delivery_id,
        datetime.now(UTC),
        keyring=keyring,
        public_url="http://127.0.0.1:8080",
        allow_loopback=True,
        **kw,
    )


# --- channels --------------------------------------------------------------------------------
def test_channel_urls_are_sealed_never_returned_nor_audited(
    api: Api, company: uuid.UUID, sink: NotificationSink, superuser_conn: psycopg.Connection[Any]
) -> None:
    url = sink.channel_url("discord", f"ops-{uuid.uuid4().hex[:8]}")
    created = api.create(company, url, mention="123456789012345678")
    assert set(created) == {
        "id",
        "kind",
        "name",
        "url_hint",
        "min_severity",
        "quiet_hours",
        "mention",
        "enabled",
        "has_secret",
        "created_at",
        "updated_at",
    }
    assert created["url_hint"].endswith(url[-4:]) and url not in json.dumps(created)
    hook = api.create(
        company,
        sink.channel_url("webhook", "signed"),
        kind="webhook",
        secret=SECRET,
        quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"},
    )
    assert hook["has_secret"] is True
    assert hook["quiet_hours"] == {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
    listed = api(notifications.list_channels, company, ADMIN)
    assert {c["id"] for c in listed} == {created["id"], hook["id"]}
    new_url = sink.channel_url("discord", "moved-wxyz")
    updated = api(
        notifications.update_channel,
        company,
        ADMIN,
        uuid.UUID(created["id"]),
        url=new_url,
        name="moved",
        keyring=api.keyring,
        allow_loopback=True,
    )
    assert updated["url_hint"].endswith("wxyz") and updated["name"] == "moved"
    api(notifications.delete_channel, company, ADMIN, uuid.UUID(hook["id"]))
    stored = superuser_conn.execute(
        "SELECT sealed_url FROM notification_channels WHERE company_id = %s", (company,)
    ).fetchall()
    assert len(stored) == 1
    assert all(new_url.encode() not in bytes(r["sealed_url"]) for r in stored)
    trail = superuser_conn.execute(
        "SELECT action, before::text AS b, after::text AS a FROM audit_logs "
        "WHERE company_id = %s AND target_type = 'notification_channel' ORDER BY id",
        (company,),
    ).fetchall()
    assert [t["action"] for t in trail] == [
        "notification_channel.create",
        "notification_channel.create",
        "notification_channel.update",
        "notification_channel.delete",
    ]
    text = json.dumps(trail)
    for secret in (url, new_url, SECRET, "/discord/", "/webhook/signed"):
        assert secret not in text


@pytest.mark.parametrize(
    ("kind", "url", "extra"),
    [
        ("discord", "https://example.com/api/webhooks/1/x", {}),
        ("slack", "http://127.0.0.1:1/slack/x", {"secret": SECRET}),  # secret on slack
        ("webhook", "http://10.1.2.3/hook", {}),
        ("discord", "http://127.0.0.1:1/discord/x", {"mention": "@everyone please"}),
        ("discord", "http://127.0.0.1:1/discord/x", {"min_severity": "urgent"}),
    ],
)
def test_invalid_channels_are_refused(
    api: Api, company: uuid.UUID, kind: str, url: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(InvalidError):
        api.create(company, url, kind=kind, **extra)


def test_another_company_sees_and_delivers_nothing_of_it(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("discord", f"rls-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    other = new_company(app_conn, "Other Agency")
    assert api(notifications.list_channels, other, ADMIN) == []
    for fn, kw in (
        (notifications.update_channel, {"name": "mine now"}),
        (notifications.delete_channel, {}),
        (notifications.send_test, {}),
        (notifications.channel_deliveries, {}),
    ):
        with pytest.raises(NotFoundError):
            api(fn, other, ADMIN, uuid.UUID(channel["id"]), **kw)
    outcome = deliver(app_conn, other, planned, keyring)
    assert outcome.status == "none"
    assert sink.requests(path_of(url)) == []
    assert row(app_conn, company, planned)["status"] == "pending"


# --- delivering ------------------------------------------------------------------------------
def test_delivered_once(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("discord", f"once-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url, mention="123456789012345678")
    incident_id = incident(app_conn, company)
    planned = delivery(app_conn, company, channel["id"], incident_id)
    assert deliver(app_conn, company, planned, keyring).status == "delivered"
    assert deliver(app_conn, company, planned, keyring).status == "delivered"  # a duplicate task
    got = sink.messages(path_of(url))
    assert len(got) == 1
    embed = got[0]["body"]["embeds"][0]
    assert embed["url"] == f"http://127.0.0.1:8080/#/incidents/{incident_id}"
    assert {"name": "Creator", "value": "Streamer One", "inline": True} in embed["fields"]
    assert got[0]["body"]["allowed_mentions"] == {"parse": [], "roles": ["123456789012345678"]}
    stored = row(app_conn, company, planned)
    assert (stored["status"], stored["attempts"], stored["last_status"]) == ("delivered", 1, 204)
    assert stored["delivered_at"] is not None
    log = api(notifications.channel_deliveries, company, ADMIN, uuid.UUID(channel["id"]))
    assert [d["status"] for d in log] == ["delivered"]


def test_short_429s_are_waited_out_and_posted_once(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("discord", f"limited-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    sink.control(
        {
            "path": path_of(url),
            "responses": [
                {"status": 429, "retry_after": 0.25},
                {"status": 429, "retry_after": 0.5},
            ],
        }
    )
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    waits: list[float] = []
    outcome = deliver(app_conn, company, planned, keyring, sleep=waits.append)
    assert outcome.status == "delivered"
    assert waits == [0.25, 0.5]  # Discord's retry_after, not the rounded header
    assert len(sink.messages(path_of(url))) == 1
    assert [r["answered"] for r in sink.requests(path_of(url))] == [429, 429, 204]
    assert row(app_conn, company, planned)["attempts"] == 3


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, int | str, datetime | None]] = []
        self.dispatched: list[tuple[str, list[uuid.UUID]]] = []

    def dispatch(self, company_id: Any, delivery_ids: Any) -> None:
        self.dispatched.append((str(company_id), list(delivery_ids)))

    def dispatch_attempt(
        self, company_id: Any, delivery_id: Any, attempt: int | str, not_before: Any = None
    ) -> bool:
        self.attempts.append((str(company_id), str(delivery_id), attempt, not_before))
        return True


def test_a_long_429_schedules_a_later_task(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("slack", f"long-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url, kind="slack")
    sink.control({"path": path_of(url), "responses": [{"status": 429, "retry_after": 30}]})
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    recorder = Recorder()
    outcome = deliver(app_conn, company, planned, keyring, dispatcher=recorder)
    assert outcome.status == "pending"
    stored = row(app_conn, company, planned)
    assert (stored["status"], stored["attempts"], stored["last_status"]) == ("pending", 1, 429)
    [(_, delivery_id, attempt, not_before)] = recorder.attempts
    assert (delivery_id, attempt) == (str(planned), 1)
    assert not_before is not None and not_before == stored["next_attempt_at"]
    # the task arriving early (a duplicate) is told to come back; nothing is posted
    with pytest.raises(NotificationRetryError):
        deliver(app_conn, company, planned, keyring)
    assert sink.messages(path_of(url)) == []


def test_5xx_is_retried_by_the_queue_then_delivered(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("slack", f"flaky-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url, kind="slack", mention="<!here>")
    sink.control({"path": path_of(url), "responses": [{"status": 500}]})
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    with pytest.raises(NotificationRetryError):
        deliver(app_conn, company, planned, keyring)
    stored = row(app_conn, company, planned)
    assert (stored["status"], stored["attempts"], stored["last_status"]) == ("pending", 1, 500)
    assert deliver(app_conn, company, planned, keyring).status == "delivered"
    [message] = sink.messages(path_of(url))
    assert message["body"]["blocks"][0]["type"] == "header"
    assert message["body"]["text"].startswith("<!here> ")
    assert row(app_conn, company, planned)["attempts"] == 2


def test_404_fails_for_good(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("discord", f"gone-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    sink.control({"path": path_of(url), "responses": [{"status": 404}]})
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    outcome = deliver(app_conn, company, planned, keyring)
    assert (outcome.status, outcome.last_status) == ("failed", 404)
    assert deliver(app_conn, company, planned, keyring).status == "failed"
    assert len(sink.requests(path_of(url))) == 1
    stored = row(app_conn, company, planned)
    assert stored["reason"] == "HTTP 404: webhook deleted"
    assert url not in (stored["last_error"] or "")


def test_gives_up_after_24_hours(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("discord", f"old-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    planned = delivery(
        app_conn,
        company,
        channel["id"],
        incident(app_conn, company),
        created_at=datetime.now(UTC) - timedelta(hours=25),
    )
    assert deliver(app_conn, company, planned, keyring).status == "failed"
    assert row(app_conn, company, planned)["reason"] == "gave up after 24 h"
    assert sink.requests(path_of(url)) == []


def test_signed_webhook_verifies_at_the_receiver(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    url = sink.channel_url("webhook", f"signed-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url, kind="webhook", secret=SECRET)
    sink.control({"path": path_of(url), "secret": SECRET})
    incident_id = incident(app_conn, company, "critical")
    planned = delivery(app_conn, company, channel["id"], incident_id, transition="opened")
    assert deliver(app_conn, company, planned, keyring).status == "delivered"
    [message] = sink.messages(path_of(url))
    assert message["signature"] == "valid"
    assert message["webhook_id"] == str(planned)
    assert message["body"]["type"] == "incident.opened"
    assert message["body"]["data"]["id"] == str(incident_id)


def test_quiet_hours_skip_all_but_critical(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    keyring: Keyring,
) -> None:
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    url = sink.channel_url("discord", f"quiet-{uuid.uuid4().hex[:8]}")
    api.create(company, url, quiet_hours=quiet)
    planned: dict[str, Any] = {}
    for severity in ("warning", "critical"):
        incident_id = incident(app_conn, company, severity)
        with db.tenant_transaction(app_conn, company):
            found = app_conn.execute(
                incidents.PLAN_DELIVERIES,
                {
                    "company": company,
                    "incident": incident_id,
                    "transition": "opened",
                    "severity": severity,
                    "now": now,
                },
            ).fetchall()
        [planned[severity]] = found
    assert planned["warning"]["status"] == "skipped"
    assert planned["critical"]["status"] == "pending"
    assert deliver(app_conn, company, planned["warning"]["id"], keyring).status == "skipped"
    assert deliver(app_conn, company, planned["critical"]["id"], keyring).status == "delivered"
    assert len(sink.messages(path_of(url))) == 1
    assert row(app_conn, company, planned["warning"]["id"])["reason"] == "quiet hours"


# --- through Cloud Tasks and functions/notify ------------------------------------------------
@pytest.fixture(scope="module")
def notify_function(local_stack: LocalStack) -> Iterator[settings.NotifySettings]:
    port = free_port()
    env = {
        "NOTIFY_URL": f"http://127.0.0.1:{port}/",
        "NOTIFY_QUEUE": "notify",
        "PUBLIC_URL": "http://127.0.0.1:8080",
    }
    server = local_stack.start_function("notify", extra_env=env, port=port)
    assert local_stack.endpoints is not None
    cfg = settings.NotifySettings.from_env({**local_stack.endpoints.env(), **env})
    assert cfg is not None
    try:
        yield cfg
    finally:
        server.stop()


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("not reached in time")


def test_dispatch_through_the_queue_posts_once_despite_429s(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    notify_function: settings.NotifySettings,
) -> None:
    dispatcher = services.notify_dispatcher(notify_function)
    assert dispatcher is not None
    url = sink.channel_url("discord", f"queued-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    sink.control(
        {
            "path": path_of(url),
            "responses": [{"status": 429, "retry_after": 0.2}, {"status": 429, "retry_after": 0.2}],
        }
    )
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    dispatcher.dispatch(company, [planned])
    dispatcher.dispatch(company, [planned])  # a duplicate dispatch: the emulator keeps both
    wait_for(lambda: row(app_conn, company, planned)["status"] == "delivered")
    time.sleep(1)  # let a duplicate task run too, if the emulator has one
    assert len(sink.messages(path_of(url))) == 1
    assert row(app_conn, company, planned)["attempts"] == 3


def test_send_test_and_the_sweep_redispatch(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    notify_function: settings.NotifySettings,
) -> None:
    dispatcher = services.notify_dispatcher(notify_function)
    assert dispatcher is not None
    url = sink.channel_url("discord", f"sweep-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    test = api(notifications.send_test, company, ADMIN, uuid.UUID(channel["id"]))
    assert (test["transition"], test["status"]) == ("test", "pending")
    # the dispatch was lost: the sweep (pulse, every minute) hands it over again
    with db.tenant_transaction(app_conn, company):
        app_conn.execute(
            "UPDATE notification_deliveries SET next_attempt_at = now() - interval '5 minutes' "
            "WHERE id = %s",
            (test["id"],),
        )
    assert notifications.redispatch_pending(app_conn, dispatcher, datetime.now(UTC)) >= 1
    wait_for(lambda: len(sink.messages(path_of(url))) == 1)
    [message] = sink.messages(path_of(url))
    assert message["body"]["embeds"][0]["title"].startswith("Test notification")


def test_a_long_429_through_the_queue_waits_for_the_hint(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    notify_function: settings.NotifySettings,
) -> None:
    """The later attempt is a new task with a schedule time; the emulator holds it until then."""
    dispatcher = services.notify_dispatcher(notify_function)
    assert dispatcher is not None
    url = sink.channel_url("discord", f"later-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)
    sink.control({"path": path_of(url), "responses": [{"status": 429, "retry_after": 6}]})
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    dispatcher.dispatch(company, [planned])
    wait_for(lambda: row(app_conn, company, planned)["status"] == "delivered", seconds=40)
    first, second = sink.requests(path_of(url))
    assert (first["answered"], second["answered"]) == (429, 204)
    gap = datetime.fromisoformat(second["received_at"]) - datetime.fromisoformat(
        first["received_at"]
    )
    assert gap >= timedelta(seconds=6)  # the hint was honored, not raced
    assert row(app_conn, company, planned)["attempts"] == 2


def test_a_rotated_keyring_opens_old_channels_and_seals_them_again_on_use(
    api: Api,
    company: uuid.UUID,
    app_conn: psycopg.Connection[Any],
    sink: NotificationSink,
    endpoints: Endpoints,
) -> None:
    url = sink.channel_url("discord", f"rotate-{uuid.uuid4().hex[:8]}")
    channel = api.create(company, url)  # sealed under the stack's key
    old = endpoints.env()["NOTIFICATION_KEYS"]
    new = Keyring.generate("rotated")
    rotated = Keyring.parse(f"{new},{old}")
    planned = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    assert deliver(app_conn, company, planned, rotated).status == "delivered"
    with db.tenant_transaction(app_conn, company):
        key_id = app_conn.execute(
            "SELECT key_id FROM notification_channels WHERE id = %s", (channel["id"],)
        ).fetchone()["key_id"]
    assert key_id == "rotated"
    again = delivery(app_conn, company, channel["id"], incident(app_conn, company))
    # the old key can go now: the channel opens with the new key alone
    assert deliver(app_conn, company, again, Keyring.parse(new)).status == "delivered"
    assert len(sink.messages(path_of(url))) == 2
