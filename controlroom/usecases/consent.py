"""A creator's consent: the connect link an admin sends (single use, expiring, audited), and
recording what the creator granted our Twitch client once Twitch has confirmed who they are.

A link is `<company id>.<secret>`; only the secret's hash is stored. The grant is platform
level (twitch_authorizations, through record_twitch_authorization); the link, the creator's
revocation flag and the audit row belong to the company that sent the link.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from controlroom.adapters.db import tenant_transaction_async
from controlroom.adapters.twitch_oauth import TokenInfo
from controlroom.core import scopes
from controlroom.core.events import CREATOR_STATE_COLUMNS, creator_state
from controlroom.core.roles import Caller
from controlroom.errors import ForbiddenError, GoneError, NotFoundError
from controlroom.logs import fields
from controlroom.usecases import audit

log = logging.getLogger(__name__)

# the scopes a consent asks for: every type the reconciler subscribes a broadcaster to
CONSENT_TYPES = tuple(t for t, needed in scopes.SCOPES.items() if needed)


@dataclass(frozen=True)
class Link:
    company: uuid.UUID
    secret: str

    @classmethod
    def parse(cls, value: str) -> Link:
        company, _, secret = value.partition(".")
        try:
            parsed = uuid.UUID(company)
        except ValueError:
            raise NotFoundError("this connect link is not valid") from None
        if not 20 <= len(secret) <= 100:
            raise NotFoundError("this connect link is not valid")
        return cls(parsed, secret)

    def __str__(self) -> str:
        return f"{self.company}.{self.secret}"

    @property
    def token_hash(self) -> bytes:
        return hashlib.sha256(self.secret.encode()).digest()


@dataclass(frozen=True)
class Opened:
    """What the public page may show about a valid link."""

    creator_id: uuid.UUID
    twitch_user_id: str
    login: str
    display_name: str
    company_name: str
    expires_at: datetime


async def create_link(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    creator_id: uuid.UUID,
    *,
    public_url: str,
    ttl_days: int,
) -> dict[str, Any]:
    """A new connect link for one creator of the caller's company (admins and owners)."""
    caller.require("admin")
    link = Link(caller.company, secrets.token_urlsafe(32))
    expires_at = datetime.now(UTC) + timedelta(days=ttl_days)
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute("SELECT id FROM creators WHERE id = %s", (creator_id,))
        if await cur.fetchone() is None:
            raise NotFoundError("no such creator")
        cur = await conn.execute(
            "INSERT INTO creator_connect_links "
            "(company_id, creator_id, token_hash, created_by_subject, expires_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (caller.company, creator_id, link.token_hash, caller.subject, expires_at),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="creator.connect_link",
            target_type="creator",
            target_id=str(creator_id),
            after={"link_id": str(row["id"]), "expires_at": expires_at.isoformat()},
        )
    return {"url": f"{public_url.rstrip('/')}/connect?link={link}", "expires_at": expires_at}


_OPEN = (
    "SELECT l.id, l.used_at, l.expires_at, c.id AS creator_id, c.twitch_user_id, "
    "c.twitch_login, c.display_name, co.name AS company_name, co.status AS company_status "
    "FROM creator_connect_links l "
    "JOIN creators c ON c.company_id = l.company_id AND c.id = l.creator_id "
    "JOIN companies co ON co.id = l.company_id "
    "WHERE l.token_hash = %s"
)


def _usable(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise NotFoundError("this connect link is not valid")
    if row["used_at"] is not None:
        raise GoneError("this connect link was already used; ask for a new one")
    if row["expires_at"] <= datetime.now(UTC) or row["company_status"] != "active":
        raise GoneError("this connect link has expired; ask for a new one")
    return row


async def open_link(conn: psycopg.AsyncConnection[Any], link: Link) -> Opened:
    """The creator a valid link is for; NotFoundError or GoneError (used, expired) otherwise."""
    async with tenant_transaction_async(conn, link.company):
        cur = await conn.execute(_OPEN, (link.token_hash,))
        row = _usable(await cur.fetchone())
    return Opened(
        creator_id=row["creator_id"],
        twitch_user_id=row["twitch_user_id"],
        login=row["twitch_login"],
        display_name=row["display_name"],
        company_name=row["company_name"],
        expires_at=row["expires_at"],
    )


async def complete(
    conn: psycopg.AsyncConnection[Any], link: Link, token: TokenInfo
) -> dict[str, Any]:
    """Record a consent Twitch confirmed: the token must belong to the link's creator.

    In one transaction: the grant (scopes, time), the link used, this company's revocation flag
    cleared, an audit row. Returns what the page shows (the creator, the labels granted and
    still missing) and the creator's live state for dashboards.
    """
    async with tenant_transaction_async(conn, link.company):
        cur = await conn.execute(_OPEN + " FOR UPDATE OF l", (link.token_hash,))
        row = _usable(await cur.fetchone())
        if token.user_id != row["twitch_user_id"]:
            log.warning(
                "consent refused: the Twitch account is not the link's creator",
                extra=fields(company_id=str(link.company), creator_id=str(row["creator_id"])),
            )
            raise ForbiddenError(
                f"you signed in to Twitch as {token.login or 'another account'}; this link is "
                f"for {row['display_name']}"
            )
        now = datetime.now(UTC)
        granted = sorted(set(token.scopes))
        await conn.execute(
            "SELECT record_twitch_authorization(%s, %s, %s)", (token.user_id, granted, now)
        )
        await conn.execute(
            "UPDATE creator_connect_links SET used_at = %s WHERE id = %s", (now, row["id"])
        )
        cur = await conn.execute(
            "UPDATE creators SET authorization_revoked_at = NULL WHERE id = %s "  # noqa: S608
            f"RETURNING {CREATOR_STATE_COLUMNS}",
            (row["creator_id"],),
        )
        state = await cur.fetchone()
        assert state is not None
        missing = scopes.missing(CONSENT_TYPES, granted)
        await audit.record_async(
            conn,
            link.company,
            audit.Actor(f"twitch:{token.user_id}"),
            action="creator.connect",
            target_type="creator",
            target_id=str(row["creator_id"]),
            after={"twitch_user_id": token.user_id, "scopes": granted, "missing": missing},
        )
    return {
        "creator_id": row["creator_id"],
        "display_name": row["display_name"],
        "company_name": row["company_name"],
        "granted": scopes.scope_labels(granted),
        "missing": missing,
        "state": creator_state(state),  # for the live push: no longer revoked
    }
