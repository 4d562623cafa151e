"""Incident detection where the data lands: persist's use case and the pulse's samples, on the
real PostgreSQL of the local stack, under the runtime role and RLS.

Each scenario opens exactly one incident; a redelivery (same message id) or a replay (a new
message id for a fact already stored, or for one more occurrence of a lasting condition) opens
nothing new; a second company watching the same creator sees none of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev import twitchsim
from controlroom.errors import ConflictError, InvalidError, NotFoundError
from controlroom.usecases import audit, incidents, ingest
from tests.integration.conftest import new_company

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


class Recorder:
    """Records what persist publishes and dispatches (the adapters are tested elsewhere)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, Any]] = []
        self.dispatched: list[tuple[str, list[uuid.UUID]]] = []
        self.lock = threading.Lock()

    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None:
        with self.lock:
            self.published.append((str(company_id), name, data))

    def dispatch(self, company_id: uuid.UUID | str, delivery_ids: Any) -> None:
        with self.lock:
            self.dispatched.append((str(company_id), list(delivery_ids)))

    def incidents(self, company: uuid.UUID) -> list[dict[str, Any]]:
        return [d for c, n, d in self.published if n == "incident" and c == str(company)]


def task(
    sub_type: str,
    broadcaster: str,
    at: datetime,
    *,
    event: dict[str, Any] | None = None,
    message_id: str | None = None,
    seed: int = 1,
) -> bytes:
    import random

    body = twitchsim.notification_body(
        sub_type, twitchsim.Broadcaster(broadcaster, f"c{broadcaster}"), random.Random(seed), at
    )
    body["event"].update(event or {})
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return PersistTask(
        message_id=message_id or str(uuid.uuid4()),
        message_type=eventsub.NOTIFICATION,
        subscription_type=sub_type,
        subscription_version=body["subscription"]["version"],
        timestamp=stamp,
        retry=0,
        received_at=at.isoformat(),
        body=json.dumps(body).encode(),
    ).encode()


@pytest.fixture
def conn(db_settings: settings.DatabaseSettings) -> Iterator[psycopg.Connection[Any]]:
    with db.connect(db_settings, autocommit=True) as c:
        yield c


def company_watching(conn: psycopg.Connection[Any], *broadcasters: str) -> uuid.UUID:
    company = new_company(conn, "Agency")
    with db.tenant_transaction(conn, company):
        for b in broadcasters:
            conn.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                "VALUES (%s, %s, %s, %s)",
                (company, b, f"c{b}", f"Creator {b}"),
            )
    return company


def fresh_broadcaster() -> str:
    return str(uuid.uuid4().int % 10**12)


def rows(conn: psycopg.Connection[Any], company: uuid.UUID) -> list[dict[str, Any]]:
    with db.tenant_transaction(conn, company):
        return conn.execute("SELECT * FROM incidents ORDER BY number").fetchall()


def run(conn: psycopg.Connection[Any], rec: Recorder, raw: bytes) -> ingest.Outcome:
    return ingest.ingest(raw, conn, rec, rec)


def test_a_raid_of_5000_opens_one_incident_and_redelivery_opens_nothing(
    conn: psycopg.Connection[Any],
) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    other = company_watching(conn, b)
    rec = Recorder()
    raid = task("channel.raid", b, T0, event={"viewers": 5000})
    run(conn, rec, raid)
    (incident,) = rows(conn, a)
    assert (incident["rule"], incident["severity"], incident["status"]) == (
        "raid_incoming",
        "warning",
        "open",
    )
    assert "5,000 viewers" in incident["title"]
    assert incident["number"] == 1
    # the same delivery again (Twitch retries) and a replay of it under a new message id
    run(conn, rec, raid)
    run(conn, rec, task("channel.raid", b, T0, event={"viewers": 5000}))
    assert [r["id"] for r in rows(conn, a)] == [incident["id"]]
    opened = [i for i in rec.incidents(a) if i["status"] == "open"]
    assert len({i["id"] for i in opened}) == 1
    # the other company watches the same creator: its own incident, never A's
    (theirs,) = rows(conn, other)
    assert theirs["id"] != incident["id"]
    assert all(i["id"] != incident["id"] for i in rec.incidents(other))


