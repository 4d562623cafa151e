"""Incidents: detected where data lands, shared by a company's team, notified once per channel.

Detection runs inside the transaction that stores its cause (persist for events, pulse for
viewer samples), so a redelivered or replayed cause (which the event store refuses) never
reaches it, and the incident's dedup key is committed with the cause. At most one unresolved
incident exists per creator and rule (a unique index): a condition that lasts grows the
incident it opened instead of opening another. Every transition plans its notifications in
the same transaction (one row per channel, the outbox functions/notify works from).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core import detection
from controlroom.core.detection import RuleConfig
from controlroom.core.events import COMPACT_COLUMNS, REVOCATION_TYPE, Normalized, compact
from controlroom.core.tenants import tenant_id
from controlroom.errors import ConflictError, InvalidError, NotFoundError
from controlroom.logs import fields
from controlroom.usecases import audit

log = logging.getLogger(__name__)

AUTO = "auto"  # resolved_by when the condition cleared by itself
MAX_LINKED = 1000  # events linked to one incident (a spike keeps counting in details)
MOMENT_MINUTES = 30  # one-off info incidents (gift bombs, hype trains) resolve after this

COLUMNS = (
    "id, number, creator_id, rule, severity, status, title, details, opened_at, updated_at, "
    "acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution, assignee_user_id, "
    "(SELECT count(*) FROM incident_events ie WHERE ie.company_id = incidents.company_id "
    "AND ie.incident_id = incidents.id) AS event_count"
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Incident:
    id: uuid.UUID
    number: int
    creator_id: uuid.UUID | None
    rule: str
    severity: str
    status: str
    title: str
    details: Mapping[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    assignee_user_id: uuid.UUID | None = None
    event_count: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Incident:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "number": self.number,
            "creator_id": str(self.creator_id) if self.creator_id else None,
            "rule": self.rule,
            "severity": self.severity,
            "status": self.status,
            "title": self.title,
            "details": dict(self.details),
            "opened_at": _iso(self.opened_at),
            "updated_at": _iso(self.updated_at),
            "acknowledged_at": _iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": _iso(self.resolved_at),
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
            "assignee_user_id": str(self.assignee_user_id) if self.assignee_user_id else None,
            "event_count": self.event_count,
        }


@dataclass(frozen=True)
class Change:
    incident: Incident
    transition: str  # opened | acknowledged | resolved | updated
    deliveries: list[uuid.UUID] = field(default_factory=list)


class Publisher(Protocol):
    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None: ...


class Dispatcher(Protocol):
    def dispatch(self, company_id: uuid.UUID | str, delivery_ids: Sequence[uuid.UUID]) -> None: ...


# --- planning notifications (one statement, any connection) ------------------------------
_LOCAL_TIME = "(%(now)s::timestamptz AT TIME ZONE c.quiet_timezone)::time"
# built from the constant above; every value travels as a parameter
PLAN_DELIVERIES = (
    "INSERT INTO notification_deliveries "  # noqa: S608
    "(company_id, channel_id, incident_id, transition, status, reason) "
    "SELECT c.company_id, c.id, %(incident)s, %(transition)s, q.status, q.reason "
    "FROM notification_channels c CROSS JOIN LATERAL (SELECT "
    " CASE WHEN %(severity)s <> 'critical' AND c.quiet_start IS NOT NULL AND ("
    "  CASE WHEN c.quiet_start <= c.quiet_end "
    f"  THEN {_LOCAL_TIME} >= c.quiet_start AND {_LOCAL_TIME} < c.quiet_end "
    f"  ELSE {_LOCAL_TIME} >= c.quiet_start OR {_LOCAL_TIME} < c.quiet_end END)"
    " THEN 'skipped' ELSE 'pending' END AS status) AS s "
    "CROSS JOIN LATERAL (SELECT s.status, "
    " CASE WHEN s.status = 'skipped' THEN 'quiet hours' END AS reason) AS q "
    "WHERE c.company_id = %(company)s AND c.enabled "
    "AND array_position(ARRAY['info','warning','critical'], c.min_severity) "
    "<= array_position(ARRAY['info','warning','critical'], %(severity)s::text) "
    "ON CONFLICT DO NOTHING RETURNING id, status"
)

NOTIFIED = ("opened", "acknowledged", "resolved")


def _plan_params(
    company: uuid.UUID, incident: Incident, transition: str, now: datetime
) -> dict[str, Any]:
    return {
        "company": company,
        "incident": incident.id,
        "transition": transition,
        "severity": incident.severity,
        "now": now,
    }


def _plan(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    incident: Incident,
    transition: str,
    now: datetime,
) -> list[uuid.UUID]:
    if transition not in NOTIFIED:
        return []
    rows = conn.execute(
        PLAN_DELIVERIES, _plan_params(company, incident, transition, now)
    ).fetchall()
    return [_first(r) for r in rows if _second(r) == "pending"]


async def _plan_async(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    incident: Incident,
    transition: str,
    now: datetime,
) -> list[uuid.UUID]:
    if transition not in NOTIFIED:
        return []
    cur = await conn.execute(PLAN_DELIVERIES, _plan_params(company, incident, transition, now))
    return [_first(r) for r in await cur.fetchall() if _second(r) == "pending"]


def _first(row: Any) -> Any:
    return row["id"] if isinstance(row, Mapping) else row[0]


def _second(row: Any) -> Any:
    return row["status"] if isinstance(row, Mapping) else row[1]


# --- rules of one company ----------------------------------------------------------------
def rules(conn: psycopg.Connection[Any], company: uuid.UUID) -> dict[str, RuleConfig]:
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT rule, enabled, severity, params FROM incident_rules WHERE company_id = %s",
            (company,),
        )
        .fetchall()
    )
    stored = {r["rule"]: r for r in rows}
    return {name: detection.effective(name, stored.get(name)) for name in detection.RULES}


# --- the store (sync) --------------------------------------------------------------------
_LOCK = (
    "INSERT INTO event_sequences (company_id) VALUES (%s) "
    "ON CONFLICT (company_id) DO UPDATE SET last_incident = event_sequences.last_incident "
    "RETURNING last_incident"
)


def lock(conn: psycopg.Connection[Any], company: uuid.UUID | str) -> int:
    """Take the company's counter row (persist's event store takes it too): writers that may
    open incidents take it first, so two of them never race to open one and never deadlock."""
    return int(_scalar(conn.execute(_LOCK, (tenant_id(company),)).fetchone()))


def _unresolved(
    conn: psycopg.Connection[Any], company: uuid.UUID, creator: uuid.UUID | None, rule: str
) -> Incident | None:
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {COLUMNS} FROM incidents WHERE company_id = %s "  # noqa: S608
            "AND creator_id IS NOT DISTINCT FROM %s AND rule = %s AND status <> 'resolved' "
            "FOR UPDATE",
            (company, creator, rule),
        )
        .fetchone()
    )
    return Incident.from_row(row) if row else None


def _open(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID | None,
    config: RuleConfig,
    *,
    key: str,
    title: str,
    details: Mapping[str, Any],
    at: datetime,
    seq: int | None,
) -> Change | None:
    """Open an incident, or grow the unresolved one of this creator and rule; None if the key
    was seen before (a replay) or the rule is off."""
    if not config.enabled:
        return None
    dedup = f"{config.rule}:{key}"
    seen = conn.execute(
        "SELECT 1 FROM incidents WHERE company_id = %s AND dedup_key = %s", (company, dedup)
    ).fetchone()
    if seen:
        return None
    existing = _unresolved(conn, company, creator, config.rule)
    if existing is not None:
        return _grow(conn, company, existing, seq=seq, at=at)
    return _create(
        conn, company, creator, config, dedup=dedup, title=title, details=details, at=at, seq=seq
    )


def _create(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID | None,
    config: RuleConfig,
    *,
    dedup: str,
    title: str,
    details: Mapping[str, Any],
    at: datetime,
    seq: int | None,
) -> Change:
    """Open the incident (the caller checked its key is new and none is unresolved)."""
    number = lock(conn, company) + 1
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "INSERT INTO incidents (company_id, number, creator_id, rule, severity, title, "  # noqa: S608
            "details, dedup_key, opened_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {COLUMNS}",
            (
                company,
                number,
                creator,
                config.rule,
                config.severity,
                title[:300],
                Jsonb(dict(details)),
                dedup,
                at,
            ),
        )
        .fetchone()
    )
    assert row is not None
    conn.execute(
        "UPDATE event_sequences SET last_incident = %s WHERE company_id = %s", (number, company)
    )
    if seq is not None:
        _link(conn, company, row["id"], seq)
    incident = Incident.from_row({**row, "event_count": 1 if seq is not None else 0})
    _audit(conn, company, incident, "incident.opened")
    deliveries = _plan(conn, company, incident, "opened", at)
    log.info(
        "incident opened",
        extra=fields(
            company_id=str(company),
            incident=number,
            rule=config.rule,
            severity=config.severity,
            deliveries=len(deliveries),
        ),
    )
    return Change(incident, "opened", deliveries)


def _link(conn: psycopg.Connection[Any], company: uuid.UUID, incident: uuid.UUID, seq: int) -> None:
    conn.execute(
        "INSERT INTO incident_events (company_id, incident_id, seq) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (company, incident, seq),
    )


def _grow(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    incident: Incident,
    *,
    seq: int | None,
    at: datetime,
    details: Mapping[str, Any] | None = None,
) -> Change:
    if seq is not None and incident.event_count < MAX_LINKED:
        _link(conn, company, incident.id, seq)
    merged = {**incident.details, **(details or {}), "last_seen_at": at.isoformat()}
    merged["occurrences"] = int(incident.details.get("occurrences", 1)) + 1
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE incidents SET details = %s, updated_at = now() "  # noqa: S608
            f"WHERE company_id = %s AND id = %s RETURNING {COLUMNS}",
            (Jsonb(merged), company, incident.id),
        )
        .fetchone()
    )
    assert row is not None
    return Change(Incident.from_row(row), "updated")


def _grow_many(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    incident: Incident,
    *,
    seqs: Sequence[int],
    at: datetime,
) -> Change:
    """What `_grow` once per seq leaves behind, in two statements: the seqs linked (up to
    MAX_LINKED in all), `occurrences` counting each, `last_seen_at` the last one's time."""
    room = max(0, MAX_LINKED - incident.event_count)
    if seqs[:room]:
        conn.execute(
            "INSERT INTO incident_events (company_id, incident_id, seq) "
            "SELECT %s, %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
            (company, incident.id, list(seqs[:room])),
        )
    merged = {**incident.details, "last_seen_at": at.isoformat()}
    merged["occurrences"] = int(incident.details.get("occurrences", 1)) + len(seqs)
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE incidents SET details = %s, updated_at = now() "  # noqa: S608
            f"WHERE company_id = %s AND id = %s RETURNING {COLUMNS}",
            (Jsonb(merged), company, incident.id),
        )
        .fetchone()
    )
    assert row is not None
    return Change(Incident.from_row(row), "updated")


