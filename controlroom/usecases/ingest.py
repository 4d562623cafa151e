"""Persist's use case: store a delivery once for every company watching, then publish it."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from controlroom.adapters import eventstore
from controlroom.adapters.db import tenant_transaction
from controlroom.adapters.emitter import Publisher
from controlroom.core import eventsub
from controlroom.core.events import (
    CREATOR_STATE_COLUMNS,
    Normalized,
    creator_state,
    normalize_notification,
    normalize_revocation,
)
from controlroom.core.handoff import PersistTask
from controlroom.core.payloads import json_object
from controlroom.errors import HandoffError, NormalizationError, StoreUnavailableError
from controlroom.logs import fields
from controlroom.usecases import incidents

log = logging.getLogger(__name__)

AUTHORIZATION_REVOKE = "user.authorization.revoke"


@dataclass
class Outcome:
    stored: int = 0
    duplicates: int = 0
    dead_letter: str | None = None
    companies: set[uuid.UUID] = field(default_factory=set)
    incidents: list[tuple[uuid.UUID, incidents.Change]] = field(default_factory=list)


_APPLY_STATE = (
    """
UPDATE creators SET
    status = CASE WHEN %(status)s::text IS NOT NULL AND (state_at IS NULL OR state_at <= %(at)s)
                  THEN %(status)s ELSE status END,
    live_since = CASE WHEN %(status)s::text IS NOT NULL AND (state_at IS NULL OR state_at <= %(at)s)
                      THEN %(live_since)s ELSE live_since END,
    state_at = CASE WHEN %(status)s::text IS NOT NULL AND (state_at IS NULL OR state_at <= %(at)s)
                    THEN %(at)s ELSE state_at END,
    title = CASE WHEN %(details)s AND (details_at IS NULL OR details_at <= %(at)s)
                 THEN %(title)s ELSE title END,
    category_id = CASE WHEN %(details)s AND (details_at IS NULL OR details_at <= %(at)s)
                       THEN %(category_id)s ELSE category_id END,
    category_name = CASE WHEN %(details)s AND (details_at IS NULL OR details_at <= %(at)s)
                         THEN %(category_name)s ELSE category_name END,
    details_at = CASE WHEN %(details)s AND (details_at IS NULL OR details_at <= %(at)s)
                      THEN %(at)s ELSE details_at END,
    authorization_revoked_at = CASE WHEN %(revoked)s
                                    THEN coalesce(authorization_revoked_at, %(at)s)
                                    ELSE authorization_revoked_at END,
    last_event_at = greatest(last_event_at, %(at)s)
