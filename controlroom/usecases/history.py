"""What a dashboard reads from PostgreSQL: stream head, missed events, creator states.

Every function runs its own tenant transaction on an autocommit asyncio connection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core.events import (
    COMPACT_COLUMNS,
    CREATOR_STATE_COLUMNS,
    compact,
    creator_state,
)
from controlroom.core.roles import Caller
from controlroom.usecases import audit


@dataclass(frozen=True)
class Head:
    """Where a company's stream stands: its epoch, its last seq, its oldest stored seq."""

    epoch: str
    last_seq: int
    oldest_seq: int | None


async def head(conn: psycopg.AsyncConnection[Any], company: uuid.UUID) -> Head:
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            "INSERT INTO event_sequences (company_id) VALUES (%s) "
            "ON CONFLICT (company_id) DO NOTHING",
            (company,),
        )
        cur = await conn.execute(
            "SELECT epoch, last_seq, (SELECT min(seq) FROM events) AS oldest FROM event_sequences",
        )
        row = await cur.fetchone()
    assert row is not None
    return Head(str(row["epoch"]), int(row["last_seq"]), row["oldest"])


async def events_between(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, after: int, upto: int, limit: int
) -> list[dict[str, Any]]:
    """Compact events with after < seq <= upto, in seq order, at most `limit`."""
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            f"SELECT {COMPACT_COLUMNS} FROM events "  # noqa: S608 - a fixed column list
            "WHERE company_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
            (company, after, upto, limit),
        )
        rows = await cur.fetchall()
    return [compact(r) for r in rows]


async def creator_states(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID
) -> list[dict[str, Any]]:
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            f"SELECT {CREATOR_STATE_COLUMNS} FROM creators ORDER BY display_name"  # noqa: S608
        )
        rows = await cur.fetchall()
    return [creator_state(r) for r in rows]


async def owns_creator(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, creator: str
) -> bool:
    try:
        creator_id = uuid.UUID(str(creator))
    except ValueError:
        return False
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute("SELECT 1 FROM creators WHERE id = %s", (creator_id,))
        return await cur.fetchone() is not None


MAX_PAGE = 200


async def list_events(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    *,
    creator_id: uuid.UUID | None = None,
    types: list[str] | None = None,
    topic: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of history, newest first (or oldest first with `after_seq`), keyset by seq.

    Every filter is a bind parameter; the company's rows only, through RLS and the index
    on (company_id, seq).
    """
    limit = max(1, min(limit, MAX_PAGE))
    forward = after_seq is not None
    clauses: list[str] = ["company_id = %s"]
    params: list[Any] = [company]
    for clause, value in (
        ("creator_id = %s", creator_id),
        ("type = ANY(%s)", types or None),
        ("topic = %s", topic),
        ("occurred_at >= %s", since),
        ("occurred_at < %s", until),
        ("seq < %s", before_seq),
        ("seq > %s", after_seq),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    order = "ASC" if forward else "DESC"
    where = " AND ".join(clauses)
    sql = f"SELECT {COMPACT_COLUMNS} FROM events WHERE {where} ORDER BY seq {order} LIMIT %s"  # noqa: S608 - fixed clauses
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(sql, [*params, limit + 1])
        rows = await cur.fetchall()
    more = len(rows) > limit
    items = [compact(r) for r in rows[:limit]]
    cursor = items[-1]["seq"] if more and items else None
    return {
        "items": items,
        "next_after_seq" if forward else "next_before_seq": cursor,
    }


async def acknowledge(
    conn: psycopg.AsyncConnection[Any], caller: Caller, seq: int, note: str
) -> bool:
    """Record that a member saw and handled an event (audited); False when there is no such
    event."""
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute("SELECT 1 FROM events WHERE seq = %s", (seq,))
        if await cur.fetchone() is None:
            return False
        cur = await conn.execute(
            "SELECT note, acked_at FROM event_acks WHERE seq = %s AND user_id = %s",
            (seq, caller.user_id),
        )
        before = await cur.fetchone()
        await conn.execute(
            "INSERT INTO event_acks (company_id, seq, user_id, note) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (company_id, seq, user_id) "
            "DO UPDATE SET note = EXCLUDED.note, acked_at = now()",
            (caller.company, seq, caller.user_id, note),
        )
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="event.ack",
            target_type="event",
            target_id=str(seq),
            before=before,
            after={"note": note},
        )
    return True