def _resolve_auto(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    incident: Incident,
    reason: str,
    *,
    at: datetime,
    seq: int | None = None,
) -> Change:
    if seq is not None and incident.event_count < MAX_LINKED:
        _link(conn, company, incident.id, seq)
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE incidents SET status = 'resolved', resolved_at = %s, resolved_by = %s, "  # noqa: S608
            "resolution = %s, updated_at = now() WHERE company_id = %s AND id = %s "
            f"RETURNING {COLUMNS}",
            (at, AUTO, reason[:300], company, incident.id),
        )
        .fetchone()
    )
    assert row is not None
    resolved = Incident.from_row(row)
    _audit(conn, company, resolved, "incident.resolved", before=incident)
    return Change(resolved, "resolved", _plan(conn, company, resolved, "resolved", at))


def _audit(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    incident: Incident,
    action: str,
    *,
    before: Incident | None = None,
    actor: audit.Actor | None = None,
) -> None:
    audit.record(
        conn,
        company,
        actor or audit.Actor(subject="system:detection"),
        action=action,
        target_type="incident",
        target_id=str(incident.id),
        before=_audited(before) if before else None,
        after=_audited(incident),
    )


def _audited(incident: Incident) -> dict[str, Any]:
    j = incident.to_json()
    return {
        k: j[k]
        for k in ("number", "rule", "severity", "status", "title", "assignee_user_id", "resolution")
    }


