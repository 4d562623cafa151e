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

from controlroom.core.events import COLUMN_TYPES, SUMMARY_COLUMNS, compact
from controlroom.core.tenants import tenant_id


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


def published(event: NewEvent, seq: int) -> dict[str, Any]:
    """The stored event as persist publishes it to dashboards (the compact shape)."""
    return compact(
        {
            "seq": seq,
            "type": event.type,
            "version": event.version,
            "topic": event.topic,
            "creator_id": event.creator_id,
            "broadcaster_user_id": event.broadcaster_user_id,
            "occurred_at": event.occurred_at,
            **event.summary,
        }
    )


@dataclass(frozen=True)
class Appended:
    seq: int
    created: bool


COLUMNS = (
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

# Built once from the constant column list above; values always travel as parameters.
# The counter moves in the same statement as the insert: one round trip fewer per batch.
_INSERT = (  # noqa: S608
    "WITH inserted AS (INSERT INTO events (company_id, seq, {cols}, payload) "
    "SELECT %s, %s + n, {cols}, payload::jsonb FROM unnest({arrays}, %s::text[]) "
    "WITH ORDINALITY AS u({cols}, payload, n) RETURNING 1) "
    "UPDATE event_sequences SET last_seq = %s WHERE company_id = %s"
).format(
    cols=", ".join(COLUMNS),
    arrays=", ".join(f"%s::{COLUMN_TYPES.get(c, 'text')}[]" for c in COLUMNS),
)


_LOCK_COUNTER = (
    "INSERT INTO event_sequences (company_id) VALUES (%s) "
    "ON CONFLICT (company_id) DO UPDATE SET last_seq = event_sequences.last_seq "
    "RETURNING last_seq"
)

# Per key, two probes of the two unique indexes. An OR of both, or a plain join, lets the
# planner scan the whole company when its statistics are young; LATERAL keeps it per key.
_EXISTING = (
    "SELECT e.twitch_message_id, e.dedup_key, e.seq "
    "FROM unnest(%s::text[], %s::text[]) AS k(message_id, dedup_key) "
    "CROSS JOIN LATERAL ("
    " (SELECT twitch_message_id, dedup_key, seq FROM events"
    "  WHERE company_id = %s AND twitch_message_id = k.message_id)"
    " UNION ALL"
    " (SELECT twitch_message_id, dedup_key, seq FROM events"
    "  WHERE company_id = %s AND dedup_key = k.dedup_key)"
    ") AS e"
)


def _value(event: NewEvent, column: str) -> Any:
    if column in SUMMARY_COLUMNS:
        return event.summary.get(column)
    if column == "dedup_key":
        return event.key()
    return getattr(event, column)


def column_arrays(events: Sequence[NewEvent]) -> list[list[Any]]:
    """One array per column of COLUMNS, then the payloads as JSON text: unnest's input."""
    arrays: list[list[Any]] = [[_value(e, c) for e in events] for c in COLUMNS]
    arrays.append([json.dumps(e.payload, separators=(",", ":")) for e in events])
    return arrays


def append(
    conn: psycopg.Connection[Any], company_id: uuid.UUID | str, events: Sequence[NewEvent]
) -> list[Appended]:
    """Store events for one company inside the caller's tenant transaction.

    Idempotent on the Twitch message id and on the dedup key: an event already stored
    (or repeated within the batch) comes back with its existing seq and created=False.
    The counter row is locked first, so concurrent writers of one company queue up and
    seq stays gap-free in commit order.
    """
    reserved = reserve(conn, company_id, events)
    insert(conn, company_id, reserved)
    return reserved.results


@dataclass(frozen=True)
class Reserved:
    """The counter row held: each event's seq (existing or new) and the events to insert."""

    results: list[Appended]
    fresh: list[NewEvent]
    last_seq: int


def reserve(
    conn: psycopg.Connection[Any], company_id: uuid.UUID | str, events: Sequence[NewEvent]
) -> Reserved:
    """The first half of `append`: lock the counter row, find what is already stored, and
    number the rest. `insert` stores them; in between the caller may queue more statements
    in a pipeline, so that the insert costs no round trip of its own."""
    tenant = tenant_id(company_id)
    unknown = {k for e in events for k in e.summary} - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary columns: {sorted(unknown)}")
    # Lock, then look up, in one round trip: the server still runs them in order, and the
    # lookup takes its snapshot only once the lock is held, so it sees every committed
    # event of the writer we waited for.
    with conn.pipeline():
        lock = conn.cursor(row_factory=tuple_row)
        lock.execute(_LOCK_COUNTER, (tenant,))
        lookup = conn.cursor(row_factory=tuple_row)
        if events:
            lookup.execute(
                _EXISTING,
                ([e.twitch_message_id for e in events], [e.key() for e in events], tenant, tenant),
            )
    row = lock.fetchone()
    assert row is not None
    last_seq = int(row[0])
    if not events:
        return Reserved([], [], last_seq)
    existing: dict[str, int] = {}
    for message_id, dedup_key, stored_seq in lookup:
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
    return Reserved(results, fresh, last_seq)


def insert(conn: psycopg.Connection[Any], company_id: uuid.UUID | str, reserved: Reserved) -> None:
    """The second half of `append`: insert the reserved events and move the counter (in the
    same transaction as `reserve`, the counter row still held)."""
    if not reserved.fresh:
        return
    tenant = tenant_id(company_id)
    last_seq, fresh = reserved.last_seq, reserved.fresh
    conn.execute(_INSERT, [tenant, last_seq, *column_arrays(fresh), last_seq + len(fresh), tenant])
