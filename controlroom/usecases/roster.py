"""A company's creators: listing with live state, adding, labelling, removing (audited)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core import scopes
from controlroom.core.events import CREATOR_STATE_COLUMNS
from controlroom.core.roles import Caller
from controlroom.errors import ConflictError, InvalidError, NotFoundError
from controlroom.usecases import audit

LOGIN = re.compile(r"[a-z0-9_]{1,25}")
_COLUMNS = f"{CREATOR_STATE_COLUMNS}, labels, notes, created_at, viewers, viewers_at"


def _actor(caller: Caller) -> audit.Actor:
    return audit.Actor(caller.subject, caller.user_id)


def _public(
    row: dict[str, Any],
    grant: dict[str, Any] | None = None,
    subscriptions: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A creators row as the API shows it, with what the broadcaster granted our Twitch client
    and how its subscriptions fare, in labels ("follows", "bits", ...)."""
    # this company's row remembers a revocation too (ingestion); the later fact wins
    revoked = [
        t for t in (row.pop("authorization_revoked_at"), (grant or {}).get("revoked_at")) if t
    ]
    granted_at = (grant or {}).get("granted_at")
    avatar_url = row.pop("profile_image_url", None)
    preview_url = row.pop("preview_url", None) if row.get("status") == "live" else None
    status = scopes.authorization_status(
        (grant or {}).get("scopes"), granted_at, max(revoked) if revoked else None
    )
    return {
        **row,
        "id": str(row["id"]),
        "avatar_url": avatar_url,
        "preview_url": preview_url,
        "authorization_revoked": status == "disconnected",
        "authorization": {
            "status": status,
            "scopes": sorted((grant or {}).get("scopes") or []),
            "granted_at": granted_at,
            "revoked_at": max(revoked) if revoked else None,
        },
        "subscriptions": scopes.health(subscriptions or []),
    }


async def _with_health(
    conn: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`_public` for rows read in the current tenant transaction (RLS shows the platform rows
    of the broadcasters this company watches)."""
    if not rows:
        return []
    ids = [r["twitch_user_id"] for r in rows]
    cur = await conn.execute(
        "SELECT broadcaster_user_id, scopes, granted_at, revoked_at FROM twitch_authorizations "
        "WHERE broadcaster_user_id = ANY(%s)",
        (ids,),
    )
    grants = {g["broadcaster_user_id"]: g for g in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT broadcaster_user_id, type, status FROM eventsub_subscriptions "
        "WHERE broadcaster_user_id = ANY(%s)",
        (ids,),
    )
    subs: dict[str, list[tuple[str, str]]] = {}
    for s in await cur.fetchall():
        subs.setdefault(s["broadcaster_user_id"], []).append((s["type"], s["status"]))
    return [
        _public(r, grants.get(r["twitch_user_id"]), subs.get(r["twitch_user_id"])) for r in rows
    ]


async def list_creators(conn: psycopg.AsyncConnection[Any], caller: Caller) -> list[dict[str, Any]]:
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM creators ORDER BY display_name, id")  # noqa: S608
        return await _with_health(conn, list(await cur.fetchall()))


async def get_creator(
    conn: psycopg.AsyncConnection[Any], caller: Caller, creator_id: uuid.UUID
) -> dict[str, Any]:
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM creators WHERE id = %s", (creator_id,))  # noqa: S608
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("no such creator")
        return (await _with_health(conn, [row]))[0]


async def add_creator(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    *,
    twitch_user_id: str,
    login: str,
    display_name: str,
    labels: list[str],
    profile_image_url: str | None = None,
) -> dict[str, Any]:
    """Adds a creator; `profile_image_url` is Get Users' (already checked against the image
    origin by the adapter), so the avatar shows before the pulse's first daily refresh."""
    caller.require("admin")
    if not LOGIN.fullmatch(login):
        raise InvalidError("login must be 1-25 of a-z, 0-9 and _")
    if not twitch_user_id.isdigit() or len(twitch_user_id) > 20:
        raise InvalidError("twitch_user_id must be digits")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name, labels, "  # noqa: S608 - constant columns
            "profile_image_url, images_checked_at) VALUES (%s, %s, %s, %s, %s, %s, "
            "CASE WHEN %s THEN now() END) ON CONFLICT (company_id, twitch_user_id) DO NOTHING "
            f"RETURNING {_COLUMNS}",
            (
                caller.company,
                twitch_user_id,
                login,
                display_name,
                labels,
                profile_image_url,
                profile_image_url is not None,
            ),
        )
        row = await cur.fetchone()
        if row is None:
            raise ConflictError("this creator is already on the roster")
        (created,) = await _with_health(conn, [row])
        await audit.record_async(
            conn,
            caller.company,
            _actor(caller),
            action="creator.add",
            target_type="creator",
            target_id=created["id"],
            after={"twitch_user_id": twitch_user_id, "login": login},
        )
    return created


async def update_creator(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    creator_id: uuid.UUID,
    *,
    labels: list[str] | None,
    notes: str | None,
) -> dict[str, Any]:
    caller.require("admin")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            "SELECT labels, notes FROM creators WHERE id = %s FOR UPDATE", (creator_id,)
        )
        before = await cur.fetchone()
        if before is None:
            raise NotFoundError("no such creator")
        cur = await conn.execute(
            "UPDATE creators SET labels = coalesce(%s, labels), notes = coalesce(%s, notes) "  # noqa: S608 - constant columns
            f"WHERE id = %s RETURNING {_COLUMNS}",
            (labels, notes, creator_id),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit.record_async(
            conn,
            caller.company,
            _actor(caller),
            action="creator.update",
            target_type="creator",
            target_id=str(creator_id),
            before=before,
            after={"labels": row["labels"], "notes": row["notes"]},
        )
        (updated,) = await _with_health(conn, [row])
    return updated


async def remove_creator(
    conn: psycopg.AsyncConnection[Any], caller: Caller, creator_id: uuid.UUID
) -> dict[str, Any]:
    caller.require("admin")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            "DELETE FROM creators WHERE id = %s RETURNING twitch_user_id, twitch_login",
            (creator_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("no such creator")
        await audit.record_async(
            conn,
            caller.company,
            _actor(caller),
            action="creator.remove",
            target_type="creator",
            target_id=str(creator_id),
            before=row,
        )
    return dict(row)


async def unhealthy_subscriptions(
    conn: psycopg.AsyncConnection[Any], caller: Caller
) -> list[dict[str, Any]]:
    """EventSub subscriptions of this company's creators that are not delivering."""
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            "SELECT c.id AS creator_id, s.type, s.status, s.updated_at "
            "FROM eventsub_subscriptions s JOIN creators c "
            "ON c.twitch_user_id = s.broadcaster_user_id "
            "WHERE s.status <> 'enabled' ORDER BY c.id, s.type"
        )
        return [{**r, "creator_id": str(r["creator_id"])} for r in await cur.fetchall()]
