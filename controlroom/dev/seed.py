"""The demo company that `make run` shows: idempotent, written as the runtime role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from controlroom.adapters.db import tenant_transaction
from controlroom.usecases import audit

DEMO_COMPANY_ID = uuid.UUID("5b0f4c1e-7d2a-4e3b-9a61-0c0ffee00001")
DEMO_COMPANY = {"name": "Northwind Talent", "slug": "northwind"}
DEMO_BRANDING = {"primary_color": "#6441a5", "accent_color": "#00c8af", "logo_key": None}
DEMO_OWNER = ("demo-owner", "owner@northwind.example", "Olivia Owner", "owner")
DEMO_ADMIN = ("demo-admin", "admin@northwind.example", "Adam Admin", "admin")
# Broadcaster ids 1337 and 1971641 are the ones in Twitch's reference samples, so the
# sample deliveries route to this company.
DEMO_CREATORS = (
    ("1337", "cool_user", "Cool_User"),
    ("1971641", "streamer", "Streamer"),
    ("41245072", "northwind_nova", "Northwind_Nova"),
    ("52871934", "pixel_pioneer", "Pixel_Pioneer"),
    ("67329110", "speedrun_sam", "SpeedrunSam"),
)
_SEEDER = audit.Actor(subject="system:seed")


@dataclass(frozen=True)
class SeedResult:
    company_id: uuid.UUID
    admin_subject: str
    created: bool


def _upsert_user(
    conn: psycopg.Connection[Any], subject: str, email: str, name: str, role: str
) -> None:
    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute(
        "INSERT INTO users (company_id, subject, email, display_name) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (company_id, subject) DO UPDATE SET email = EXCLUDED.email RETURNING id",
        (DEMO_COMPANY_ID, subject, email, name),
    ).fetchone()
    assert row is not None
    cur.execute(
        "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s) "
        "ON CONFLICT (company_id, user_id) DO NOTHING",
        (DEMO_COMPANY_ID, row[0], role),
    )


def seed_demo(conn: psycopg.Connection[Any]) -> SeedResult:
    """Create the demo company, its owner and admin, and a handful of creators, once."""
    with tenant_transaction(conn, DEMO_COMPANY_ID):
        cur = conn.cursor(row_factory=tuple_row)
        created = (
            cur.execute(
                "INSERT INTO companies (id, name, slug, branding) VALUES (%s, %s, %s, %s::jsonb) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    DEMO_COMPANY_ID,
                    DEMO_COMPANY["name"],
                    DEMO_COMPANY["slug"],
                    Jsonb(DEMO_BRANDING),
                ),
            ).fetchone()
            is not None
        )
        for subject, email, name, role in (DEMO_OWNER, DEMO_ADMIN):
            _upsert_user(conn, subject, email, name, role)
        for twitch_id, login, display in DEMO_CREATORS:
            cur.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (company_id, twitch_user_id) DO NOTHING",
                (DEMO_COMPANY_ID, twitch_id, login, display),
            )
        if created:
            audit.record(
                conn,
                DEMO_COMPANY_ID,
                _SEEDER,
                action="company.create",
                target_type="company",
                target_id=str(DEMO_COMPANY_ID),
                after={**DEMO_COMPANY, "creators": [c[1] for c in DEMO_CREATORS]},
            )
    return SeedResult(DEMO_COMPANY_ID, DEMO_ADMIN[0], created)


DEMO_CHANNEL_NAME = "Demo alerts (local sink)"


def seed_alert_channel(conn: psycopg.Connection[Any], sink_url: str, keys: str) -> bool:
    """A Discord-shaped channel of the demo company posting to the local notification sink,
    so incidents land somewhere visible; once (True when it was created now)."""
    from controlroom.adapters.secretbox import Keyring
    from controlroom.usecases import notifications

    url = f"{sink_url.rstrip('/')}/discord/demo-alerts"
    channel_id = uuid.uuid4()
    sealed = Keyring.parse(keys).seal(DEMO_COMPANY_ID, channel_id, url)
    with tenant_transaction(conn, DEMO_COMPANY_ID):
        cur = conn.cursor(row_factory=tuple_row)
        if cur.execute(
            "SELECT 1 FROM notification_channels WHERE company_id = %s AND name = %s",
            (DEMO_COMPANY_ID, DEMO_CHANNEL_NAME),
        ).fetchone():
            return False
        cur.execute(
            "INSERT INTO notification_channels (company_id, id, kind, name, sealed_url, "
            "wrapped_key, key_id, url_hint, min_severity) "
            "VALUES (%s, %s, 'discord', %s, %s, %s, %s, %s, 'info')",
            (
                DEMO_COMPANY_ID,
                channel_id,
                DEMO_CHANNEL_NAME,
                sealed.sealed_url,
                sealed.wrapped_key,
                sealed.key_id,
                notifications.url_hint(url),
            ),
        )
        audit.record(
            conn,
            DEMO_COMPANY_ID,
            _SEEDER,
            action="notification_channel.create",
            target_type="notification_channel",
            target_id=str(channel_id),
            after={"kind": "discord", "name": DEMO_CHANNEL_NAME, "min_severity": "info"},
        )
    return True