WHERE company_id = %(company)s AND id = %(creator)s
RETURNING """
    + CREATOR_STATE_COLUMNS
)


def _dead_letter(
    conn: psycopg.Connection[Any], task: PersistTask | None, raw: bytes, reason: str
) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO ingest_dead_letters (twitch_message_id, subscription_type, reason, "
            "raw_body, headers) VALUES (%s, %s, %s, %s, %s)",
            (
                task.message_id if task else None,
                task.subscription_type if task else None,
                reason[:500],
                task.body if task else raw,
                Jsonb(
                    {
                        "message_type": task.message_type,
                        "timestamp": task.timestamp,
                        "retry": task.retry,
                        "subscription_version": task.subscription_version,
                        "received_at": task.received_at,
                    }
                    if task
                    else {}
                ),
            ),
        )
    log.warning(
        "delivery dead-lettered",
        extra=fields(message_id=task.message_id if task else None, reason=reason),
    )


def _normalize(task: PersistTask) -> list[Normalized]:
    body = json_object(task.body, NormalizationError)
    if task.message_type == eventsub.REVOCATION:
        return [normalize_revocation(body, task.occurred())]
    if task.message_type != eventsub.NOTIFICATION:
        raise NormalizationError(f"message type {task.message_type!r} is not stored")
    return normalize_notification(body, task.occurred())


def _record_revocation(conn: psycopg.Connection[Any], event: Normalized, task: PersistTask) -> None:
    sub = event.event
    condition = sub.get("condition") if isinstance(sub.get("condition"), dict) else {}
    with conn.transaction():
        conn.execute(
            "SELECT record_subscription_status(%s, %s, %s, %s, %s, %s, %s)",
            (
                event.broadcaster_user_id,
                str(sub.get("type") or "unknown"),
                str(sub.get("version") or "1"),
                Jsonb(condition),
                sub.get("id") if isinstance(sub.get("id"), str) else None,
                str(sub.get("status") or "revoked"),
                task.occurred(),
            ),
        )


def _record_grant_revoked(conn: psycopg.Connection[Any], event: Normalized) -> None:
    # platform level, for every company watching this broadcaster: a revocation newer than
    # the last grant shows the creator disconnected (a later consent clears it)
    with conn.transaction():
        conn.execute(
            "SELECT record_twitch_revocation(%s, %s)",
            (event.broadcaster_user_id, event.occurred_at),
        )


def _store_for(
    conn: psycopg.Connection[Any],
    *,
    company: uuid.UUID,
    creator: uuid.UUID,
    event: Normalized,
    message_id: str,
    task: PersistTask,
) -> tuple[
    eventstore.Appended, dict[str, Any] | None, dict[str, Any] | None, list[incidents.Change]
]:
    new = eventstore.NewEvent(
        twitch_message_id=message_id,
        type=event.type,
        version=event.version,
        topic=event.topic,
        occurred_at=event.occurred_at,
        received_at=task.received(),
        broadcaster_user_id=event.broadcaster_user_id,
        creator_id=creator,
        payload=event.event,
        dedup_key=event.dedup_key,
        summary=event.summary,
    )
    with tenant_transaction(conn, company):
        (result,) = eventstore.append(conn, company, [new])
        if not result.created:
            return result, None, None, []
        state = event.state or None
        row = (
            conn.cursor(row_factory=dict_row)
            .execute(
                _APPLY_STATE,
                {
                    "company": company,
                    "creator": creator,
                    "at": event.occurred_at,
                    "status": state.status if state else None,
                    "live_since": state.live_since if state else None,
                    "details": bool(state and state.details),
                    "title": state.title if state else None,
                    "category_id": state.category_id if state else None,
                    "category_name": state.category_name if state else None,
                    "revoked": bool(state and state.authorization_revoked),
                },
            )
            .fetchone()
        )
        # detection in the storing transaction: its keys commit with the event, or not at all
        changes = incidents.on_event(conn, company, creator, event, seq=result.seq, key=new.key())
    return (
        result,
        eventstore.published(new, result.seq),
        creator_state(row) if (row and state) else None,
        changes,
    )


def ingest(
    raw: bytes,
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    dispatcher: incidents.Dispatcher | None = None,
) -> Outcome:
    """Store one persist task. `conn` must be in autocommit mode (each step commits alone).

    Incidents the task opened or changed go to dashboards and, through `dispatcher`, to the
    company's notification channels once everything is committed."""
    outcome = Outcome()
    try:
        _ingest(raw, conn, publisher, outcome)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(type(exc).__name__) from exc
    for company, change in outcome.incidents:
        incidents.publish_changes(publisher, dispatcher, company, [change])
    return outcome


def _ingest(
    raw: bytes, conn: psycopg.Connection[Any], publisher: Publisher, outcome: Outcome
) -> Outcome:
    try:
        task = PersistTask.decode(raw)
    except HandoffError as exc:
        _dead_letter(conn, None, raw, str(exc))
        outcome.dead_letter = str(exc)
        return outcome
    try:
        normalized = _normalize(task)
    except NormalizationError as exc:
        _dead_letter(conn, task, raw, str(exc))
        outcome.dead_letter = str(exc)
        return outcome
    if task.message_type == eventsub.REVOCATION:
        _record_revocation(conn, normalized[0], task)
    for event in normalized:
        if event.type == AUTHORIZATION_REVOKE and event.broadcaster_user_id:
            _record_grant_revoked(conn, event)

    to_publish: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
    for index, event in enumerate(normalized):
        # items of a batched delivery share its message id; each needs its own
        message_id = task.message_id if len(normalized) == 1 else f"{task.message_id}#{index}"
        routes = (
            conn.cursor(row_factory=tuple_row)
            .execute(
                "SELECT company_id, creator_id FROM route_broadcaster(%s)",
                (event.broadcaster_user_id,),
            )
            .fetchall()
        )
        for company, creator in routes:
            result, published, state, changes = _store_for(
                conn,
                company=company,
                creator=creator,
                event=event,
                message_id=message_id,
                task=task,
            )
            outcome.companies.add(company)
            if not result.created:
                outcome.duplicates += 1
                continue
            outcome.stored += 1
            if published is not None:
                to_publish.append((company, "event", published))
            if state is not None:
                to_publish.append((company, "creator_state", state))
            outcome.incidents += [(company, change) for change in changes]

    for company, name, data in to_publish:
        try:
            publisher.publish(company, name, data)
        except Exception as exc:  # noqa: BLE001 - stored is what matters; dashboards catch up
            log.warning(
                "publish skipped: dashboards will catch up from PostgreSQL",
                extra=fields(
                    company_id=str(company), message_id=task.message_id, error=type(exc).__name__
                ),
            )
    log.info(
        "delivery stored",
        extra=fields(
            message_id=task.message_id,
            subscription_type=task.subscription_type,
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            companies=len(outcome.companies),
        ),
    )
    return outcome
