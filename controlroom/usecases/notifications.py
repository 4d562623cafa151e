"""Notification channels (Discord, Slack, signed webhooks) and the delivery of each planned
post, at most once per (channel, incident transition).

Channels are managed through the API (async, audited, the URL sealed and never returned);
incidents plan one delivery row per channel and transition (incidents.PLAN_DELIVERIES), a
Dispatcher hands each to functions/notify through Cloud Tasks, and `deliver` posts it: the row
is claimed ('sending') in a committed transaction of its own before the POST, so a duplicate
task finds it taken. 2xx delivered; 429 waits (in process when short, else a later task);
5xx and network errors raise NotificationRetryError (Cloud Tasks retries with backoff); any
other 4xx fails for good; after 24 hours a delivery gives up.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import psycopg
from psycopg.rows import dict_row

from controlroom import settings
from controlroom.adapters.db import tenant_transaction, tenant_transaction_async
from controlroom.adapters.secretbox import Keyring, Sealed
from controlroom.core import alerts
from controlroom.core.tenants import tenant_id
from controlroom.errors import InvalidError, NotFoundError, NotificationRetryError, SealError
from controlroom.logs import fields
from controlroom.usecases import audit
from controlroom.usecases.incidents import COLUMNS as INCIDENT_COLUMNS
from controlroom.usecases.incidents import Dispatcher, Incident

__all__ = ["DeliveryOutcome", "Dispatcher", "deliver", "redispatch_pending"]

log = logging.getLogger(__name__)

KINDS = ("discord", "slack", "webhook")
SEVERITIES = ("info", "warning", "critical")
GIVE_UP_AFTER = timedelta(hours=24)
POST_TIMEOUT_SECONDS = 10.0
INLINE_WAIT_SECONDS = 5.0  # a 429 asking for at most this long is waited out in process
INLINE_ATTEMPTS = 4  # POSTs in one task run (the first and three short 429 waits)
SENDING_LEASE = timedelta(minutes=2)  # a claim older than this was interrupted
RETRY_DELAY = timedelta(minutes=5)  # when the sweep may re-dispatch after a 5xx
REDISPATCH_AFTER = timedelta(seconds=60)
MAX_DELIVERIES_PAGE = 200


# --- keyring and settings ------------------------------------------------------------------
@functools.cache
def default_keyring() -> Keyring:
    return Keyring.parse(settings.channels().keys.reveal())


def _allow_loopback() -> bool:
    return settings.channels().allow_loopback


# --- URL rules -----------------------------------------------------------------------------
_DISCORD_HOSTS = ("discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _loopback(parts: urllib.parse.SplitResult) -> bool:
    return (parts.hostname or "") in _LOOPBACK_HOSTS


def _private_literal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    return not address.is_global


def check_url(kind: str, url: str, *, allow_loopback: bool) -> str:
    """The channel URL if it is one we post to, else InvalidError (never echoing the URL)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidError("url is not a valid URL") from None
    if parts.username or parts.password or not parts.hostname:
        raise InvalidError("url must be https://host/path without credentials")
    if parts.scheme == "http" and allow_loopback and _loopback(parts):
        return parts.geturl()  # the local notification sink
    if parts.scheme != "https":
        raise InvalidError("url must use https")
    host = parts.hostname.lower()
    path = parts.path
    if kind == "discord":
        segments = path.strip("/").split("/")
        if host not in _DISCORD_HOSTS or not (
            len(segments) == 4
            and segments[:2] == ["api", "webhooks"]
            and segments[2].isdigit()
            and segments[3]
        ):
            raise InvalidError("a Discord URL is https://discord.com/api/webhooks/<id>/<token>")
    elif kind == "slack":
        if host != "hooks.slack.com" or not path.startswith("/services/"):
            raise InvalidError("a Slack URL is https://hooks.slack.com/services/...")
    elif kind == "webhook":
        if _private_literal(host) or (parts.port not in (None, 443)):
            raise InvalidError("a webhook URL must be a public https address on port 443")
    else:
        raise InvalidError(f"kind must be one of {', '.join(KINDS)}")
    return parts.geturl()