# --- facts the rules need ----------------------------------------------------------------
def _count(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    type_: str,
    span: tuple[datetime, datetime],
) -> int:
    row = conn.execute(
        "SELECT count(*) FROM events WHERE company_id = %s AND creator_id = %s AND type = %s "
        "AND occurred_at > %s AND occurred_at <= %s",
        (company, creator, type_, *span),
    ).fetchone()
    return int(_scalar(row))


def _last(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    type_: str,
    span: tuple[datetime, datetime],
) -> dict[str, Any] | None:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT seq, occurred_at, amount, actor_login, actor_name FROM events "
            "WHERE company_id = %s AND creator_id = %s AND type = %s AND occurred_at >= %s "
            "AND occurred_at < %s ORDER BY occurred_at DESC LIMIT 1",
            (company, creator, type_, *span),
        )
        .fetchone()
    )


def _last_raid_in(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    span: tuple[datetime, datetime],
) -> dict[str, Any] | None:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT seq, occurred_at, amount, actor_login, actor_name FROM events "
            "WHERE company_id = %s AND creator_id = %s AND type = 'channel.raid' "
            "AND outcome = 'incoming' AND occurred_at >= %s AND occurred_at <= %s "
            "ORDER BY occurred_at DESC LIMIT 1",
            (company, creator, *span),
        )
        .fetchone()
    )


def _name(summary: Mapping[str, Any], prefix: str = "actor") -> str:
    return str(summary.get(f"{prefix}_name") or summary.get(f"{prefix}_login") or "someone")


# --- detection on a stored event ---------------------------------------------------------
SPIKE_TYPES = {"channel.follow": "follows", "channel.chat.message": "chat", "channel.ban": "bans"}
WATCHED = {
    "stream.online",
    "stream.offline",
    "channel.raid",
    "channel.subscription.gift",
    "channel.hype_train.begin",
    "channel.hype_train.progress",
    "channel.hype_train.end",
    "user.authorization.revoke",
    REVOCATION_TYPE,
    *SPIKE_TYPES,
}


@dataclass(frozen=True)
class _Cause:
    """A stored event and where it was stored, as the rules see it."""

    conn: psycopg.Connection[Any]
    company: uuid.UUID
    creator: uuid.UUID
    seq: int
    event: Normalized
    key: str
    config: Mapping[str, RuleConfig]


