"""The ingestion pipeline on the real local stack: webhook -> Firestore + Cloud Tasks ->
persist -> PostgreSQL -> Redis -> a real Socket.IO client."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.cloud import firestore

from controlroom import settings
from controlroom.adapters import db
from controlroom.core import eventsub
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack, local
from tests.integration.conftest import new_company, services_stack, stack_env
from tests.integration.listener import Listener, wait_for
from tests.samples import load, message, sample_names


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "pipeline") as stack:
        yield stack


@pytest.fixture(scope="module")
def env(pipeline: LocalStack) -> dict[str, str]:
    return stack_env(pipeline)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


def watch(cfg: settings.DatabaseSettings, name: str, broadcasters: list[str]) -> uuid.UUID:
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        with db.tenant_transaction(conn, company):
            for b in broadcasters:
                conn.execute(
                    "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                    "VALUES (%s, %s, %s, %s)",
                    (company, b, f"creator_{b}", f"Creator {b}"),
                )
    return company


def stored(cfg: settings.DatabaseSettings, company: uuid.UUID) -> list[dict[str, Any]]:
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()


@pytest.fixture(scope="module")
def companies(cfg: settings.DatabaseSettings) -> dict[str, uuid.UUID]:
    return {
        "a": watch(cfg, "Agency A", ["1337", "1971641", "12826"]),
        "b": watch(cfg, "Agency B", ["1337"]),
        "c": watch(cfg, "Agency C", ["555000"]),
    }


@pytest.fixture(scope="module")
def listener(env: dict[str, str]) -> Iterator[Listener]:
    harness = Listener(env["REDIS_URL"])
    harness.start()
    yield harness
    harness.stop()


def send(env: dict[str, str], body: Any, **kw: Any) -> tuple[int, bytes, twitchsim.Delivery]:
    delivery = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"], **kw)
    status, answer = twitchsim.post(env["WEBHOOK_URL"], delivery)
    return status, answer, delivery


def test_every_reference_sample_is_stored_once_per_watching_company_and_published(
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    companies: dict[str, uuid.UUID],
    listener: Listener,
) -> None:
    a, b, c = companies["a"], companies["b"], companies["c"]
    names = sample_names()
    with listener.client(str(a)) as seen_a, listener.client(str(c)) as seen_c:
        for name in names:
            status, _, _ = send(env, load(name))
            assert status == 204, name
        assert wait_for(lambda: len(stored(cfg, a)) == len(names)), stored(cfg, a)
        assert wait_for(lambda: len([e for e in seen_a if e[0] == "event"]) == len(names))
    rows_a = stored(cfg, a)
    assert sorted(r["type"] for r in rows_a) == sorted(names)
    assert [r["seq"] for r in rows_a] == list(range(1, len(names) + 1))
    by_type = {r["type"]: r for r in rows_a}
    assert by_type["channel.raid"]["amount"] == 9001
    assert by_type["channel.raid"]["actor_login"] == "cool_user"
    assert by_type["channel.cheer"]["amount"] == 1000
    assert by_type["channel.ban"]["duration_seconds"] == 60
    assert by_type["channel.update"]["title"] == "Best Stream Ever"
    assert by_type["channel.hype_train.begin"]["level"] == 1
    assert by_type["channel.chat.message"]["message_text"] == "Hi chat"
    assert by_type["stream.online"]["payload"] == load("stream.online")["event"]
    # B watches only 1337: everything but the chat message (broadcaster 1971641)
    assert sorted(r["type"] for r in stored(cfg, b)) == sorted(
        n for n in names if n != "channel.chat.message"
    )
    assert stored(cfg, c) == []
    assert seen_c == []
    published = [data for name, data in seen_a if name == "event"]
    assert sorted(p["seq"] for p in published) == [r["seq"] for r in rows_a]
    assert {p["type"] for p in published} == set(names)
    raid = next(p for p in published if p["type"] == "channel.raid")
    assert raid["summary"]["amount"] == 9001
    # offline was sent now, online started in 2020: by event time the creator is offline.
    # Cloud Tasks keeps no order, so the online may be stored first (live, then offline);
    # once the offline is stored, the older online never flips it back
    states = [
        data["status"]
        for name, data in seen_a
        if name == "creator_state" and data["login"] == "creator_1337"
    ]
    assert states[-1] == "offline"
    assert "live" not in states[states.index("offline") :]


def test_creator_state_follows_event_time_not_arrival(
    env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Timely", ["8100"])
    creator = twitchsim.Broadcaster("8100", "timely")
    online = twitchsim.notification_body("stream.online", creator)
    offline = twitchsim.notification_body("stream.offline", creator)
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    online["event"]["started_at"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    send(env, online)
    # an offline that Twitch sent a minute before the online, arriving after it
    send(env, offline, timestamp=now - timedelta(minutes=1))
    assert wait_for(lambda: len(stored(cfg, company)) == 2)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        state = conn.execute("SELECT status, live_since FROM creators").fetchone()
    assert state["status"] == "live"


def test_the_same_delivery_five_times_is_stored_once(
    env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Dupes", ["8200"])
    body = twitchsim.notification_body("channel.cheer", twitchsim.Broadcaster("8200", "dupes"))
    first = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
    retries = [
        twitchsim.sign_delivery(
            first.body, env["EVENTSUB_SECRET"], message_id=first.message_id, retry=i
        )
        for i in range(1, 5)
    ]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        statuses = list(
            pool.map(lambda d: twitchsim.post(env["WEBHOOK_URL"], d)[0], [first, *retries])
        )
    assert statuses == [204] * 5
    assert wait_for(lambda: len(stored(cfg, company)) == 1)
    # and a later redelivery, after it was stored
    assert twitchsim.post(env["WEBHOOK_URL"], retries[0])[0] == 204
    assert not wait_for(lambda: len(stored(cfg, company)) > 1, timeout=1.5)


def test_forgeries_get_403_and_leave_no_trace(
    env: dict[str, str], cfg: settings.DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    company = watch(cfg, "Forged", ["8300"])
    body = twitchsim.notification_body("channel.follow", twitchsim.Broadcaster("8300", "forged"))
    secret = env["EVENTSUB_SECRET"]
    good = twitchsim.sign_delivery(body, secret)
    reserialized = json.dumps(json.loads(good.body), indent=1).encode()
    flipped = bytearray(good.body)
    flipped[10] ^= 0x01
    no_prefix = {
        **good.headers,
        eventsub.MESSAGE_SIGNATURE: good.headers[eventsub.MESSAGE_SIGNATURE][7:],
    }
    old = twitchsim.sign_delivery(body, secret, timestamp=datetime.now(UTC) - timedelta(minutes=11))
    attempts = [
        twitchsim.Delivery(good.message_id, good.headers, reserialized),
        twitchsim.Delivery(good.message_id, good.headers, bytes(flipped)),
        twitchsim.Delivery(good.message_id, no_prefix, good.body),
        old,
    ]
    for attempt in attempts:
        status, answer = twitchsim.post(env["WEBHOOK_URL"], attempt)
        assert status == 403
        assert json.loads(answer) == {"error": "forbidden"}
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", env["FIRESTORE_EMULATOR_HOST"])
    ledger = firestore.Client(project=local.PROJECT).collection("eventsub_deliveries")
    for attempt in attempts:
        assert not ledger.document(attempt.message_id).get().exists
    assert not wait_for(lambda: stored(cfg, company) != [], timeout=1.5)


def test_challenge_response_is_byte_exact(env: dict[str, str]) -> None:
    for name in ("webhook_callback_verification", "conduit_shard_webhook_callback_verification"):
        raw = message(name)
        status, answer, _delivery = send(env, raw, message_type=eventsub.VERIFICATION)
        assert status == 200
        assert answer == json.loads(raw)["challenge"].encode()


def test_bad_input_is_a_clear_4xx(env: dict[str, str]) -> None:
    headers = twitchsim.sign_delivery({"x": 1}, env["EVENTSUB_SECRET"]).headers
    for body, expected in ((b"{broken", 400), (b"[]", 400)):
        headers[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(
            env["EVENTSUB_SECRET"].encode(),
            headers[eventsub.MESSAGE_ID],
            headers[eventsub.MESSAGE_TIMESTAMP],
            body,
        )
        status, answer = twitchsim.post(env["WEBHOOK_URL"], twitchsim.Delivery("m", headers, body))
        assert status == expected
        assert b"Traceback" not in answer
    unknown = twitchsim.sign_delivery({"x": 1}, env["EVENTSUB_SECRET"], message_type="party")
    assert twitchsim.post(env["WEBHOOK_URL"], unknown)[0] == 400
    huge = twitchsim.Delivery("m", headers, b"x" * (eventsub.MAX_BODY_BYTES + 1))
    assert twitchsim.post(env["WEBHOOK_URL"], huge)[0] == 413


def test_revocation_updates_status_and_is_seen_by_the_watchers(
    env: dict[str, str], cfg: settings.DatabaseSettings, companies: dict[str, uuid.UUID]
) -> None:
    a = companies["a"]
    before = len(stored(cfg, a))
    status, _, _ = send(env, message("revocation"), message_type=eventsub.REVOCATION)
    assert status == 204
    assert wait_for(lambda: len(stored(cfg, a)) == before + 1)
    event = stored(cfg, a)[-1]
    assert (event["type"], event["outcome"], event["title"]) == (
        "subscription.revoked",
        "authorization_revoked",
        "channel.follow",
    )
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a):
        subs = conn.execute("SELECT type, status FROM eventsub_subscriptions").fetchall()
    assert {"type": "channel.follow", "status": "authorization_revoked"} in subs


def test_poison_delivery_goes_to_dead_letters(pipeline: LocalStack, env: dict[str, str]) -> None:
    # authentic, valid JSON, but no broadcaster anywhere: can never be routed
    body = {
        "subscription": {"type": "channel.follow", "version": "2", "condition": {}},
        "event": {"user_id": "1"},
    }
    status, _, delivery = send(env, body)
    assert status == 204
    assert pipeline.endpoints is not None

    def dead_lettered() -> bool:
        with psycopg.connect(
            pipeline.endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
        ) as conn:  # type: ignore[union-attr]
            row = conn.execute(
                "SELECT reason, raw_body FROM ingest_dead_letters WHERE twitch_message_id = %s",
                (delivery.message_id,),
            ).fetchone()
        return row is not None and bytes(row[1]) == delivery.body

    assert wait_for(dead_lettered)


def test_text_postgresql_refuses_is_stored_replaced_not_dead_lettered(
    pipeline: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Nul bytes", ["8600"])
    body = twitchsim.notification_body(
        "channel.chat.message", twitchsim.Broadcaster("8600", "nul_bytes")
    )
    body["event"]["message"]["text"] = "before\x00after"
    body["event"]["message"]["fragments"] = [{"type": "text", "text": "\x00", "x": ["\ud800"]}]
    body["event"]["badge\x00key"] = {"nested": {"deeper": "a\x00b"}}
    raw = json.dumps(body).encode()
    assert b"\\u0000" in raw and b"\\ud800" in raw  # the escapes PostgreSQL refuses
    status, _, delivery = send(env, raw)
    assert status == 204

    assert wait_for(lambda: len(stored(cfg, company)) == 1), pipeline.persist.process.log_tail(5)  # type: ignore[union-attr]
    (row,) = stored(cfg, company)
    assert row["twitch_message_id"] == delivery.message_id
    assert row["message_text"] == "before\ufffdafter"
    payload = row["payload"]
    assert payload["message"]["text"] == "before\ufffdafter"
    assert payload["message"]["fragments"] == [{"type": "text", "text": "\ufffd", "x": ["\ufffd"]}]
    assert payload["badge\ufffdkey"] == {"nested": {"deeper": "a\ufffdb"}}
    assert pipeline.endpoints is not None
    with psycopg.connect(pipeline.endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom") as conn:
        dead = conn.execute(
            "SELECT count(*) FROM ingest_dead_letters WHERE twitch_message_id = %s",
            (delivery.message_id,),
        ).fetchone()
    assert dead == (0,)


def test_unwatched_broadcaster_is_simply_acknowledged(
    env: dict[str, str], pipeline: LocalStack
) -> None:
    body = twitchsim.notification_body(
        "channel.follow", twitchsim.Broadcaster("99999999", "nobody_watches")
    )
    status, _, _ = send(env, body)
    assert status == 204
    assert pipeline.persist is not None
    assert wait_for(lambda: 'companies": 0' in pipeline.persist.process.log_tail(50))  # type: ignore[union-attr]


def test_trigger_and_simulate_commands(
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from controlroom.dev import cli

    company = watch(cfg, "Simulated", ["8400", "8401"])
    monkeypatch.setenv("WEBHOOK_URL", env["WEBHOOK_URL"])
    monkeypatch.setenv("EVENTSUB_SECRET", env["EVENTSUB_SECRET"])
    raid = ["trigger", "channel.raid", "--broadcaster", "8400", "--set", "viewers=5000"]
    assert cli.main([*raid, "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("HTTP 204") == 3
    assert cli.main(["trigger", "no.such.type", "--broadcaster", "8400"]) == 2
    assert cli.main([*raid, "--set", "novalue"]) == 2
    assert wait_for(lambda: [e["amount"] for e in stored(cfg, company)] == [5000], timeout=30)
    args = ["simulate", "--rate", "20", "--duration", "2", "--creators", "8400:sim_a,8401:sim_b"]
    assert cli.main([*args, "--duplicates", "0.5"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "refused 0" in summary
    sent = int(summary.split()[1])
    retries = int(summary.split("(")[1].split()[0])
    # every distinct delivery stored once, however many times it was sent
    expected = 1 + sent - retries
    assert wait_for(lambda: len(stored(cfg, company)) >= expected, timeout=30)
    assert not wait_for(lambda: len(stored(cfg, company)) > expected, timeout=1.0)


def test_authorization_revoke_marks_the_creator(
    env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Revoked", ["8500"])
    body = twitchsim.notification_body(
        "user.authorization.revoke", twitchsim.Broadcaster("8500", "gone")
    )
    assert send(env, body)[0] == 204

    def revoked() -> bool:
        with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
            row = conn.execute("SELECT authorization_revoked_at FROM creators").fetchone()
        return row["authorization_revoked_at"] is not None

    assert wait_for(revoked)