def url_hint(url: str) -> str:
    """What the API shows instead of a URL: scheme, host and the last four characters."""
    parts = urllib.parse.urlsplit(url)
    tail = url.rstrip("/")[-4:]
    return f"{parts.scheme}://{parts.netloc}/…/{tail}"


def _check_secret(kind: str, secret: str | None) -> str | None:
    if secret is None:
        return None
    if kind != "webhook":
        raise InvalidError("only a webhook channel takes a signing secret")
    try:
        alerts.secret_key(secret)
    except ValueError as exc:
        raise InvalidError(str(exc)) from None
    return secret if secret.startswith(alerts.SECRET_PREFIX) else alerts.SECRET_PREFIX + secret


def _check_mention(kind: str, mention: str | None) -> str | None:
    if mention is None or mention == "":
        return None
    if kind == "discord" and (
        alerts.DISCORD_ROLE.match(mention) or mention in alerts.DISCORD_BROADCAST
    ):
        return mention
    if kind == "slack" and alerts.SLACK_MENTION.match(mention):
        return mention
    raise InvalidError(
        "mention must be a Discord role id (or here/everyone), or a Slack mention such as "
        "<!here> or <!subteam^ID>; webhooks take none"
    )


def _check_quiet(quiet: Mapping[str, Any] | None) -> tuple[str | None, str | None, str]:
    if quiet is None:
        return None, None, "UTC"
    try:
        start, end = str(quiet["start"]), str(quiet["end"])
        zone = str(quiet.get("timezone") or "UTC")
    except (KeyError, TypeError):
        raise InvalidError("quiet_hours needs start and end (HH:MM) and a timezone") from None
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(zone)
        datetime.strptime(start, "%H:%M")
        datetime.strptime(end, "%H:%M")
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise InvalidError("quiet_hours: times are HH:MM and timezone an IANA name") from None
    if start == end:
        raise InvalidError("quiet hours must not start and end at the same time")
    return start, end, zone


async def _zone_known(conn: psycopg.AsyncConnection[Any], zone: str) -> None:
    """PostgreSQL must know the zone too: every incident transition plans its deliveries with
    `AT TIME ZONE quiet_timezone`, and a zone it does not know would fail persist's storing
    transaction for every event of the company. Asked inside a savepoint, so a refusal
    leaves the caller's transaction usable."""
    try:
        async with conn.transaction():
            await conn.execute("SELECT now() AT TIME ZONE %s", (zone,))
    except psycopg.errors.InvalidParameterValue:
        raise InvalidError(f"time zone {zone!r} is not known to the database") from None


def _check_severity(value: str) -> str:
    if value not in SEVERITIES:
        raise InvalidError(f"min_severity must be one of {', '.join(SEVERITIES)}")
    return value


# --- channel JSON ----------------------------------------------------------------------------
_CHANNEL_COLUMNS = (
    "id, kind, name, url_hint, min_severity, quiet_start, quiet_end, quiet_timezone, mention, "
    "enabled, sealed_secret IS NOT NULL AS has_secret, created_at, updated_at"
)


def _clock(value: Any) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def channel_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's Channel JSON: never the URL nor the secret."""
    quiet = None
    if row["quiet_start"] is not None:
        quiet = {
            "start": _clock(row["quiet_start"]),
            "end": _clock(row["quiet_end"]),
            "timezone": row["quiet_timezone"],
        }
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "name": row["name"],
        "url_hint": row["url_hint"],
        "min_severity": row["min_severity"],
        "quiet_hours": quiet,
        "mention": row["mention"],
        "enabled": row["enabled"],
        "has_secret": bool(row["has_secret"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _audit_view(channel: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in channel.items() if k not in ("created_at", "updated_at")}


# --- channel management (realtime, asyncio) --------------------------------------------------
async def list_channels(
    conn: psycopg.AsyncConnection[Any], company_id: uuid.UUID, actor: audit.Actor | None = None
) -> list[dict[str, Any]]:
    async with tenant_transaction_async(conn, company_id):
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_CHANNEL_COLUMNS} FROM notification_channels "  # noqa: S608 - constant
            "WHERE company_id = %s ORDER BY created_at, id",
            (company_id,),
        )
        rows = await cur.fetchall()
    return [channel_json(r) for r in rows]