def test_a_raid_below_the_threshold_opens_nothing(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    run(conn, Recorder(), task("channel.raid", b, T0, event={"viewers": 999}))
    assert rows(conn, a) == []


def test_follow_bots_after_a_raid_open_one_incident_that_names_the_raid(
    conn: psycopg.Connection[Any],
) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    raid = task("channel.raid", b, T0, event={"viewers": 300, "from_broadcaster_user_login": "x"})
    run(conn, rec, raid)
    follows = [task("channel.follow", b, T0 + timedelta(seconds=1 + i), seed=i) for i in range(60)]
    for raw in follows:
        run(conn, rec, raw)
    (incident,) = rows(conn, a)
    assert incident["rule"] == "hate_raid"
    assert incident["severity"] == "critical"
    assert "after a raid" in incident["title"]
    assert incident["details"]["raid_viewers"] == 300
    assert incident["details"]["peak_follows"] >= 30
    # every follow again: still one incident, nothing reopened
    for raw in follows:
        run(conn, rec, raw)
    assert len(rows(conn, a)) == 1
    with db.tenant_transaction(conn, a):
        linked = conn.execute(
            "SELECT count(*) AS n FROM incident_events WHERE incident_id = %s", (incident["id"],)
        ).fetchone()
    assert linked is not None and linked["n"] >= 30  # the raid and the follows past the floor


def test_a_raid_stored_after_the_spike_it_brought_is_named_in_it(
    conn: psycopg.Connection[Any],
) -> None:
    """Cloud Tasks does not keep order: the follows can be stored before the raid."""
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    for i in range(40):
        run(conn, rec, task("channel.follow", b, T0 + timedelta(seconds=2 + i), seed=i))
    (before,) = rows(conn, a)
    assert before["title"].startswith("Suspected follow bots: 30 follows")
    raid = task("channel.raid", b, T0, event={"viewers": 400, "from_broadcaster_user_name": "Zed"})
    run(conn, rec, raid)
    run(conn, rec, raid)
    (after,) = rows(conn, a)
    assert after["id"] == before["id"]
    assert after["title"] == (
        "Suspected hate raid: 40 follows in 60 s after a raid from Zed (400 viewers)"  # the peak
    )
    assert after["details"]["raid_viewers"] == 400
    assert rec.incidents(a)[-1]["title"] == after["title"]  # dashboards see the new title


def test_a_raid_a_moment_after_the_first_follows_still_brought_them(
    conn: psycopg.Connection[Any],
) -> None:
    """Follows carry followed_at to the second; the raid's message timestamp has microseconds,
    so the raid can look younger than follows it brought."""
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    raid = T0 + timedelta(milliseconds=800)
    run(conn, rec, task("channel.raid", b, raid, event={"viewers": 120}))
    for i in range(35):
        run(conn, rec, task("channel.follow", b, T0, seed=i))
    (incident,) = rows(conn, a)
    assert "after a raid" in incident["title"]


def test_an_everyday_follow_rate_opens_nothing(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    # 2 follows a minute for 40 minutes: far under the floor of 30 a minute
    for i in range(80):
        run(conn, rec, task("channel.follow", b, T0 + timedelta(seconds=30 * i), seed=i))
    assert rows(conn, a) == []


def test_a_stream_that_drops_and_comes_back_within_10_minutes(
    conn: psycopg.Connection[Any],
) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    online = task("stream.online", b, T0, event={"id": "s1"})
    offline = task("stream.offline", b, T0 + timedelta(hours=2))
    back = task("stream.online", b, T0 + timedelta(hours=2, minutes=3), event={"id": "s2"})
    for raw in (online, offline, back):
        run(conn, rec, raw)
    (incident,) = rows(conn, a)
    assert incident["rule"] == "stream_dropped"
    assert incident["details"]["gap_seconds"] == 180
    assert "3 min" in incident["title"]
    for raw in (online, offline, back):
        run(conn, rec, raw)
    # a replay of the comeback under a new message id is the same stream: stored once
    run(conn, rec, task("stream.online", b, T0 + timedelta(hours=2, minutes=3), event={"id": "s2"}))
    assert len(rows(conn, a)) == 1


def test_a_stream_back_after_the_window_is_a_new_stream(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    run(conn, rec, task("stream.offline", b, T0))
    run(conn, rec, task("stream.online", b, T0 + timedelta(minutes=11), event={"id": "s9"}))
    assert rows(conn, a) == []


def sample(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    at: datetime,
    viewers: int,
    live: bool = True,
) -> list[incidents.Change]:
    with db.tenant_transaction(conn, company):
        incidents.lock(conn, company)
        conn.execute(
            "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers) "
            "VALUES (%s, %s, %s, %s, %s)",
            (company, creator, at, live, viewers),
        )
        return incidents.on_viewer_sample(conn, company, creator, at=at, live=live, viewers=viewers)


def creator_of(conn: psycopg.Connection[Any], company: uuid.UUID) -> uuid.UUID:
    with db.tenant_transaction(conn, company):
        row = conn.execute("SELECT id FROM creators").fetchone()
    assert row is not None
    return row["id"]


def test_a_viewer_collapse_opens_one_incident_and_resolves_on_recovery(
    conn: psycopg.Connection[Any],
) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    creator = creator_of(conn, a)
    for minute, viewers in enumerate([4800, 5000, 4900]):
        assert sample(conn, a, creator, T0 + timedelta(minutes=minute), viewers) == []
    (change,) = sample(conn, a, creator, T0 + timedelta(minutes=3), 1200)
    assert change.transition == "opened"
    assert change.incident.rule == "viewer_drop"
    assert "76%" in change.incident.title
    # still low: the same incident, nothing new
    assert sample(conn, a, creator, T0 + timedelta(minutes=4), 1100) == []
    assert sample(conn, a, creator, T0 + timedelta(minutes=5), 1500) == []
    (resolved,) = sample(conn, a, creator, T0 + timedelta(minutes=6), 4100)
    assert resolved.transition == "resolved"
    assert resolved.incident.resolved_by == incidents.AUTO
    assert len(rows(conn, a)) == 1


def test_offline_right_after_a_collapse_is_a_dropped_stream(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    creator = creator_of(conn, a)
    rec = Recorder()
    run(conn, rec, task("stream.online", b, T0 - timedelta(hours=1), event={"id": "c1"}))
    sample(conn, a, creator, T0, 3000)
    sample(conn, a, creator, T0 + timedelta(minutes=1), 200)
    run(conn, rec, task("stream.offline", b, T0 + timedelta(minutes=2)))
    by_rule = {r["rule"]: r for r in rows(conn, a)}
    assert set(by_rule) == {"viewer_drop", "stream_dropped"}
    assert by_rule["viewer_drop"]["status"] == "resolved"
    assert by_rule["stream_dropped"]["status"] == "open"
    # back within the window: the drop resolves itself, and no second one opens
    run(conn, rec, task("stream.online", b, T0 + timedelta(minutes=5), event={"id": "c2"}))
    after = {r["rule"]: r for r in rows(conn, a)}
    assert len(rows(conn, a)) == 2
    assert after["stream_dropped"]["status"] == "resolved"
    assert after["stream_dropped"]["resolution"] == "the stream is back"


def test_thresholds_are_per_company(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    strict = company_watching(conn, b)
    actor = audit.Actor(subject="admin@test")

    _with_async(
        conn,
        lambda aconn: incidents.set_rule(
            aconn,
            strict,
            "raid_incoming",
            actor,
            enabled=True,
            severity="critical",
            params={"min_viewers": 10_000},
        ),
    )
    run(conn, Recorder(), task("channel.raid", b, T0, event={"viewers": 5000}))
    assert [r["rule"] for r in rows(conn, a)] == ["raid_incoming"]
    assert rows(conn, strict) == []
    with db.tenant_transaction(conn, strict):
        logged = conn.execute(
            "SELECT action, target_id FROM audit_logs WHERE action = 'incident_rule.updated'"
        ).fetchall()
    assert logged == [{"action": "incident_rule.updated", "target_id": "raid_incoming"}]


_CFG: list[settings.DatabaseSettings] = []


@pytest.fixture(autouse=True)
def _database(db_settings: settings.DatabaseSettings) -> Iterator[None]:
    _CFG.append(db_settings)
    yield
    _CFG.clear()


def _with_async(_conn: psycopg.Connection[Any], work: Any) -> Any:
    """Run one of the asyncio use cases (realtime's side) on its own connection."""

    async def go() -> Any:
        async with await db.connect_async(_CFG[0], autocommit=True) as aconn:
            return await work(aconn)

    return asyncio.run(go())


def test_rule_changes_are_validated(conn: psycopg.Connection[Any]) -> None:
    a = company_watching(conn)
    actor = audit.Actor(subject="admin@test")

    def attempt(rule: str, **kw: Any) -> Any:
        args = {"enabled": True, "severity": "warning", "params": {}} | kw
        return _with_async(conn, lambda aconn: incidents.set_rule(aconn, a, rule, actor, **args))

    with pytest.raises(NotFoundError):
        attempt("no_such_rule")
    with pytest.raises(InvalidError, match="between 1 and"):
        attempt("raid_incoming", params={"min_viewers": 0})
    with pytest.raises(InvalidError, match="no parameter"):
        attempt("raid_incoming", params={"viewers": 5})
    with pytest.raises(InvalidError, match="severity"):
        attempt("raid_incoming", severity="urgent")
    with pytest.raises(InvalidError, match="whole number"):
        attempt("raid_incoming", params={"min_viewers": 10.5})
    described = attempt("gift_bomb", params={"min_gifts": 20.0})
    assert described["params"] == {"min_gifts": 20}
    assert described["defaults"]["params"] == {"min_gifts": 50}


def add_channel(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    *,
    min_severity: str = "warning",
    quiet: tuple[str, str] | None = None,
) -> uuid.UUID:
    with db.tenant_transaction(conn, company):
        row = conn.execute(
            "INSERT INTO notification_channels (company_id, kind, name, sealed_url, wrapped_key, "
            "key_id, url_hint, min_severity, quiet_start, quiet_end) "
            "VALUES (%s, 'discord', 'ops', '\\x00', '\\x00', 'k', 'https://discord.com/…/abcd', "
            "%s, %s, %s) RETURNING id",
            (company, min_severity, *(quiet or (None, None))),
        ).fetchone()
    assert row is not None
    return row["id"]


def test_each_transition_plans_one_delivery_per_channel(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    loud = add_channel(conn, a, min_severity="warning")
    add_channel(conn, a, min_severity="critical")  # a warning is below this one
    always_quiet = add_channel(conn, a, quiet=("00:00", "23:59:59"))
    rec = Recorder()
    raid = task("channel.raid", b, T0, event={"viewers": 5000})
    run(conn, rec, raid)
    run(conn, rec, raid)
    ((company, ids),) = rec.dispatched
    assert company == str(a)
    with db.tenant_transaction(conn, a):
        planned = conn.execute(
            "SELECT channel_id, transition, status, reason FROM notification_deliveries "
            "ORDER BY status"
        ).fetchall()
    assert planned == [
        {"channel_id": loud, "transition": "opened", "status": "pending", "reason": None},
        {
            "channel_id": always_quiet,
            "transition": "opened",
            "status": "skipped",
            "reason": "quiet hours",
        },
    ]
    assert len(ids) == 1
    (incident,) = rows(conn, a)
    actor = audit.Actor(subject="operator@test")
    ack = _with_async(conn, lambda c: incidents.acknowledge(c, a, incident["id"], actor))
    assert ack.transition == "acknowledged" and len(ack.deliveries) == 1
    with pytest.raises(ConflictError):
        _with_async(conn, lambda c: incidents.acknowledge(c, a, incident["id"], actor))
    done = _with_async(conn, lambda c: incidents.resolve(c, a, incident["id"], actor, "handled"))
    assert done.incident.status == "resolved" and done.incident.resolved_by == "operator@test"
    with pytest.raises(ConflictError):
        _with_async(conn, lambda c: incidents.resolve(c, a, incident["id"], actor))
    with db.tenant_transaction(conn, a):
        trail = [
            r["action"]
            for r in conn.execute(
                "SELECT action FROM audit_logs WHERE target_type = 'incident' ORDER BY id"
            ).fetchall()
        ]
    assert trail == ["incident.opened", "incident.acknowledged", "incident.resolved"]


def test_another_company_cannot_touch_an_incident(conn: psycopg.Connection[Any]) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    stranger = company_watching(conn)
    run(conn, Recorder(), task("channel.raid", b, T0, event={"viewers": 5000}))
    (incident,) = rows(conn, a)
    actor = audit.Actor(subject="intruder@test")
    for work in (
        lambda c: incidents.get_incident(c, stranger, incident["id"]),
        lambda c: incidents.acknowledge(c, stranger, incident["id"], actor),
        lambda c: incidents.resolve(c, stranger, incident["id"], actor),
        lambda c: incidents.add_note(c, stranger, incident["id"], actor, "mine now"),
    ):
        with pytest.raises(NotFoundError):
            _with_async(conn, work)
    assert _with_async(conn, lambda c: incidents.list_incidents(c, stranger)) == []
    assert rows(conn, a)[0]["status"] == "open"


def test_spikes_resolve_after_a_quiet_period_and_lost_access_when_restored(
    conn: psycopg.Connection[Any],
) -> None:
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    rec = Recorder()
    for i in range(12):
        run(conn, rec, task("channel.ban", b, T0 + timedelta(seconds=i), seed=i))
    run(conn, rec, task("user.authorization.revoke", b, T0))
    by_rule = {r["rule"]: r for r in rows(conn, a)}
    assert set(by_rule) == {"hate_raid", "authorization_lost"}
    assert by_rule["hate_raid"]["details"]["kind"] == "bans"

    def sweep(now: datetime) -> list[incidents.Change]:
        with db.tenant_transaction(conn, a):
            return incidents.sweep(conn, a, now)

    assert sweep(T0 + timedelta(minutes=5)) == []
    (quiet,) = sweep(T0 + timedelta(minutes=11))
    assert quiet.incident.rule == "hate_raid" and quiet.transition == "resolved"
    with db.tenant_transaction(conn, a):
        conn.execute("UPDATE creators SET authorization_revoked_at = NULL")
    (restored,) = sweep(T0 + timedelta(minutes=12))
    assert restored.incident.rule == "authorization_lost"
    assert restored.incident.resolution == "access restored"


@pytest.mark.parametrize("round_", range(6))
def test_concurrent_redeliveries_open_one_incident(
    db_settings: settings.DatabaseSettings, conn: psycopg.Connection[Any], round_: int
) -> None:
    """Six persist workers store the same raid (Twitch's retries racing) and six replays of
    it: exactly one incident, one planned delivery."""
    b = fresh_broadcaster()
    a = company_watching(conn, b)
    add_channel(conn, a)
    same = task("channel.raid", b, T0, event={"viewers": 7000}, message_id=f"m-{round_}")
    replays = [task("channel.raid", b, T0, event={"viewers": 7000}) for _ in range(6)]
    rec = Recorder()
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def worker(raw: bytes) -> None:
        try:
            with db.connect(db_settings, autocommit=True) as own:
                barrier.wait(timeout=10)
                ingest.ingest(raw, own, rec, rec)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(raw,)) for raw in [same] * 6 + replays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(rows(conn, a)) == 1
    assert sum(len(ids) for _, ids in rec.dispatched) == 1


def test_quiet_hours_need_a_zone_the_database_knows(conn: psycopg.Connection[Any]) -> None:
    """Planning deliveries converts the time into each channel's zone inside persist's
    transaction; a zone PostgreSQL does not know is refused when the channel is saved."""
    from controlroom.usecases import notifications

    async def check(aconn: Any, zone: str) -> None:
        async with aconn.transaction():
            await notifications._zone_known(aconn, zone)
            await aconn.execute("SELECT 1")  # the transaction is still usable

    _with_async(conn, lambda c: check(c, "Europe/Berlin"))
    with pytest.raises(InvalidError, match="not known to the database"):
        _with_async(conn, lambda c: check(c, "Mars/Olympus_Mons"))
