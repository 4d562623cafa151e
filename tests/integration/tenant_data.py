"""A company with one row in every tenant table, written as the runtime role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from controlroom.adapters import db, eventstore
from controlroom.usecases import audit
from tests.integration.conftest import new_company


@dataclass(frozen=True)
class Tenant:
    company_id: uuid.UUID
    user_id: uuid.UUID
    creator_id: uuid.UUID
    broadcaster_id: str


def sample_event(
    message_id: str, broadcaster: str, creator_id: uuid.UUID | None, **kw: Any
) -> eventstore.NewEvent:
    now = datetime.now(UTC)
    return eventstore.NewEvent(
        twitch_message_id=message_id,
        type=kw.pop("type", "channel.follow"),
        version=kw.pop("version", "2"),
        topic=kw.pop("topic", "audience"),
        occurred_at=kw.pop("occurred_at", now),
        received_at=now,
        broadcaster_user_id=broadcaster,
        creator_id=creator_id,
        payload=kw.pop("payload", {"event": {"user_login": "someone"}}),
        dedup_key=kw.pop("dedup_key", None),
        summary=kw.pop("summary", {"actor_login": "someone"}),
    )


def populate(conn: psycopg.Connection[Any], name: str, broadcaster: str) -> Tenant:
    company_id = new_company(conn, name)
    with db.tenant_transaction(conn, company_id):
        user_id = conn.execute(
            "INSERT INTO users (company_id, subject, email) VALUES (%s, %s, %s) RETURNING id",
            (company_id, f"sub-{name}", f"{name}@example.com"),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'owner')",
            (company_id, user_id),
        )
        creator_id = conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (company_id, broadcaster, f"login_{broadcaster}", f"Name{broadcaster}"),
        ).fetchone()["id"]
        (stored,) = eventstore.append(
            conn, company_id, [sample_event(f"msg-{uuid.uuid4()}", broadcaster, creator_id)]
        )
        conn.execute(
            "INSERT INTO event_acks (company_id, seq, user_id, note) VALUES (%s, %s, %s, 'seen')",
            (company_id, stored.seq, user_id),
        )
        audit.record(
            conn,
            company_id,
            audit.Actor(f"sub-{name}", user_id),
            action="creator.add",
            target_type="creator",
            target_id=str(creator_id),
            after={"login": broadcaster},
        )
        conn.execute(
            "INSERT INTO archive_manifests (company_id, day, object_keys, row_count, checksums, "
            "schema_version, exported_at) VALUES (%s, %s, '[]', 0, '{}', 1, now())",
            (company_id, date(2026, 1, 1)),
        )
    return Tenant(company_id, user_id, creator_id, broadcaster)