def on_event(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    event: Normalized,
    *,
    seq: int,
    key: str,
    config: Mapping[str, RuleConfig] | None = None,
) -> list[Change]:
    """Run the rules an event can fire, in the transaction that stored it (`key` is its
    dedup key in the event store, so an incident's key names its cause). `config`: the
    company's `rules`, when the caller read them once for several events."""
    if event.type not in WATCHED:
        return []
    config = config if config is not None else rules(conn, company)
    at = event.occurred_at
    summary = event.summary
    changes: list[Change | None] = []
    t = event.type
    if t == "stream.online":
        changes += _online(_Cause(conn, company, creator, seq, event, key, config))
    elif t == "stream.offline":
        changes += _offline(_Cause(conn, company, creator, seq, event, key, config))
    elif t == "channel.raid" and summary.get("outcome") == "incoming":
        viewers = int(summary.get("amount") or 0)
        changes.append(
            _raid_behind_spike(_Cause(conn, company, creator, seq, event, key, config), viewers)
        )
        rule = config["raid_incoming"]
        if viewers >= rule["min_viewers"]:
            changes.append(
                _open(
                    conn,
                    company,
                    creator,
                    rule,
                    key=key,
                    at=at,
                    seq=seq,
                    title=f"Raid from {_name(summary)} with {viewers:,} viewers",
                    details={"from": _name(summary), "viewers": viewers},
                )
            )
    elif t == "channel.subscription.gift":
        if is_gift_bomb(event, config):
            changes += on_gift_bombs(conn, company, [Gift(creator, seq, key, event)], config)[0]
    elif t.startswith("channel.hype_train."):
        level = int(summary.get("level") or 0)
        rule = config["hype_train"]
        train = str(event.event.get("id") or key)
        if level >= rule["min_level"]:
            changes.append(
                _open(
                    conn,
                    company,
                    creator,
                    rule,
                    key=f"{train}",
                    at=at,
                    seq=seq,
                    title=f"Hype train reached level {level}",
                    details={"level": level, "train": train},
                )
            )
    elif t in ("user.authorization.revoke", REVOCATION_TYPE):
        revoked_type = str(summary.get("title") or "") if t == REVOCATION_TYPE else None
        title = (
            "Creator revoked our access on Twitch"
            if revoked_type is None
            else f"Twitch revoked the {revoked_type} subscription ({summary.get('outcome')})"
        )
        changes.append(
            _open(
                conn,
                company,
                creator,
                config["authorization_lost"],
                key=key,
                at=at,
                seq=seq,
                title=title,
                details={
                    "cause": t,
                    **({"subscription_type": revoked_type} if revoked_type else {}),
                },
            )
        )
    elif t in SPIKE_TYPES:
        changes += _spike(_Cause(conn, company, creator, seq, event, key, config))
    return [c for c in changes if c is not None]


@dataclass(frozen=True)
class Gift:
    """A stored gift event the gift-bomb rule fires on (see `is_gift_bomb`)."""

    creator: uuid.UUID
    seq: int
    key: str
    event: Normalized


def is_gift_bomb(event: Normalized, config: Mapping[str, RuleConfig]) -> bool:
    """Whether the gift-bomb rule fires on `event`: enough subs gifted at once."""
    if event.type != "channel.subscription.gift":
        return False
    return int(event.summary.get("amount") or 0) >= config["gift_bomb"]["min_gifts"]


def on_gift_bombs(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    gifts: Sequence[Gift],
    config: Mapping[str, RuleConfig],
) -> list[list[Change]]:
    """The gift-bomb rule over several stored gift events at once (in seq order), with
    the same result as `on_event` on each in turn: per creator, the first opens the
    incident unless one is unresolved, and every other grows it. Returns each gift's
    changes; the growth of a creator's incident is one change, on its last gift.

    A hype train's burst is mostly gift bombs; one at a time each cost three round trips
    inside the company's transaction (the key seen?, the unresolved incident, link and
    update). Here a group costs two for its keys and incidents, plus the open (if any)
    and one link and update per creator."""
    rule = config["gift_bomb"]
    out: list[list[Change]] = [[] for _ in gifts]
    if not rule.enabled or not gifts:
        return out
    dedups = [f"{rule.rule}:{gift.key}" for gift in gifts]
    seen = {
        row[0]
        for row in conn.cursor(row_factory=tuple_row).execute(
            "SELECT dedup_key FROM incidents WHERE company_id = %s AND dedup_key = ANY(%s)",
            (company, dedups),
        )
    }
    by_creator: dict[uuid.UUID, list[int]] = {}
    for i, gift in enumerate(gifts):
        if dedups[i] not in seen:
            seen.add(dedups[i])
            by_creator.setdefault(gift.creator, []).append(i)
    for creator, indexes in by_creator.items():
        incident = _unresolved(conn, company, creator, rule.rule)
        rest = indexes
        if incident is None:
            first = gifts[indexes[0]]
            summary = first.event.summary
            count = int(summary.get("amount") or 0)
            who = "An anonymous gifter" if summary.get("outcome") == "anonymous" else _name(summary)
            opened = _create(
                conn,
                company,
                creator,
                rule,
                dedup=dedups[indexes[0]],
                title=f"{who} gifted {count:,} subs",
                details={"gifter": who, "gifts": count},
                at=first.event.occurred_at,
                seq=first.seq,
            )
            out[indexes[0]].append(opened)
            incident, rest = opened.incident, indexes[1:]
        if rest:
            last = gifts[rest[-1]]
            grown = _grow_many(
                conn,
                company,
                incident,
                seqs=[gifts[i].seq for i in rest],
                at=last.event.occurred_at,
            )
            out[rest[-1]].append(grown)
    return out


def _online(c: _Cause) -> list[Change | None]:
    conn, company, creator, seq, key, config = c.conn, c.company, c.creator, c.seq, c.key, c.config
    at = c.event.occurred_at
    out: list[Change | None] = []
    offline = _unresolved(conn, company, creator, "went_offline")
    if offline is not None:
        out.append(
            _resolve_auto(conn, company, offline, "the stream is live again", at=at, seq=seq)
        )
    drop = config["stream_dropped"]
    pending = _unresolved(conn, company, creator, "stream_dropped")
    if pending is not None and pending.details.get("while_offline"):
        out.append(_resolve_auto(conn, company, pending, "the stream is back", at=at, seq=seq))
    else:
        window = timedelta(minutes=drop["window_minutes"])
        last_off = _last(conn, company, creator, "stream.offline", (at - window, at))
        if last_off is not None:
            between = _last(conn, company, creator, "stream.online", (last_off["occurred_at"], at))
            if between is None:
                gap = int((at - last_off["occurred_at"]).total_seconds())
                change = _open(
                    conn,
                    company,
                    creator,
                    drop,
                    key=key,
                    at=at,
                    seq=seq,
                    title=f"Stream dropped and came back after {_duration(gap)}",
                    details={"offline_at": last_off["occurred_at"].isoformat(), "gap_seconds": gap},
                )
                if change is not None and change.transition == "opened":
                    _link(conn, company, change.incident.id, int(last_off["seq"]))
                out.append(change)
    out.append(
        _open(
            conn,
            company,
            creator,
            config["went_live"],
            key=key,
            at=at,
            seq=seq,
            title="Went live",
            details={},
        )
    )
    return out


