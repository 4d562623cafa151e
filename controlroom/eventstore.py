"""Appending events to a company's history with gap-free seq numbers, exactly once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from controlroom.db import tenant_id

# The normalized summary columns of `events`, in table order; every one is optional.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "actor_user_id",
    "actor_login",
    "actor_name",
    "target_user_id",
    "target_login",
    "target_name",
    "amount",
    "tier",
    "title",
    "category_name",
    "duration_seconds",
    "message_text",
    "outcome",
)
_SUMMARY_TYPES = {
    "amount": "bigint",
    "duration_seconds": "integer",
}


@dataclass(frozen=True)
class NewEvent:
    """One event as it will be stored for one company."""

    twitch_message_id: str
    type: str
    version: str
    topic: str
    occurred_at: datetime
    received_at: datetime
    broadcaster_user_id: str
    payload: Mapping[str, Any]
    creator_id: uuid.UUID | None = None
    dedup_key: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return self.dedup_key or self.twitch_message_id


@dataclass(frozen=True)
class Appended:
    seq: int
    created: bool


_COLUMNS = (
    "creator_id",
    "twitch_message_id",
    "dedup_key",
    "type",
    "version",
    "topic",
    "occurred_at",
    "received_at",
    "broadcaster_user_id",
    *SUMMARY_COLUMNS,
)
_TYPES = {
    "creator_id": "uuid",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    **_SUMMARY_TYPES,
}

# Built once from the constant column list above; values always travel as parameters.
_INSERT = (  # noqa: S608
    "INSERT INTO events (company_id, seq, {cols}, payload) "
    "SELECT %s, %s + n, {cols}, payload::jsonb FROM unnest({arrays}, %s::text[]) "
    "WITH ORDINALITY AS u({cols}, payload, n)"
).format(
    cols=", ".join(_COLUMNS),
    arrays=", ".join(f"%s::{_TYPES.get(c, 'text')}[]" for c in _COLUMNS),
)


def _value(event: NewEvent, column: str) -> Any:
    if column in SUMMARY_COLUMNS:
        return event.summary.get(column)
    if column == "dedup_key":
        return event.key()
    return getattr(event, column)


def append(
    conn: psycopg.Connection[Any], company_id: uuid.UUID | str, events: Sequence[NewEvent]
) -> list[Appended]:
    """Store events for one company inside the caller's tenant transaction.

    Idempotent on the Twitch message id and on the dedup key: an event already stored
    (or repeated within the batch) comes back with its existing seq and created=False.
    The counter row is locked first, so concurrent writers of one company queue up and
    seq stays gap-free in commit order.
    """
    tenant = tenant_id(company_id)
    unknown = {k for e in events for k in e.summary} - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary columns: {sorted(unknown)}")
    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute(
        "INSERT INTO event_sequences (company_id) VALUES (%s) "
        "ON CONFLICT (company_id) DO UPDATE SET last_seq = event_sequences.last_seq "
        "RETURNING last_seq",
        (tenant,),
    ).fetchone()
    assert row is not None
    last_seq = int(row[0])
    if not events:
        return []

    existing: dict[str, int] = {}
    for message_id, dedup_key, stored_seq in cur.execute(
        "SELECT twitch_message_id, dedup_key, seq FROM events "
        "WHERE company_id = %s AND (twitch_message_id = ANY(%s) OR dedup_key = ANY(%s))",
        (tenant, [e.twitch_message_id for e in events], [e.key() for e in events]),
    ):
        existing[message_id] = stored_seq
        existing[dedup_key] = stored_seq

    results: list[Appended] = []
    fresh: list[NewEvent] = []
    for event in events:
        seq = existing.get(event.twitch_message_id) or existing.get(event.key())
        if seq is not None:
            results.append(Appended(seq, created=False))
            continue
        seq = last_seq + len(fresh) + 1
        existing[event.twitch_message_id] = seq
        existing[event.key()] = seq
        fresh.append(event)
        results.append(Appended(seq, created=True))

    if fresh:
        params: list[Any] = [tenant, last_seq]
        params.extend([_value(e, c) for e in fresh] for c in _COLUMNS)
        params.append([json.dumps(e.payload, separators=(",", ":")) for e in fresh])
        cur.execute(_INSERT, params)
        cur.execute(
            "UPDATE event_sequences SET last_seq = %s WHERE company_id = %s",
            (last_seq + len(fresh), tenant),
        )
    return results
