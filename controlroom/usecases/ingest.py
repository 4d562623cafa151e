"""Persist's use case: store a delivery once for every company watching, then publish it."""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
# a group's gift bombs through detection at once (False: one event at a time, as before;
# bench persist measures both)
GROUP_GIFT_BOMBS = True


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


def _new_event(
    event: Normalized, creator: uuid.UUID, message_id: str, task: PersistTask
) -> eventstore.NewEvent:
    return eventstore.NewEvent(
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


def _state_params(
    company: uuid.UUID, creator: uuid.UUID, event: Normalized | None, at: datetime
) -> dict[str, Any]:
    state = (event.state or None) if event is not None else None
    return {
        "company": company,
        "creator": creator,
        "at": at,
        "status": state.status if state else None,
        "live_since": state.live_since if state else None,
        "details": bool(state and state.details),
        "title": state.title if state else None,
        "category_id": state.category_id if state else None,
        "category_name": state.category_name if state else None,
        "revoked": bool(state and state.authorization_revoked),
    }


@dataclass(frozen=True)
class _Item:
    """One event of one delivery, routed to one company's creator."""

    creator: uuid.UUID
    event: Normalized
    new: eventstore.NewEvent


@dataclass(frozen=True)
class _Stored:
    """What storing an item gave: its seq, what to publish, what detection changed."""

    result: eventstore.Appended
    published: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    changes: list[incidents.Change] = field(default_factory=list)


def _store_items(
    conn: psycopg.Connection[Any], company: uuid.UUID, items: Sequence[_Item]
) -> list[_Stored]:
    """Store items of one company in one tenant transaction (the caller's connection is
    idle, autocommit): the counter row locked once, one multi-row INSERT (the analytics
    trigger runs once over the rows it added), each fresh event's creator state applied and
    its rules run in seq order, then one commit. Pipelined: BEGIN, the tenant and the lock
    with the lookup go in one round trip, the insert, the state updates and the company's
    rules in a second, the commit in a third (detection adds its own only when a rule
    fires)."""
    with conn.pipeline(), tenant_transaction(conn, company):
        reserved = eventstore.reserve(conn, company, [item.new for item in items])
        appended = reserved.results
        fresh = [i for i, result in enumerate(appended) if result.created]
        eventstore.insert(conn, company, reserved)
        # Creator state in seq order: an event that changes a creator's state updates it on
        # its own (its row is published); the others only move last_event_at, one update
        # per creator with their latest time (greatest() is order-free).
        latest: dict[uuid.UUID, datetime] = {}
        stateful: list[tuple[int, psycopg.Cursor[dict[str, Any]]]] = []
        for i in fresh:
            item = items[i]
            if item.event.state:
                cur = conn.cursor(row_factory=dict_row)
                cur.execute(
                    _APPLY_STATE,
                    _state_params(company, item.creator, item.event, item.event.occurred_at),
                )
                stateful.append((i, cur))
            else:
                at = item.event.occurred_at
                latest[item.creator] = max(at, latest.get(item.creator, at))
        for creator, at in latest.items():
            conn.execute(_APPLY_STATE, _state_params(company, creator, None, at))
        # the company's rules once for the group (reading them sends what is queued)
        watched = any(items[i].event.type in incidents.WATCHED for i in fresh)
        config = incidents.rules(conn, company) if watched else None
        states: dict[int, dict[str, Any]] = {}
        for i, cur in stateful:
            row = cur.fetchone()
            if row is not None:
                states[i] = creator_state(row)
        stored = [_Stored(result) for result in appended]
        # a burst's gift bombs, all of the group's at once where the first of them is
        # (incidents open in seq order); the other events' rules one by one
        bombs = [
            i
            for i in fresh
            if GROUP_GIFT_BOMBS and config and incidents.is_gift_bomb(items[i].event, config)
        ]
        bomb_changes: dict[int, list[incidents.Change]] = {}
        for i in fresh:
            item, result = items[i], appended[i]
            # detection in the storing transaction: its keys commit with the event, or not
            # at all; each event's rules see the rows of its whole group (stored by now)
            if bombs and i == bombs[0]:
                assert config is not None
                gifts = [
                    incidents.Gift(
                        items[b].creator, appended[b].seq, items[b].new.key(), items[b].event
                    )
                    for b in bombs
                ]
                bomb_changes = dict(
                    zip(bombs, incidents.on_gift_bombs(conn, company, gifts, config), strict=True)
                )
            if i in bomb_changes:
                changes = bomb_changes[i]
            else:
                changes = incidents.on_event(
                    conn,
                    company,
                    item.creator,
                    item.event,
                    seq=result.seq,
                    key=item.new.key(),
                    config=config,
                )
            stored[i] = _Stored(
                result, eventstore.published(item.new, result.seq), states.get(i), changes
            )
    return stored


class GroupCommit:
    """Group commit of one process's concurrent deliveries for the same company.

    A request's events for a company join that company's queue. If no thread is storing for
    the company, the request's thread becomes the leader: it takes everything queued, stores
    it in one transaction on its own connection (`_store_items`), commits, wakes the
    requests of the group with their results, hands the lead to the first request that
    queued meanwhile, and then publishes the group's events. Groups of one company are
    stored one at a time and published in the order they were taken, so seq is gap-free,
    increases in commit order, and reaches Redis in seq order. Every request is answered
    only after the transaction holding its events committed.

    A group that fails for anything but the database being unreachable is split: each of
    its requests is stored again alone, so one bad request cannot fail the others. The
    database being unreachable (or the connection dropping, even during COMMIT) fails the
    whole group with 503: nothing was answered 2xx, and the retries deduplicate whatever
    the commit may have kept.
    """

    def __init__(self, max_group: int = 64) -> None:
        self.max_group = max_group
        self._lock = threading.Lock()
        self._companies: dict[uuid.UUID, _Queue] = {}

    def store(
        self,
        conn: psycopg.Connection[Any],
        company: uuid.UUID,
        items: Sequence[_Item],
        publisher: Publisher,
        message_id: str,
    ) -> list[_Stored]:
        member = _Member(list(items), publisher, message_id)
        with self._lock:
            queue = self._companies.get(company)
            if queue is None:
                queue = self._companies[company] = _Queue()
            queue.pending.append(member)
            if not queue.leading:
                queue.leading = True
                member.lead = True
        while True:
            if not member.lead:
                member.wake.wait()
                member.wake.clear()
            if member.done:
                break
            if member.lead:
                self._lead(conn, company, queue, member)
                break
        if member.error is not None:
            raise member.error
        assert member.stored is not None
        return member.stored

    def _lead(
        self, conn: psycopg.Connection[Any], company: uuid.UUID, queue: _Queue, me: _Member
    ) -> None:
        # (ticket, the members the batch committed): each batch taken gets the next turn to
        # publish, even one that committed nothing, so later batches never wait for it
        batches: list[tuple[int, list[_Member]]] = []
        taken: list[_Member] = []
        try:
            while not me.done:
                with self._lock:
                    take = 1 if queue.pending[0].solo else min(self.max_group, len(queue.pending))
                    batch = [queue.pending.popleft() for _ in range(take)]
                    ticket = queue.tickets
                    queue.tickets += 1
                batches.append((ticket, []))
                taken += batch
                batches[-1] = (ticket, self._run(conn, company, queue, batch))
        finally:
            with self._lock:
                for member in taken:
                    # only if storing itself broke: nobody else will answer these
                    if not member.done and member not in queue.pending:
                        member.finish(error=StoreUnavailableError("group commit interrupted"))
                if queue.pending:
                    successor = queue.pending[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    queue.leading = False
            for ticket, committed in batches:
                self._publish_in_turn(queue, ticket, company, committed)

    def _run(
        self,
        conn: psycopg.Connection[Any],
        company: uuid.UUID,
        queue: _Queue,
        batch: list[_Member],
    ) -> list[_Member]:
        """Store one batch: each member finishes, or is queued again to be stored alone.
        Returns the members it committed."""
        items = [item for member in batch for item in member.items]
        try:
            stored = _store_items(conn, company, items)
        except psycopg.OperationalError as exc:
            for member in batch:
                member.finish(error=StoreUnavailableError(type(exc).__name__))
            return []
        except Exception as exc:  # noqa: BLE001 - handed to the request it belongs to
            if len(batch) == 1:
                batch[0].finish(error=exc)
                return []
            log.warning(
                "group commit failed: storing its deliveries one by one",
                extra=fields(company_id=str(company), group=len(batch), error=type(exc).__name__),
            )
            with self._lock:
                for member in reversed(batch):
                    member.solo = True
                    queue.pending.appendleft(member)
            return []
        offset = 0
        for member in batch:
            member.finish(stored=stored[offset : offset + len(member.items)])
            offset += len(member.items)
        return batch

    def _publish_in_turn(
        self, queue: _Queue, ticket: int, company: uuid.UUID, members: list[_Member]
    ) -> None:
        with queue.turn_changed:
            while queue.turn != ticket:
                queue.turn_changed.wait()
        try:
            _publish_group(company, members)
        finally:
            with queue.turn_changed:
                queue.turn += 1
                queue.turn_changed.notify_all()


@dataclass(eq=False)
class _Member:
    """One request's events for one company, waiting in the company's queue."""

    items: list[_Item]
    publisher: Publisher
    message_id: str
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    solo: bool = False
    done: bool = False
    stored: list[_Stored] | None = None
    error: BaseException | None = None

    def finish(
        self, *, stored: list[_Stored] | None = None, error: BaseException | None = None
    ) -> None:
        self.stored, self.error, self.done = stored, error, True
        self.wake.set()


@dataclass(eq=False)
class _Queue:
    pending: collections.deque[_Member] = field(default_factory=collections.deque)
    leading: bool = False
    tickets: int = 0  # batches taken so far
    turn: int = 0  # the batch whose events may be published next
    turn_changed: threading.Condition = field(default_factory=threading.Condition)


def _messages(stored: Sequence[_Stored]) -> Iterator[tuple[str, dict[str, Any]]]:
    """What stored events publish, in order: each event, then the creator state it set."""
    for s in stored:
        for name, data in (("event", s.published), ("creator_state", s.state)):
            if data is not None:
                yield name, data


def _publish(
    publisher: Publisher, company: uuid.UUID, message_id: str, stored: Sequence[_Stored]
) -> None:
    for name, data in _messages(stored):
        try:
            publisher.publish(company, name, data)
        except Exception as exc:  # noqa: BLE001 - stored is what matters; dashboards catch up
            log.warning(
                "publish skipped: dashboards will catch up from PostgreSQL",
                extra=fields(
                    company_id=str(company), message_id=message_id, error=type(exc).__name__
                ),
            )


def _publish_group(company: uuid.UUID, members: Sequence[_Member]) -> None:
    """Publish a committed group's events in seq order: with a publisher that has
    `publish_many` (SocketIOPublisher), in one Redis round trip per run of members sharing
    it, each event exactly as `publish` sends it; otherwise one by one."""
    i = 0
    while i < len(members):
        publisher = members[i].publisher
        run = [members[i]]
        while i + len(run) < len(members) and members[i + len(run)].publisher is publisher:
            run.append(members[i + len(run)])
        i += len(run)
        publish_many = getattr(publisher, "publish_many", None)
        if publish_many is None:
            for member in run:
                assert member.stored is not None
                _publish(publisher, company, member.message_id, member.stored)
            continue
        events = [message for member in run for message in _messages(member.stored or ())]
        try:
            publish_many(company, events)
        except Exception as exc:  # noqa: BLE001 - stored is what matters; dashboards catch up
            log.warning(
                "publish skipped: dashboards will catch up from PostgreSQL",
                extra=fields(
                    company_id=str(company),
                    message_id=run[0].message_id,
                    deliveries=len(run),
                    error=type(exc).__name__,
                ),
            )


def ingest(
    raw: bytes,
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    dispatcher: incidents.Dispatcher | None = None,
    group: GroupCommit | None = None,
) -> Outcome:
    """Store one persist task. `conn` must be in autocommit mode (each step commits alone).

    With `group`, the task's events for a company are stored in one transaction with those
    of concurrent tasks for the same company (see GroupCommit); without it, each event is
    stored for each company in a transaction of its own. Incidents the task opened or
    changed go to dashboards and, through `dispatcher`, to the company's notification
    channels once everything is committed."""
    outcome = Outcome()
    try:
        _ingest(raw, conn, publisher, outcome, group)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(type(exc).__name__) from exc
    for company, change in outcome.incidents:
        incidents.publish_changes(publisher, dispatcher, company, [change])
    return outcome


def _ingest(
    raw: bytes,
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    outcome: Outcome,
    group: GroupCommit | None,
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

    # every event of the task, routed: per company, in the task's order. One lookup per
    # broadcaster, all of them in one pipelined round trip (each reads the current grants)
    lookups: dict[str | None, psycopg.Cursor[tuple[Any, ...]]] = {}
    with conn.pipeline():
        for event in normalized:
            if event.broadcaster_user_id not in lookups:
                lookups[event.broadcaster_user_id] = conn.cursor(row_factory=tuple_row).execute(
                    "SELECT company_id, creator_id FROM route_broadcaster(%s)",
                    (event.broadcaster_user_id,),
                )
    routes_of = {broadcaster: cur.fetchall() for broadcaster, cur in lookups.items()}
    routed: dict[uuid.UUID, list[_Item]] = {}
    for index, event in enumerate(normalized):
        # items of a batched delivery share its message id; each needs its own
        message_id = task.message_id if len(normalized) == 1 else f"{task.message_id}#{index}"
        for company, creator in routes_of[event.broadcaster_user_id]:
            new = _new_event(event, creator, message_id, task)
            routed.setdefault(company, []).append(_Item(creator, event, new))

    stored: list[tuple[uuid.UUID, _Stored]] = []
    if group is None:
        # one transaction per event and company, published once all are stored
        for company, items in routed.items():
            for item in items:
                stored += [(company, s) for s in _store_items(conn, company, [item])]
        for company in routed:
            _publish(publisher, company, task.message_id, [s for c, s in stored if c == company])
    else:
        # the group's leader publishes, in seq order, right after the commit
        for company, items in routed.items():
            stored += [
                (company, s) for s in group.store(conn, company, items, publisher, task.message_id)
            ]

    for company, s in stored:
        outcome.companies.add(company)
        if not s.result.created:
            outcome.duplicates += 1
            continue
        outcome.stored += 1
        outcome.incidents += [(company, change) for change in s.changes]
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