def _offline(c: _Cause) -> list[Change | None]:
    conn, company, creator, seq, key, config = c.conn, c.company, c.creator, c.seq, c.key, c.config
    at = c.event.occurred_at
    out: list[Change | None] = []
    live = _unresolved(conn, company, creator, "went_live")
    if live is not None:
        out.append(_resolve_auto(conn, company, live, "the stream ended", at=at, seq=seq))
    collapse = _unresolved(conn, company, creator, "viewer_drop")
    drop = config["stream_dropped"]
    if collapse is not None:
        recent = at - collapse.opened_at <= timedelta(minutes=drop["collapse_minutes"])
        if recent:
            out.append(
                _open(
                    conn,
                    company,
                    creator,
                    drop,
                    key=key,
                    at=at,
                    seq=seq,
                    title=f"Stream went offline right after a viewer collapse (#{collapse.number})",
                    details={"while_offline": True, "collapse": collapse.number},
                )
            )
        out.append(_resolve_auto(conn, company, collapse, "the stream ended", at=at, seq=seq))
    out.append(
        _open(
            conn,
            company,
            creator,
            config["went_offline"],
            key=key,
            at=at,
            seq=seq,
            title="Went offline",
            details={},
        )
    )
    return out


def _duration(seconds: int) -> str:
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _spike(c: _Cause) -> list[Change | None]:
    conn, company, creator, seq, key, config = c.conn, c.company, c.creator, c.seq, c.key, c.config
    event = c.event
    rule = config["hate_raid"]
    if not rule.enabled:
        return []
    at = event.occurred_at
    window = timedelta(seconds=rule["window_seconds"])
    existing = _unresolved(conn, company, creator, "hate_raid")
    recent = _count(conn, company, creator, event.type, (at - window, at))
    kind = SPIKE_TYPES[event.type]
    if kind == "bans":
        fired = recent >= rule["ban_burst"]
    else:
        baseline = timedelta(minutes=rule["baseline_minutes"])
        trailing = _count(conn, company, creator, event.type, (at - window - baseline, at - window))
        factor, floor = (
            (rule["follow_factor"], rule["min_follows"])
            if kind == "follows"
            else (rule["chat_factor"], rule["min_chat"])
        )
        fired = detection.spike(
            recent,
            trailing,
            window_seconds=rule["window_seconds"],
            baseline_minutes=rule["baseline_minutes"],
            factor=factor,
            floor=floor,
        )
    if existing is not None:
        # the attack goes on: the incident counts it and stays open until a quiet period
        if fired:
            return [
                _grow(
                    conn,
                    company,
                    existing,
                    seq=seq,
                    at=at,
                    details={
                        "last_spike_at": at.isoformat(),
                        f"peak_{kind}": max(recent, int(existing.details.get(f"peak_{kind}", 0))),
                    },
                )
            ]
        return []
    if not fired:
        return []
    lookback = timedelta(minutes=rule["raid_lookback_minutes"])
    # followed_at and a raid's message timestamp come from different clocks, and a raid
    # that lands during the first seconds of its spike brought it just the same
    raid = _last_raid_in(conn, company, creator, (at - lookback, at + window))
    raid_details = {"raid_from": _name(raid), "raid_viewers": raid["amount"]} if raid else {}
    title = _spike_title(kind, recent, rule["window_seconds"], raid_details)
    change = _open(
        conn,
        company,
        creator,
        rule,
        key=key,
        at=at,
        seq=seq,
        title=title,
        details={
            "kind": kind,
            f"peak_{kind}": recent,
            "window_seconds": rule["window_seconds"],
            "last_spike_at": at.isoformat(),
            **raid_details,
        },
    )
    if change is not None and raid is not None and change.transition == "opened":
        _link(conn, company, change.incident.id, int(raid["seq"]))
    return [change]


def _spike_title(kind: str, count: int, window_seconds: int, raid: Mapping[str, Any]) -> str:
    what = {"follows": "follows", "chat": "chat messages", "bans": "bans"}[kind]
    prefix = "Suspected follow bots" if kind == "follows" and not raid else "Suspected hate raid"
    after = (
        f" after a raid from {raid['raid_from']} ({int(raid['raid_viewers'] or 0):,} viewers)"
        if raid
        else ""
    )
    return f"{prefix}: {count:,} {what} in {window_seconds} s{after}"


