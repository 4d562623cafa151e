"""The audience pulse: viewer counts and images for every watched creator, stored per company.

One run (Cloud Scheduler, every minute): the broadcasters every active company watches
(`watched_creators()`, a platform read), one Get Streams request per 100 of them across all
tenants, and one Get Users request for at most 100 broadcasters whose avatar was not checked
for a day (`creators_needing_images()`), then per company ONE tenant transaction that stores a
sample per creator (offline when Get Streams did not list the broadcaster), keeps the newest
count and the live stream's preview template on the creator row (cleared when offline),
refreshes the avatars read, runs viewer detection and the clock-driven sweep, and trims
samples older than a day. After the commit the company's dashboards get one "viewers"
message and the incident changes. When Twitch cannot be read nothing is stored: a gap is
honest, a run of false "offline" samples would open incidents. Avatars are best effort: when
Get Users fails the samples are still stored and the avatars wait for the next run.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from controlroom.adapters import db
from controlroom.adapters.emitter import Publisher
from controlroom.errors import HelixError, PublishError, RetryLaterError
from controlroom.logs import fields
from controlroom.usecases import incidents, notifications

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
DELETE_BATCH = 5000  # old samples removed per company and run (a day is 1,440 per creator)
IMAGES_MAX_AGE = timedelta(hours=24)  # an avatar is asked for again after a day
IMAGES_PER_RUN = 100  # avatars refreshed per run: one Get Users request

_INSERT = """
INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers, stream_id)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_UPDATE_CREATOR = """
UPDATE creators SET viewers = %s, viewers_at = %s, preview_url = %s
WHERE company_id = %s AND id = %s AND (viewers_at IS NULL OR viewers_at <= %s)
"""
# a user Get Users did not answer (suspended, renamed away) keeps its avatar until next time
_UPDATE_AVATAR = """
UPDATE creators SET profile_image_url = CASE WHEN %s THEN %s ELSE profile_image_url END,
    images_checked_at = %s
WHERE company_id = %s AND id = %s AND (images_checked_at IS NULL OR images_checked_at <= %s)
"""
_TRIM = """
DELETE FROM viewer_samples WHERE (company_id, creator_id, sampled_at) IN (
    SELECT company_id, creator_id, sampled_at FROM viewer_samples
    WHERE company_id = %s AND sampled_at < %s
    LIMIT %s
)
"""