async def _channel(
    conn: psycopg.AsyncConnection[Any], company_id: uuid.UUID, channel_id: uuid.UUID
) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_CHANNEL_COLUMNS} FROM notification_channels "  # noqa: S608 - constant
        "WHERE company_id = %s AND id = %s FOR UPDATE",
        (company_id, channel_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such notification channel")
    return row


async def create_channel(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID,
    actor: audit.Actor,
    *,
    kind: str,
    name: str,
    url: str,
    secret: str | None = None,
    min_severity: str = "warning",
    quiet_hours: Mapping[str, Any] | None = None,
    mention: str | None = None,
    enabled: bool = True,
    keyring: Keyring | None = None,
    allow_loopback: bool | None = None,
) -> dict[str, Any]:
    """A new channel; its URL (and secret) sealed with a data key of its own."""
    if kind not in KINDS:
        raise InvalidError(f"kind must be one of {', '.join(KINDS)}")
    loopback = _allow_loopback() if allow_loopback is None else allow_loopback
    url = check_url(kind, url, allow_loopback=loopback)
    secret = _check_secret(kind, secret)
    mention = _check_mention(kind, mention)
    start, end, zone = _check_quiet(quiet_hours)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidError("name must be 1 to 100 characters")
    channel_id = uuid.uuid4()
    sealed = (keyring or default_keyring()).seal(company_id, channel_id, url, secret)
    async with tenant_transaction_async(conn, company_id):
        await _zone_known(conn, zone)
        cur = await conn.cursor(row_factory=dict_row).execute(
            "INSERT INTO notification_channels (company_id, id, kind, name, sealed_url, "  # noqa: S608 - constant columns
            "sealed_secret, wrapped_key, key_id, url_hint, min_severity, quiet_start, quiet_end, "
            "quiet_timezone, mention, enabled) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {_CHANNEL_COLUMNS}",
            (
                company_id,
                channel_id,
                kind,
                name,
                sealed.sealed_url,
                sealed.sealed_secret,
                sealed.wrapped_key,
                sealed.key_id,
                url_hint(url),
                _check_severity(min_severity),
                start,
                end,
                zone,
                mention,
                enabled,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        channel = channel_json(row)
        await audit.record_async(
            conn,
            company_id,
            actor,
            action="notification_channel.create",
            target_type="notification_channel",
            target_id=str(channel_id),
            after=_audit_view(channel),
        )
    log.info(
        "notification channel created",
        extra=fields(company_id=str(company_id), channel_id=str(channel_id), kind=kind),
    )
    return channel


_UNSET: Any = object()


async def update_channel(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID,
    actor: audit.Actor,
    channel_id: uuid.UUID,
    *,
    name: str | None = None,
    url: str | None = None,
    secret: str | None = None,
    min_severity: str | None = None,
    quiet_hours: Mapping[str, Any] | None = _UNSET,
    mention: str | None = _UNSET,
    enabled: bool | None = None,
    keyring: Keyring | None = None,
    allow_loopback: bool | None = None,
) -> dict[str, Any]:
    """Change what was given: a new URL or secret seals both again under a fresh data key
    and the current key-encryption key; `quiet_hours=None` clears them."""
    async with tenant_transaction_async(conn, company_id):
        before = channel_json(await _channel(conn, company_id, channel_id))
        kind = before["kind"]
        sets: list[str] = []
        values: list[Any] = []
        if name is not None:
            if not 1 <= len(name.strip()) <= 100:
                raise InvalidError("name must be 1 to 100 characters")
            sets.append("name = %s")
            values.append(name.strip())
        if min_severity is not None:
            sets.append("min_severity = %s")
            values.append(_check_severity(min_severity))
        if enabled is not None:
            sets.append("enabled = %s")
            values.append(enabled)
        if quiet_hours is not _UNSET:
            start, end, zone = _check_quiet(quiet_hours)
            await _zone_known(conn, zone)
            sets += ["quiet_start = %s", "quiet_end = %s", "quiet_timezone = %s"]
            values += [start, end, zone]
        if mention is not _UNSET:
            sets.append("mention = %s")
            values.append(_check_mention(kind, mention))
        if url is not None or secret is not None:
            ring = keyring or default_keyring()
            loopback = _allow_loopback() if allow_loopback is None else allow_loopback
            current = await _open_async(conn, ring, company_id, channel_id)
            new_url = check_url(kind, url, allow_loopback=loopback) if url else current.url
            new_secret = _check_secret(kind, secret) if secret is not None else current.secret
            sealed = ring.seal(company_id, channel_id, new_url, new_secret)
            sets += [
                "sealed_url = %s",
                "sealed_secret = %s",
                "wrapped_key = %s",
                "key_id = %s",
                "url_hint = %s",
            ]
            values += [
                sealed.sealed_url,
                sealed.sealed_secret,
                sealed.wrapped_key,
                sealed.key_id,
                url_hint(new_url),
            ]
        if not sets:
            return before
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"UPDATE notification_channels SET {', '.join(sets)}, updated_at = now() "  # noqa: S608 - fixed column list
            f"WHERE company_id = %s AND id = %s RETURNING {_CHANNEL_COLUMNS}",
            (*values, company_id, channel_id),
        )
        row = await cur.fetchone()
        assert row is not None
        after = channel_json(row)
        changed = {
            "url_changed": url is not None,
            "secret_changed": secret is not None,
        }
        await audit.record_async(
            conn,
            company_id,
            actor,
            action="notification_channel.update",
            target_type="notification_channel",
            target_id=str(channel_id),
            before=_audit_view(before),
            after={**_audit_view(after), **changed},
        )
    return after


async def _open_async(
    conn: psycopg.AsyncConnection[Any], ring: Keyring, company_id: uuid.UUID, channel_id: uuid.UUID
) -> Any:
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT sealed_url, sealed_secret, wrapped_key, key_id FROM notification_channels "
        "WHERE company_id = %s AND id = %s",
        (company_id, channel_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return ring.open(company_id, channel_id, _sealed(row))


def _sealed(row: Mapping[str, Any]) -> Sealed:
    return Sealed(
        sealed_url=bytes(row["sealed_url"]),
        sealed_secret=bytes(row["sealed_secret"]) if row["sealed_secret"] is not None else None,
        wrapped_key=bytes(row["wrapped_key"]),
        key_id=row["key_id"],
    )


async def delete_channel(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID,
    actor: audit.Actor,
    channel_id: uuid.UUID,
) -> None:
    """The channel and its delivery log go; pending posts to it are not sent."""
    async with tenant_transaction_async(conn, company_id):
        before = channel_json(await _channel(conn, company_id, channel_id))
        await conn.execute(
            "DELETE FROM notification_channels WHERE company_id = %s AND id = %s",
            (company_id, channel_id),
        )
        await audit.record_async(
            conn,
            company_id,
            actor,
            action="notification_channel.delete",
            target_type="notification_channel",
            target_id=str(channel_id),
            before=_audit_view(before),
        )


_DELIVERY_COLUMNS = (
    "d.id, d.channel_id, c.name AS channel_name, d.incident_id, d.transition, d.status, "
    "d.reason, d.attempts, d.last_status, d.last_error, d.created_at, d.delivered_at"
)


def delivery_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "channel_id": str(row["channel_id"]),
        "channel_name": row["channel_name"],
        "incident_id": str(row["incident_id"]) if row["incident_id"] else None,
        "transition": row["transition"],
        "status": row["status"],
        "reason": row["reason"] or row.get("last_error"),
        "attempts": row["attempts"],
        "last_status": row["last_status"],
        "created_at": row["created_at"].isoformat(),
        "delivered_at": row["delivered_at"].isoformat() if row["delivered_at"] else None,
    }


async def send_test(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID,
    actor: audit.Actor,
    channel_id: uuid.UUID,
) -> dict[str, Any]:
    """A 'test' delivery (no incident) for the channel, pending: the caller dispatches it."""
    async with tenant_transaction_async(conn, company_id):
        await _channel(conn, company_id, channel_id)
        cur = await conn.cursor(row_factory=dict_row).execute(
            "WITH d AS (INSERT INTO notification_deliveries (company_id, channel_id, transition) "  # noqa: S608
            "VALUES (%s, %s, 'test') RETURNING *) "
            f"SELECT {_DELIVERY_COLUMNS} FROM d JOIN notification_channels c "
            "ON c.company_id = d.company_id AND c.id = d.channel_id",
            (company_id, channel_id),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit.record_async(
            conn,
            company_id,
            actor,
            action="notification_channel.test",
            target_type="notification_channel",
            target_id=str(channel_id),
            after={"delivery_id": str(row["id"])},
        )
    return delivery_json(row)


async def channel_deliveries(
    conn: psycopg.AsyncConnection[Any],
    company_id: uuid.UUID,
    actor: audit.Actor | None,
    channel_id: uuid.UUID,
    *,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The channel's delivery log, newest first."""
    limit = max(1, min(limit, MAX_DELIVERIES_PAGE))
    async with tenant_transaction_async(conn, company_id):
        await _channel(conn, company_id, channel_id)
        cur = await conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM notification_deliveries d "  # noqa: S608 - constant
            "JOIN notification_channels c ON c.company_id = d.company_id AND c.id = d.channel_id "
            "WHERE d.company_id = %s AND d.channel_id = %s "
            "ORDER BY d.created_at DESC, d.id DESC LIMIT %s",
            (company_id, channel_id, limit),
        )
        rows = await cur.fetchall()
    return [delivery_json(r) for r in rows]


# --- dispatching -----------------------------------------------------------------------------
@runtime_checkable
class AttemptDispatcher(Protocol):
    """A dispatcher that names each attempt (Cloud Tasks: `<delivery id>-<attempt>`) and can
    schedule one for later."""

    def dispatch(self, company_id: uuid.UUID | str, delivery_ids: Sequence[uuid.UUID]) -> None: ...

    def dispatch_attempt(
        self,
        company_id: uuid.UUID | str,
        delivery_id: uuid.UUID | str,
        attempt: int | str,
        not_before: datetime | None = None,
    ) -> bool: ...


def redispatch_pending(conn: psycopg.Connection[Any], dispatcher: Dispatcher, now: datetime) -> int:
    """Hand deliveries again whose task was lost (the dispatch failed, the queue gave up, a
    sender died mid-way): every company with deliveries due for a minute. Returns how many."""
    with conn.transaction():  # committed before the tenant transactions below
        rows = conn.execute(
            "SELECT company_id FROM companies_with_pending_notifications(%s)",
            (now - REDISPATCH_AFTER,),
        ).fetchall()
    total = 0
    for row in rows:
        company = row["company_id"] if isinstance(row, Mapping) else row[0]
        with tenant_transaction(conn, company):
            due = (
                conn.cursor(row_factory=dict_row)
                .execute(
                    "SELECT id, attempts FROM notification_deliveries "
                    "WHERE company_id = %s AND status IN ('pending', 'sending') "
                    "AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT 500",
                    (company, now - REDISPATCH_AFTER),
                )
                .fetchall()
            )
        if not due:
            continue
        if isinstance(dispatcher, AttemptDispatcher):
            for d in due:
                # named apart from the sender's own attempts; the same sweep name twice is
                # refused by Cloud Tasks, so a slow task is not queued again every minute
                dispatcher.dispatch_attempt(company, d["id"], f"sweep{d['attempts']}")
        else:
            dispatcher.dispatch(company, [d["id"] for d in due])
        total += len(due)
    return total


# --- delivering (functions/notify) -----------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """What the channel's endpoint answered (headers lower-cased; body capped)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class Poster(Protocol):
    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer: ...


class NetworkError(Exception):
    """No answer: connection refused, DNS, TLS, timeout (the text never holds the URL)."""


def http_post(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
    """POST with httpx: 10 s timeout, no redirects (a redirect is an answer, not a hop)."""
    import httpx

    try:
        with httpx.Client(timeout=POST_TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = client.post(url, content=body, headers=dict(headers))
            return Answer(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=response.content[:4096],
            )
    except httpx.HTTPError as exc:
        raise NetworkError(type(exc).__name__) from None


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: str
    status: str  # delivered | failed | pending (a later task) | skipped | sending (taken) | none
    attempts: int = 0
    last_status: int | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "detail": self.detail,
        }


def retry_after(answer: Answer) -> float | None:
    """Seconds a 429 asks us to wait: Discord's JSON `retry_after` (fractional seconds), else
    the Retry-After header (seconds); None when neither says."""
    try:
        data = json.loads(answer.body) if answer.body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float):
        return max(0.0, float(data["retry_after"]))
    header = answer.headers.get("retry-after")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


def _resolves_private(url: str) -> bool:
    """True when the host resolves to a non-public address (a generic webhook may not)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # the POST will fail with a network error and be retried
    return any(not ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_global for i in infos)


_LOAD = (
    "SELECT d.id, d.channel_id, d.incident_id, d.transition, d.status, d.attempts, d.last_status, "
    "d.created_at, d.next_attempt_at, c.kind, c.name AS channel_name, c.sealed_url, "
    "c.sealed_secret, c.wrapped_key, c.key_id, c.mention, c.enabled "
    "FROM notification_deliveries d JOIN notification_channels c "
    "ON c.company_id = d.company_id AND c.id = d.channel_id "
    "WHERE d.company_id = %s AND d.id = %s"
)


def _finish(
    conn: psycopg.Connection[Any],
    company: str,
    delivery_id: uuid.UUID,
    *,
    status: str,
    attempts: int,
    last_status: int | None,
    error: str | None,
    next_attempt_at: datetime | None = None,
) -> None:
    with tenant_transaction(conn, company):
        conn.execute(
            "UPDATE notification_deliveries SET status = %s, attempts = %s, last_status = %s, "
            "last_error = %s, reason = CASE WHEN %s IN ('failed', 'skipped') THEN %s "
            "ELSE reason END, next_attempt_at = COALESCE(%s, next_attempt_at), "
            "delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END "
            "WHERE company_id = %s AND id = %s",
            (
                status,
                attempts,
                last_status,
                error,
                status,
                error,
                next_attempt_at,
                status,
                company,
                delivery_id,
            ),
        )


def _rotate_if_due(
    conn: psycopg.Connection[Any], ring: Keyring, company: str, row: Mapping[str, Any], opened: Any
) -> None:
    """A channel sealed under an older key-encryption key is sealed again under the current
    one as it is used, so a rotation completes for every active channel by itself."""
    if not ring.needs_rotation(_sealed(row)):
        return
    sealed = ring.seal(company, row["channel_id"], opened.url, opened.secret)
    try:
        with tenant_transaction(conn, company):
            conn.execute(
                "UPDATE notification_channels SET sealed_url = %s, sealed_secret = %s, "
                "wrapped_key = %s, key_id = %s WHERE company_id = %s AND id = %s AND key_id = %s",
                (
                    sealed.sealed_url,
                    sealed.sealed_secret,
                    sealed.wrapped_key,
                    sealed.key_id,
                    company,
                    row["channel_id"],
                    row["key_id"],
                ),
            )
    except psycopg.Error as exc:  # the post matters more; the next one rotates it
        log.warning(
            "channel not sealed again", extra=fields(company_id=company, error=type(exc).__name__)
        )


def _incident_view(
    conn: psycopg.Connection[Any], company: str, incident_id: uuid.UUID | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The Incident JSON and its creator's display name (nothing for a test post)."""
    if incident_id is None:
        return None, None
    inc = (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {INCIDENT_COLUMNS}, "  # noqa: S608 - constant
            "(SELECT coalesce(cr.display_name, cr.twitch_login) FROM creators cr "
            "WHERE cr.company_id = incidents.company_id AND cr.id = incidents.creator_id)"
            " AS creator_name FROM incidents WHERE company_id = %s AND id = %s",
            (company, incident_id),
        )
        .fetchone()
    )
    assert inc is not None  # the foreign key cascades
    return Incident.from_row(inc).to_json(), inc["creator_name"]


def deliver(
    conn: psycopg.Connection[Any],
    company_id: uuid.UUID | str,
    delivery_id: uuid.UUID | str,
    now: datetime,
    *,
    keyring: Keyring | None = None,
    public_url: str | None = None,
    dispatcher: AttemptDispatcher | None = None,
    post: Poster = http_post,
    sleep: Callable[[float], None] = time.sleep,
    allow_loopback: bool | None = None,
) -> DeliveryOutcome:
    """Post one planned delivery, at most once. `conn` is an autocommit connection as the
    runtime role; each step commits on its own so a duplicate task sees the claim."""
    company, delivery = tenant_id(company_id), uuid.UUID(str(delivery_id))
    ring = keyring or default_keyring()
    ctx = fields(company_id=str(company), delivery_id=str(delivery))
    with tenant_transaction(conn, company):
        row = conn.cursor(row_factory=dict_row).execute(_LOAD, (company, delivery)).fetchone()
        if row is None:
            return DeliveryOutcome(str(delivery), "none", detail="no such delivery")
        state = row["status"]
        attempts = int(row["attempts"])
        if state in ("delivered", "failed", "skipped"):
            return DeliveryOutcome(str(delivery), state, attempts, detail="already settled")
        if state == "sending" and row["next_attempt_at"] > now:
            return DeliveryOutcome(str(delivery), "sending", attempts, detail="taken by another")
        settled = None
        if state == "sending":
            # the claim's lease ran out: a sender died mid-POST; posting again could post twice
            settled = ("failed", "interrupted while sending; not posted again (at most once)")
        elif now - row["created_at"] > GIVE_UP_AFTER:
            settled = ("failed", "gave up after 24 h")
        elif not row["enabled"]:
            settled = ("skipped", "channel disabled")
        if settled is not None:
            conn.execute(
                "UPDATE notification_deliveries SET status = %s, reason = %s "
                "WHERE company_id = %s AND id = %s",
                (*settled, company, delivery),
            )
            return DeliveryOutcome(str(delivery), settled[0], attempts, detail=settled[1])
        # after a 429 the row says when the endpoint takes posts again (a task scheduled for
        # then, or an early duplicate); after a 5xx the queue's backoff decides alone
        wait = (row["next_attempt_at"] - now).total_seconds() if row["last_status"] == 429 else 0
        if wait > INLINE_WAIT_SECONDS:
            raise NotificationRetryError("not due yet")
        incident, creator = _incident_view(conn, company, row["incident_id"])
        # the claim, committed before the POST: a duplicate task now finds it taken
        claimed = conn.execute(
            "UPDATE notification_deliveries SET status = 'sending', next_attempt_at = %s "
            "WHERE company_id = %s AND id = %s AND status = 'pending' RETURNING id",
            (now + SENDING_LEASE, company, delivery),
        ).fetchone()
        if claimed is None:  # a concurrent task claimed it between our read and this update
            return DeliveryOutcome(str(delivery), "sending", attempts, detail="taken by another")
    if wait > 0:
        sleep(wait)
    try:
        opened = ring.open(company, row["channel_id"], _sealed(row))
    except SealError as exc:
        _finish(
            conn,
            company,
            delivery,
            status="failed",
            attempts=attempts,
            last_status=None,
            error="the channel's URL cannot be opened (key missing or row tampered)",
        )
        log.error(
            "notification channel does not open", extra=fields(**ctx["fields"], error=str(exc))
        )
        return DeliveryOutcome(str(delivery), "failed", attempts, detail="sealed URL")
    _rotate_if_due(conn, ring, company, row, opened)
    loopback = _allow_loopback() if allow_loopback is None else allow_loopback
    try:  # the rules of the day, not those of the day it was stored (loopback, say)
        check_url(row["kind"], opened.url, allow_loopback=loopback)
    except InvalidError as exc:
        _finish(
            conn,
            company,
            delivery,
            status="failed",
            attempts=attempts,
            last_status=None,
            error=f"the channel's URL is refused: {exc.detail}",
        )
        return DeliveryOutcome(str(delivery), "failed", attempts, detail="URL refused")
    link = (
        f"{public_url.rstrip('/')}/#/incidents/{incident['id']}"
        if public_url and incident
        else None
    )
    notice = alerts.Notice(
        transition=row["transition"],
        incident=incident,
        creator=creator,
        link=link,
        sent_at=now,
        channel_name=row["channel_name"],
    )
    headers = {"Content-Type": "application/json", "User-Agent": "CreatorControlRoom-Notify/1"}
    if row["kind"] == "discord":
        body = alerts.encode(alerts.discord_message(notice, row["mention"]))
    elif row["kind"] == "slack":
        body = alerts.encode(alerts.slack_message(notice, row["mention"]))
    else:
        body = alerts.encode(alerts.webhook_payload(notice, str(row["channel_id"])))
        if not (loopback and urllib.parse.urlsplit(opened.url).scheme == "http") and (
            _resolves_private(opened.url)
        ):
            _finish(
                conn,
                company,
                delivery,
                status="failed",
                attempts=attempts,
                last_status=None,
                error="the webhook's host resolves to a private address",
            )
            return DeliveryOutcome(str(delivery), "failed", attempts, detail="private address")
    return _post_loop(
        conn,
        company=company,
        delivery=delivery,
        url=opened.url,
        secret=opened.secret,
        body=body,
        headers=headers,
        attempts=attempts,
        now=now,
        signed=row["kind"] == "webhook",
        dispatcher=dispatcher,
        post=post,
        sleep=sleep,
        ctx=ctx,
    )


def _post_loop(  # one send's whole state, named at the call
    conn: psycopg.Connection[Any],
    *,
    company: str,
    delivery: uuid.UUID,
    url: str,
    secret: str | None,
    body: bytes,
    headers: dict[str, str],
    attempts: int,
    now: datetime,
    signed: bool,
    dispatcher: AttemptDispatcher | None,
    post: Poster,
    sleep: Callable[[float], None],
    ctx: dict[str, Any],
) -> DeliveryOutcome:
    inline = 0
    while True:
        attempts += 1
        inline += 1
        if signed:
            # webhook-id stays the delivery's id across attempts: receivers deduplicate by it
            stamp = int(time.time())
            headers = {**headers, **alerts.signed_headers(secret, str(delivery), stamp, body)}
        try:
            answer = post(url, body, headers)
        except NetworkError as exc:
            _finish(
                conn,
                company,
                delivery,
                status="pending",
                attempts=attempts,
                last_status=None,
                error=f"network: {exc}",
                next_attempt_at=now + RETRY_DELAY,
            )
            log.warning("notification post failed", extra=fields(**ctx["fields"], error=str(exc)))
            raise NotificationRetryError("the channel did not answer") from None
        status = answer.status
        if 200 <= status < 300:
            _finish(
                conn,
                company,
                delivery,
                status="delivered",
                attempts=attempts,
                last_status=status,
                error=None,
            )
            log.info("notification delivered", extra=fields(**ctx["fields"], status=status))
            return DeliveryOutcome(str(delivery), "delivered", attempts, status)
        if status == 429:
            wait = retry_after(answer)
            wait = 1.0 if wait is None else wait
            if wait <= INLINE_WAIT_SECONDS and inline < INLINE_ATTEMPTS:
                with tenant_transaction(conn, company):
                    conn.execute(
                        "UPDATE notification_deliveries SET attempts = %s, last_status = 429, "
                        "last_error = %s WHERE company_id = %s AND id = %s",
                        (attempts, f"rate limited; retry after {wait:g} s", company, delivery),
                    )
                sleep(wait)
                continue
            due = datetime.now(now.tzinfo) + timedelta(seconds=max(wait, 1.0))
            _finish(
                conn,
                company,
                delivery,
                status="pending",
                attempts=attempts,
                last_status=429,
                error=f"rate limited; retry after {wait:g} s",
                next_attempt_at=due,
            )
            if dispatcher is not None and dispatcher.dispatch_attempt(
                company, delivery, attempts, due
            ):
                return DeliveryOutcome(str(delivery), "pending", attempts, 429, "rescheduled")
            raise NotificationRetryError("rate limited")
        if status >= 500:
            _finish(
                conn,
                company,
                delivery,
                status="pending",
                attempts=attempts,
                last_status=status,
                error=f"HTTP {status}",
                next_attempt_at=now + RETRY_DELAY,
            )
            log.warning("notification post refused", extra=fields(**ctx["fields"], status=status))
            raise NotificationRetryError(f"the channel answered {status}")
        reason = f"HTTP {status}" + (": webhook deleted" if status in (404, 410) else "")
        _finish(
            conn,
            company,
            delivery,
            status="failed",
            attempts=attempts,
            last_status=status,
            error=reason,
        )
        log.warning("notification failed", extra=fields(**ctx["fields"], status=status))
        return DeliveryOutcome(str(delivery), "failed", attempts, status, reason)