def _raid_behind_spike(c: _Cause, viewers: int) -> Change | None:
    """A raid stored after the spike it brought (deliveries are not ordered): the open
    spike incident names it, as it would have had the raid been stored first."""
    rule = c.config["hate_raid"]
    spike = _unresolved(c.conn, c.company, c.creator, "hate_raid")
    at = c.event.occurred_at
    if spike is None or "raid_from" in spike.details:
        return None
    if abs(spike.opened_at - at) > timedelta(minutes=rule["raid_lookback_minutes"]):
        return None
    raid = {"raid_from": _name(c.event.summary), "raid_viewers": viewers}
    kind = str(spike.details.get("kind", "follows"))
    title = _spike_title(
        kind,
        int(spike.details.get(f"peak_{kind}", 0)),
        int(spike.details.get("window_seconds", rule["window_seconds"])),
        raid,
    )
    _link(c.conn, c.company, spike.id, c.seq)
    row = (
        c.conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE incidents SET title = %s, details = details || %s, updated_at = now() "  # noqa: S608
            f"WHERE company_id = %s AND id = %s RETURNING {COLUMNS}",
            (title, Jsonb(raid), c.company, spike.id),
        )
        .fetchone()
    )
    assert row is not None
    return Change(Incident.from_row(row), "updated")


# --- detection on a viewer sample (pulse) ------------------------------------------------
def on_viewer_sample(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    creator: uuid.UUID,
    *,
    at: datetime,
    live: bool,
    viewers: int,
) -> list[Change]:
    """Viewer drops, from the samples before this one (call it after locking the company)."""
    rule = rules(conn, company)["viewer_drop"]
    existing = _unresolved(conn, company, creator, "viewer_drop")
    if existing is not None:
        peak = int(existing.details.get("peak", 0))
        if not live:
            return [_resolve_auto(conn, company, existing, "the stream ended", at=at)]
        if detection.recovered(peak, viewers):
            return [
                _resolve_auto(conn, company, existing, f"viewers recovered to {viewers:,}", at=at)
            ]
        return []
    if not live or not rule.enabled:
        return []
    row = conn.execute(
        "SELECT max(viewers) FROM viewer_samples WHERE company_id = %s AND creator_id = %s "
        "AND live AND sampled_at >= %s AND sampled_at < %s",
        (company, creator, at - timedelta(minutes=rule["window_minutes"]), at),
    ).fetchone()
    peak = _scalar(row)
    if peak is None or not detection.dropped(
        int(peak), viewers, drop_percent=rule["drop_percent"], min_viewers=rule["min_viewers"]
    ):
        return []
    fell = round(100 * (int(peak) - viewers) / int(peak))
    change = _open(
        conn,
        company,
        creator,
        rule,
        key=f"{creator}:{at.isoformat()}",
        at=at,
        seq=None,
        title=(
            f"Viewers fell {fell}% ({int(peak):,} → {viewers:,}) "
            f"within {rule['window_minutes']} min"
        ),
        details={"peak": int(peak), "low": viewers, "percent": fell},
    )
    return [change] if change else []


def _scalar(row: Any) -> Any:
    if row is None:
        return None
    if isinstance(row, Mapping):
        return next(iter(row.values()))
    return row[0]


# --- conditions that clear with time (pulse runs this every minute) ----------------------
def sweep(conn: psycopg.Connection[Any], company: uuid.UUID, now: datetime) -> list[Change]:
    """Resolve what cleared by itself: quiet spikes, passed moments, restored authorizations."""
    config = rules(conn, company)
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {COLUMNS} FROM incidents WHERE company_id = %s AND status <> 'resolved' "  # noqa: S608
            "AND rule IN ('hate_raid', 'gift_bomb', 'hype_train', 'authorization_lost') FOR UPDATE",
            (company,),
        )
        .fetchall()
    )
    out: list[Change] = []
    for row in rows:
        incident = Incident.from_row(row)
        if incident.rule == "hate_raid":
            last = datetime.fromisoformat(
                str(incident.details.get("last_spike_at") or incident.opened_at.isoformat())
            )
            quiet = timedelta(minutes=config["hate_raid"]["quiet_minutes"])
            if now - last >= quiet:
                out.append(
                    _resolve_auto(
                        conn,
                        company,
                        incident,
                        f"quiet for {config['hate_raid']['quiet_minutes']} min",
                        at=now,
                    )
                )
        elif incident.rule in ("gift_bomb", "hype_train"):
            if now - incident.opened_at >= timedelta(minutes=MOMENT_MINUTES):
                out.append(_resolve_auto(conn, company, incident, "the moment passed", at=now))
        elif (
            incident.rule == "authorization_lost"
            and incident.creator_id is not None
            and _restored(conn, company, incident)
        ):
            out.append(_resolve_auto(conn, company, incident, "access restored", at=now))
    return out


def _restored(conn: psycopg.Connection[Any], company: uuid.UUID, incident: Incident) -> bool:
    sub_type = incident.details.get("subscription_type")
    if sub_type:
        row = conn.execute(
            "SELECT 1 FROM eventsub_subscriptions s JOIN creators c "
            "ON c.twitch_user_id = s.broadcaster_user_id AND c.company_id = %s AND c.id = %s "
            "WHERE s.type = %s AND s.status = 'enabled' AND s.updated_at > %s",
            (company, incident.creator_id, sub_type, incident.opened_at),
        ).fetchone()
        return row is not None
    row = conn.execute(
        "SELECT 1 FROM creators WHERE company_id = %s AND id = %s "
        "AND authorization_revoked_at IS NULL",
        (company, incident.creator_id),
    ).fetchone()
    return row is not None