class StreamsPort(Protocol):
    """Get Streams and Get Users; image URLs already checked against the image origin."""

    def streams(self, user_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Avatar:
    """What Get Users said about a broadcaster whose avatar was due: found, and its URL."""

    found: bool
    url: str | None


@dataclass(frozen=True)
class Sample:
    creator_id: uuid.UUID
    live: bool
    viewers: int
    stream_id: str | None
    preview_url: str | None = None  # Twitch's template, {width} and {height} left in

    def to_json(self) -> dict[str, Any]:
        return {
            "creator_id": str(self.creator_id),
            "viewers": self.viewers if self.live else None,
            "live": self.live,
            "preview_url": self.preview_url if self.live else None,
        }


@dataclass
class PulseReport:
    broadcasters: int = 0  # distinct broadcasters asked about
    live: int = 0  # of them live
    companies: int = 0  # companies whose samples were stored
    samples: int = 0
    avatars_checked: int = 0  # broadcasters whose avatar Get Users was asked for
    trimmed: int = 0  # samples older than a day removed
    incident_changes: int = 0
    redispatched: int = 0  # notification deliveries handed to the dispatcher again
    failed: list[str] = field(default_factory=list)  # companies whose transaction failed


def run(
    conn: psycopg.Connection[Any],
    helix: StreamsPort,
    publisher: Publisher,
    dispatcher: incidents.Dispatcher | None,
    now: datetime,
) -> PulseReport:
    """One pulse: sample, store per company, publish; see the module's docstring."""
    report = PulseReport()
    watchers: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for row in conn.execute("SELECT * FROM watched_creators()").fetchall():
        watchers[row["company_id"]].append((row["creator_id"], row["broadcaster_user_id"]))
    broadcasters = sorted({b for creators in watchers.values() for _c, b in creators})
    report.broadcasters = len(broadcasters)
    live = {str(s["user_id"]): s for s in helix.streams(broadcasters)} if broadcasters else {}
    report.live = len(live)
    avatars = _avatars(conn, helix, now)
    report.avatars_checked = len(avatars)
    log.info(
        "pulse: streams read",
        extra=fields(
            broadcasters=report.broadcasters,
            live=report.live,
            companies=len(watchers),
            avatars=report.avatars_checked,
        ),
    )
    for company_id, creators in watchers.items():
        samples = [_sample(creator_id, live.get(b)) for creator_id, b in creators]
        due = {c: avatars[b] for c, b in creators if b in avatars}
        try:
            changes = _record(conn, company_id, samples, due, now, report)
        except Exception as exc:  # one company must not starve the others (logged, traced)
            report.failed.append(str(company_id))
            log.exception(
                "pulse: samples not stored",
                extra=fields(company_id=str(company_id), error=type(exc).__name__),
            )
            continue
        report.companies += 1
        report.samples += len(samples)
        report.incident_changes += len(changes)
        _publish(publisher, dispatcher, company_id, samples, changes, now)
    report.redispatched = _redispatch(conn, dispatcher, now)
    log.info(
        "pulse: done",
        extra=fields(
            broadcasters=report.broadcasters,
            live=report.live,
            companies=report.companies,
            samples=report.samples,
            trimmed=report.trimmed,
            incident_changes=report.incident_changes,
            redispatched=report.redispatched,
            failed=len(report.failed),
        ),
    )
    return report


def _avatars(conn: psycopg.Connection[Any], helix: StreamsPort, now: datetime) -> dict[str, Avatar]:
    """Get Users for the broadcasters whose avatar is due (at most IMAGES_PER_RUN, the oldest
    first); an empty answer when Twitch cannot be asked (they stay due)."""
    due = [
        r["broadcaster_user_id"]
        for r in conn.execute(
            "SELECT * FROM creators_needing_images(%s, %s)",
            (now - IMAGES_MAX_AGE, IMAGES_PER_RUN),
        ).fetchall()
    ]
    if not due:
        return {}
    try:
        users = {str(u.get("id")): u for u in helix.users(due)}
    except (HelixError, RetryLaterError) as exc:
        log.warning("pulse: avatars not read", extra=fields(error=type(exc).__name__))
        return {}
    return {
        b: Avatar(found=b in users, url=(users.get(b) or {}).get("profile_image_url")) for b in due
    }


def _sample(creator_id: uuid.UUID, stream: dict[str, Any] | None) -> Sample:
    if stream is None or stream.get("type", "live") != "live":
        return Sample(creator_id, live=False, viewers=0, stream_id=None)
    viewers = max(0, int(stream.get("viewer_count") or 0))
    preview = stream.get("thumbnail_url")
    return Sample(
        creator_id,
        live=True,
        viewers=viewers,
        stream_id=str(stream.get("id") or ""),
        preview_url=preview if isinstance(preview, str) else None,
    )


def _record(  # noqa: PLR0917 - private, called once
    conn: psycopg.Connection[Any],
    company_id: uuid.UUID,
    samples: list[Sample],
    avatars: dict[uuid.UUID, Avatar],
    now: datetime,
    report: PulseReport,
) -> list[incidents.Change]:
    changes: list[incidents.Change] = []
    with db.tenant_transaction(conn, company_id):
        incidents.lock(conn, company_id)  # before anything that may open an incident
        for s in samples:
            conn.execute(
                _INSERT, (company_id, s.creator_id, now, s.live, s.viewers, s.stream_id or None)
            )
            viewers = s.viewers if s.live else None
            preview = s.preview_url if s.live else None
            conn.execute(_UPDATE_CREATOR, (viewers, now, preview, company_id, s.creator_id, now))
            changes += incidents.on_viewer_sample(
                conn, company_id, s.creator_id, at=now, live=s.live, viewers=s.viewers
            )
        for creator_id, avatar in avatars.items():
            conn.execute(
                _UPDATE_AVATAR, (avatar.found, avatar.url, now, company_id, creator_id, now)
            )
        changes += incidents.sweep(conn, company_id, now)
        trimmed = conn.execute(_TRIM, (company_id, now - RETENTION, DELETE_BATCH))
        report.trimmed += max(0, trimmed.rowcount)
    return changes


def _publish(  # noqa: PLR0917 - private, called once
    publisher: Publisher,
    dispatcher: incidents.Dispatcher | None,
    company_id: uuid.UUID,
    samples: list[Sample],
    changes: list[incidents.Change],
    now: datetime,
) -> None:
    """After the commit: the new counts, then the incident changes (which dispatch)."""
    message = {"at": now.isoformat(), "samples": [s.to_json() for s in samples]}
    try:
        publisher.publish(company_id, "viewers", message)
    except PublishError:
        # the samples are stored; dashboards catch up from /api/viewers on their next load
        log.warning("pulse: viewers not published", extra=fields(company_id=str(company_id)))
    incidents.publish_changes(publisher, dispatcher, company_id, changes)


def _redispatch(
    conn: psycopg.Connection[Any], dispatcher: incidents.Dispatcher | None, now: datetime
) -> int:
    """Notification deliveries still pending (a lost task, a failed enqueue) are handed to the
    dispatcher again; without one they wait in the database."""
    if dispatcher is None:
        return 0
    return notifications.redispatch_pending(conn, dispatcher, now)
