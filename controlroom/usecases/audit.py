"""The tamper-evident audit trail: appending rows and verifying a company's hash chain.

The chain itself (ids, previous hash, row hash) is computed by the database trigger in
migrations/0002, so no writer can get it wrong; this module only appends and asks.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core.tenants import tenant_id


@dataclass(frozen=True)
class Actor:
    """Who did it: the identity provider's subject, and our user id when there is one."""

    subject: str
    user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_bad_id: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.first_bad_id is None


def _jsonb(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


_INSERT = (
    "INSERT INTO audit_logs (company_id, actor_user_id, actor_subject, action, "
    "target_type, target_id, before, after, id, prev_hash, hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, 0, '', '') RETURNING id"
)


def _params(
    company_id: uuid.UUID | str,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    target_id: str | None,
    before: Any,
    after: Any,
) -> tuple[Any, ...]:
    return (
        tenant_id(company_id),
        actor.user_id,
        actor.subject,
        action,
        target_type,
        target_id,
        _jsonb(before),
        _jsonb(after),
    )


def record(
    conn: psycopg.Connection[Any],
    company_id: uuid.UUID | str,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    target_id: str | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one audit row inside the caller's tenant transaction; returns its id."""
    params = _params(
        company_id,
        actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )
    row = conn.cursor(row_factory=tuple_row).execute(_INSERT, params).fetchone()
    assert row is not None
    return int(row[0])


async def record_async(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID | str,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    target_id: str | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """The asyncio twin of record, for the REST API's writes."""
    params = _params(
        company_id,
        actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )
    cur = await conn.cursor(row_factory=tuple_row).execute(_INSERT, params)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


_VERIFY = "SELECT checked, first_bad_id, reason FROM audit_verify_chain()"


def verify_chain(conn: psycopg.Connection[Any]) -> ChainReport:
    """Check the current tenant's chain from its first row to its last."""
    row = conn.cursor(row_factory=tuple_row).execute(_VERIFY).fetchone()
    assert row is not None
    return ChainReport(checked=int(row[0]), first_bad_id=row[1], reason=row[2])


async def verify_chain_async(conn: psycopg.AsyncConnection[Any]) -> ChainReport:
    cur = await conn.cursor(row_factory=tuple_row).execute(_VERIFY)
    row = await cur.fetchone()
    assert row is not None
    return ChainReport(checked=int(row[0]), first_bad_id=row[1], reason=row[2])


async def list_entries(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, before_id: int | None, limit: int
) -> dict[str, Any]:
    """The company's audit trail, newest first, keyset by id."""
    limit = max(1, min(limit, 200))
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            "SELECT id, occurred_at, actor_user_id, actor_subject, action, target_type, "
            "target_id, before, after, encode(hash, 'hex') AS hash FROM audit_logs "
            "WHERE company_id = %s AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
            (company, before_id, before_id, limit + 1),
        )
        rows = await cur.fetchall()
    items = [
        {**r, "actor_user_id": str(r["actor_user_id"]) if r["actor_user_id"] else None}
        for r in rows[:limit]
    ]
    return {"items": items, "next_before_id": items[-1]["id"] if len(rows) > limit else None}