# --- after commit ------------------------------------------------------------------------
def publish_changes(
    publisher: Publisher | None,
    dispatcher: Dispatcher | None,
    company: uuid.UUID | str,
    changes: Sequence[Change],
) -> None:
    """Push committed changes to the company's dashboards and hand their posts to the queue.

    Neither may fail the caller: what was stored stands, dashboards reload incidents on
    reconnect, and pulse re-dispatches deliveries left pending."""
    for change in changes:
        if publisher is not None:
            try:
                publisher.publish(company, "incident", change.incident.to_json())
            except Exception as exc:  # noqa: BLE001 - stored is what matters
                log.warning(
                    "incident publish skipped",
                    extra=fields(company_id=str(company), error=type(exc).__name__),
                )
    ids = [d for c in changes for d in c.deliveries]
    if ids and dispatcher is not None:
        dispatcher.dispatch(company, ids)


# --- the team's side (realtime, asyncio) -------------------------------------------------
async def list_incidents(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    *,
    status: Sequence[str] | None = None,
    severity: Sequence[str] | None = None,
    creator_id: uuid.UUID | None = None,
    rule: str | None = None,
    before_number: int | None = None,
    limit: int = 50,
) -> list[Incident]:
    for s in status or ():
        if s not in detection.STATUSES:
            raise InvalidError(f"status must be one of {', '.join(detection.STATUSES)}")
    for s in severity or ():
        if s not in detection.SEVERITIES:
            raise InvalidError(f"severity must be one of {', '.join(detection.SEVERITIES)}")
    if rule is not None and rule not in detection.RULES:
        raise InvalidError(f"unknown rule {rule!r}")
    limit = max(1, min(limit, 200))
    async with tenant_transaction_async(conn, company):
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"SELECT {COLUMNS} FROM incidents WHERE company_id = %s "  # noqa: S608
            "AND (%s::text[] IS NULL OR status = ANY(%s)) "
            "AND (%s::text[] IS NULL OR severity = ANY(%s)) "
            "AND (%s::uuid IS NULL OR creator_id = %s) AND (%s::text IS NULL OR rule = %s) "
            "AND (%s::bigint IS NULL OR number < %s) ORDER BY number DESC LIMIT %s",
            (
                company,
                list(status) if status else None,
                list(status) if status else None,
                list(severity) if severity else None,
                list(severity) if severity else None,
                creator_id,
                creator_id,
                rule,
                rule,
                before_number,
                before_number,
                limit,
            ),
        )
        return [Incident.from_row(r) for r in await cur.fetchall()]


