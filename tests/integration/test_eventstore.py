"""Seq allocation and idempotent appends, against the real PostgreSQL as the runtime role."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db, eventstore
from tests.integration.conftest import new_company
from tests.integration.tenant_data import sample_event


def seqs(conn: psycopg.Connection[Any], company: uuid.UUID) -> list[int]:
    with db.tenant_transaction(conn, company):
        return [r["seq"] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]


def test_concurrent_writers_get_gap_free_seq(db_settings: settings.DatabaseSettings) -> None:
    writers, per_writer = 8, 40
    with db.connect(db_settings) as conn:
        company = new_company(conn)
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(worker: int) -> None:
        try:
            with db.connect(db_settings) as conn:
                barrier.wait()
                for i in range(per_writer):
                    with db.tenant_transaction(conn, company):
                        batch = [
                            sample_event(f"w{worker}-{i}-{j}", "1", None) for j in range(1 + i % 3)
                        ]
                        eventstore.append(conn, company, batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    expected = writers * sum(1 + i % 3 for i in range(per_writer))
    with db.connect(db_settings) as conn:
        assert seqs(conn, company) == list(range(1, expected + 1))
        with db.tenant_transaction(conn, company):
            counter = conn.execute("SELECT last_seq FROM event_sequences").fetchone()
    assert counter == {"last_seq": expected}


def test_append_is_idempotent_on_message_id_and_dedup_key(
    app_conn: psycopg.Connection[Any],
) -> None:
    company = new_company(app_conn)
    online = sample_event("m1", "1", None, type="stream.online", dedup_key="stream.online:9001")
    with db.tenant_transaction(app_conn, company):
        first = eventstore.append(app_conn, company, [online, sample_event("m2", "1", None)])
    assert first == [eventstore.Appended(1, True), eventstore.Appended(2, True)]
    # the same message again, the same fact under a new message id, a repeat inside a batch
    again = sample_event("m9", "1", None, type="stream.online", dedup_key="stream.online:9001")
    with db.tenant_transaction(app_conn, company):
        second = eventstore.append(
            app_conn,
            company,
            [online, again, sample_event("m3", "1", None), sample_event("m3", "1", None)],
        )
    assert second == [
        eventstore.Appended(1, False),
        eventstore.Appended(1, False),
        eventstore.Appended(3, True),
        eventstore.Appended(3, False),
    ]
    assert seqs(app_conn, company) == [1, 2, 3]


def test_rolled_back_append_leaves_no_gap(app_conn: psycopg.Connection[Any]) -> None:
    company = new_company(app_conn)
    with pytest.raises(RuntimeError), db.tenant_transaction(app_conn, company):
        eventstore.append(app_conn, company, [sample_event("lost", "1", None)])
        raise RuntimeError("crash before commit")
    with db.tenant_transaction(app_conn, company):
        result = eventstore.append(app_conn, company, [sample_event("kept", "1", None)])
    assert result == [eventstore.Appended(1, True)]


def test_summary_columns_and_payload_are_stored(app_conn: psycopg.Connection[Any]) -> None:
    company = new_company(app_conn)
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    event = sample_event(
        "raid-1",
        "1",
        None,
        type="channel.raid",
        topic="audience",
        occurred_at=at,
        summary={"actor_login": "raider", "amount": 420, "duration_seconds": 30},
        payload={"event": {"viewers": 420, "nested": {"emoji": "🎉"}}},
    )
    with db.tenant_transaction(app_conn, company):
        eventstore.append(app_conn, company, [event])
        row = app_conn.execute("SELECT * FROM events").fetchone()
    assert row["actor_login"] == "raider"
    assert row["amount"] == 420
    assert row["duration_seconds"] == 30
    assert row["occurred_at"] == at
    assert row["payload"] == {"event": {"viewers": 420, "nested": {"emoji": "🎉"}}}
    assert row["dedup_key"] == "raid-1"
    assert row["received_at"] - row["occurred_at"] > timedelta(0)


def test_unknown_summary_column_is_refused(app_conn: psycopg.Connection[Any]) -> None:
    company = new_company(app_conn)
    bad = sample_event("x", "1", None, summary={"payload; DROP TABLE events": 1})
    with (
        pytest.raises(ValueError, match="unknown summary"),
        db.tenant_transaction(app_conn, company),
    ):
        eventstore.append(app_conn, company, [bad])


def test_async_tenant_transaction_scopes_reads(
    db_settings: settings.DatabaseSettings, app_conn: psycopg.Connection[Any]
) -> None:
    import asyncio

    company, other = new_company(app_conn), new_company(app_conn)
    with db.tenant_transaction(app_conn, company):
        eventstore.append(app_conn, company, [sample_event("async-1", "1", None)])

    async def read(tenant: uuid.UUID) -> list[int]:
        conn = await db.connect_async(db_settings)
        async with conn:
            async with db.tenant_transaction_async(conn, tenant):
                cur = await conn.execute("SELECT seq FROM events ORDER BY seq")
                rows = await cur.fetchall()
            # the setting was transaction-local: outside it nothing is visible
            cur = await conn.execute("SELECT count(*) AS n FROM events")
            assert (await cur.fetchone()) == {"n": 0}
            return [r["seq"] for r in rows]

    assert asyncio.run(read(company)) == [1]
    assert asyncio.run(read(other)) == []