async def _load(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, incident_id: uuid.UUID
) -> Incident:
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS} FROM incidents WHERE company_id = %s AND id = %s FOR UPDATE",  # noqa: S608
        (company, incident_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such incident")
    return Incident.from_row(row)


async def get_incident(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, incident_id: uuid.UUID
) -> dict[str, Any]:
    async with tenant_transaction_async(conn, company):
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"SELECT {COLUMNS} FROM incidents WHERE company_id = %s AND id = %s",  # noqa: S608
            (company, incident_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("no such incident")
        notes = await (
            await conn.cursor(row_factory=dict_row).execute(
                "SELECT id, author_subject, body, created_at FROM incident_notes "
                "WHERE company_id = %s AND incident_id = %s ORDER BY id",
                (company, incident_id),
            )
        ).fetchall()
        events = await (
            await conn.cursor(row_factory=dict_row).execute(
                f"SELECT {COMPACT_COLUMNS} FROM events e WHERE e.company_id = %s AND e.seq IN "  # noqa: S608
                "(SELECT seq FROM incident_events WHERE company_id = %s AND incident_id = %s) "
                "ORDER BY e.seq LIMIT 200",
                (company, company, incident_id),
            )
        ).fetchall()
        deliveries = await (
            await conn.cursor(row_factory=dict_row).execute(
                "SELECT d.id, d.channel_id, c.name AS channel_name, d.transition, d.status, "
                "d.reason, d.attempts, d.last_status, d.created_at, d.delivered_at "
                "FROM notification_deliveries d JOIN notification_channels c "
                "ON c.company_id = d.company_id AND c.id = d.channel_id "
                "WHERE d.company_id = %s AND d.incident_id = %s ORDER BY d.created_at",
                (company, incident_id),
            )
        ).fetchall()
    out = Incident.from_row(row).to_json()
    out["notes"] = [
        {
            "id": n["id"],
            "author_subject": n["author_subject"],
            "body": n["body"],
            "created_at": _iso(n["created_at"]),
        }
        for n in notes
    ]
    out["events"] = [compact(e) for e in events]
    out["deliveries"] = [
        {
            **d,
            "id": str(d["id"]),
            "channel_id": str(d["channel_id"]),
            "created_at": _iso(d["created_at"]),
            "delivered_at": _iso(d["delivered_at"]),
        }
        for d in deliveries
    ]
    return out


async def _change(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    before: Incident,
    *,
    sets: str,
    params: Sequence[Any],
    transition: str,
    action: str,
    actor: audit.Actor,
    now: datetime,
) -> Change:
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"UPDATE incidents SET {sets}, updated_at = now() WHERE company_id = %s AND id = %s "  # noqa: S608
        f"RETURNING {COLUMNS}",
        (*params, company, before.id),
    )
    row = await cur.fetchone()
    assert row is not None
    after = Incident.from_row(row)
    await audit.record_async(
        conn,
        company,
        actor,
        action=action,
        target_type="incident",
        target_id=str(after.id),
        before=_audited(before),
        after=_audited(after),
    )
    return Change(after, transition, await _plan_async(conn, company, after, transition, now))


async def acknowledge(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    incident_id: uuid.UUID,
    actor: audit.Actor,
) -> Change:
    async with tenant_transaction_async(conn, company):
        before = await _load(conn, company, incident_id)
        if before.status != "open":
            raise ConflictError(f"incident #{before.number} is already {before.status}")
        now = await _now(conn)
        return await _change(
            conn,
            company,
            before,
            sets="status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s",
            params=(now, actor.subject),
            transition="acknowledged",
            action="incident.acknowledged",
            actor=actor,
            now=now,
        )


async def resolve(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    incident_id: uuid.UUID,
    actor: audit.Actor,
    resolution: str | None = None,
) -> Change:
    if resolution is not None and len(resolution) > 300:
        raise InvalidError("resolution is at most 300 characters")
    async with tenant_transaction_async(conn, company):
        before = await _load(conn, company, incident_id)
        if before.status == "resolved":
            raise ConflictError(f"incident #{before.number} is already resolved")
        now = await _now(conn)
        return await _change(
            conn,
            company,
            before,
            sets="status = 'resolved', resolved_at = %s, resolved_by = %s, resolution = %s",
            params=(now, actor.subject, resolution),
            transition="resolved",
            action="incident.resolved",
            actor=actor,
            now=now,
        )


async def assign(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    incident_id: uuid.UUID,
    actor: audit.Actor,
    assignee_user_id: uuid.UUID | None,
) -> Change:
    async with tenant_transaction_async(conn, company):
        before = await _load(conn, company, incident_id)
        if assignee_user_id is not None:
            cur = await conn.execute(
                "SELECT 1 FROM members WHERE company_id = %s AND user_id = %s",
                (company, assignee_user_id),
            )
            if await cur.fetchone() is None:
                raise InvalidError("the assignee is not a member of this company")
        now = await _now(conn)
        return await _change(
            conn,
            company,
            before,
            sets="assignee_user_id = %s",
            params=(assignee_user_id,),
            transition="updated",
            action="incident.assigned",
            actor=actor,
            now=now,
        )


async def add_note(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    incident_id: uuid.UUID,
    actor: audit.Actor,
    body: str,
) -> Change:
    body = body.strip()
    if not 1 <= len(body) <= 2000:
        raise InvalidError("a note is 1 to 2000 characters")
    async with tenant_transaction_async(conn, company):
        before = await _load(conn, company, incident_id)
        await conn.execute(
            "INSERT INTO incident_notes (company_id, incident_id, author_user_id, author_subject, "
            "body) VALUES (%s, %s, %s, %s, %s)",
            (company, incident_id, actor.user_id, actor.subject, body),
        )
        await audit.record_async(
            conn,
            company,
            actor,
            action="incident.noted",
            target_type="incident",
            target_id=str(incident_id),
            after={"number": before.number, "note": body[:200]},
        )
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"UPDATE incidents SET updated_at = now() WHERE company_id = %s AND id = %s "  # noqa: S608
            f"RETURNING {COLUMNS}",
            (company, incident_id),
        )
        row = await cur.fetchone()
        assert row is not None
        return Change(Incident.from_row(row), "updated")


async def _now(conn: psycopg.AsyncConnection[Any]) -> datetime:
    cur = await conn.execute("SELECT now()")
    return _scalar(await cur.fetchone())  # type: ignore[no-any-return]


async def get_rules(conn: psycopg.AsyncConnection[Any], company: uuid.UUID) -> list[dict[str, Any]]:
    async with tenant_transaction_async(conn, company):
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT rule, enabled, severity, params FROM incident_rules WHERE company_id = %s",
            (company,),
        )
        stored = {r["rule"]: r for r in await cur.fetchall()}
    return [detection.describe(detection.effective(n, stored.get(n))) for n in detection.RULES]


async def set_rule(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    rule: str,
    actor: audit.Actor,
    *,
    enabled: Any,
    severity: Any,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    if rule not in detection.RULES:
        raise NotFoundError(f"no rule {rule!r}")
    config = detection.validate(rule, enabled, severity, params)
    async with tenant_transaction_async(conn, company):
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT rule, enabled, severity, params FROM incident_rules "
            "WHERE company_id = %s AND rule = %s FOR UPDATE",
            (company, rule),
        )
        before = detection.effective(rule, await cur.fetchone())
        await conn.execute(
            "INSERT INTO incident_rules (company_id, rule, enabled, severity, params, updated_by) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (company_id, rule) DO UPDATE SET "
            "enabled = EXCLUDED.enabled, severity = EXCLUDED.severity, params = EXCLUDED.params, "
            "updated_at = now(), updated_by = EXCLUDED.updated_by",
            (
                company,
                rule,
                config.enabled,
                config.severity,
                Jsonb(dict(config.params)),
                actor.subject,
            ),
        )
        await audit.record_async(
            conn,
            company,
            actor,
            action="incident_rule.updated",
            target_type="incident_rule",
            target_id=rule,
            before={
                "enabled": before.enabled,
                "severity": before.severity,
                "params": dict(before.params),
            },
            after={
                "enabled": config.enabled,
                "severity": config.severity,
                "params": dict(config.params),
            },
        )
    return detection.describe(config)
