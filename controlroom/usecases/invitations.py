"""Invitations: single-use, expiring links that make a signed-in person a member (audited).

Only the SHA-256 of a link's secret is stored. A link is `<PUBLIC_URL>/#invite=<company>.<token>`:
the company names the tenant to look in (rows are found under its row-level security only),
the token proves the link. Accepting binds the person's identity-provider subject to a new
member, when their verified email is the invited one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any, Protocol

import psycopg
from psycopg import sql

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core.identity import Person
from controlroom.core.roles import ROLES, Caller
from controlroom.errors import (
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    SuspendedError,
    UnavailableError,
)
from controlroom.logs import fields
from controlroom.usecases import audit, members

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_STATUS = (
    "CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted' "
    "WHEN i.revoked_at IS NOT NULL THEN 'revoked' "
    "WHEN i.expires_at <= now() THEN 'expired' ELSE 'pending' END"
)
# composed into statements below, never from input
_COLS = sql.SQL(
    "i.id, i.email, i.role, i.created_at, i.expires_at, i.invited_by_subject, i.accepted_at, "
    "i.revoked_at, " + _STATUS + " AS status"
)


class Mailer(Protocol):
    """What sends mail (controlroom.adapters.mail.SmtpMailer, or a fake in unit tests)."""

    def send(self, to: str, subject: str, text: str) -> None: ...


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def link(public_url: str, company: uuid.UUID, token: str) -> str:
    return f"{public_url.rstrip('/')}/#invite={company}.{token}"


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not (3 <= len(value) <= 320) or not _EMAIL.fullmatch(value):
        raise InvalidError("not an email address")
    return value


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "invited_by_subject": row["invited_by_subject"],
        "accepted_at": row["accepted_at"],
    }


async def issue(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    *,
    email: str,
    role: str,
    invited_by: audit.Actor,
    ttl_days: int,
) -> tuple[dict[str, Any], str]:
    """Store a new invitation inside the caller's transaction (tenant set) and audit it;
    returns the invitation and its secret token (shown once, never stored)."""
    if role not in ROLES:
        raise InvalidError(f"role must be one of {', '.join(ROLES)}")
    address = normalize_email(email)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    cur = await conn.execute(
        sql.SQL(
            "INSERT INTO invitations AS i (company_id, email, role, token_hash, "
            "invited_by_subject, expires_at) VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING {}"
        ).format(_COLS),
        (company, address, role, token_hash(token), invited_by.subject, timedelta(days=ttl_days)),
    )
    row = await cur.fetchone()
    assert row is not None
    await audit.record_async(
        conn,
        company,
        invited_by,
        action="invitation.create",
        target_type="invitation",
        target_id=str(row["id"]),
        after={"email": address, "role": role, "expires_at": row["expires_at"]},
    )
    return _public(row), token


def mail_invitation(
    mailer: Mailer | None, email: str, company_name: str, role: str, url: str
) -> bool:
    """Send the link; False (and a warning) when no mail server is configured or it refused:
    the link is still shown to whoever created the invitation."""
    if mailer is None:
        return False
    text = (
        f"You are invited to join {company_name} on Creator Control Room as {role}.\n\n"
        f"Open this link and sign in with this email address ({email}) to accept:\n\n"
        f"{url}\n\n"
        "The link works once and expires; if you did not expect it, ignore this message.\n"
    )
    try:
        mailer.send(email, f"Join {company_name} on Creator Control Room", text)
    except UnavailableError:
        return False
    return True


async def create(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    *,
    email: str,
    role: str,
    public_url: str,
    ttl_days: int,
    mailer: Mailer | None = None,
) -> dict[str, Any]:
    """An owner or admin invites someone with a role they may manage (members' rule)."""
    if role not in ROLES:
        raise InvalidError(f"role must be one of {', '.join(ROLES)}")
    members.may_manage(caller, role)
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute("SELECT name FROM companies")
        company = await cur.fetchone()
        if company is None:
            raise NotFoundError("no such company")
        invitation, token = await issue(
            conn,
            caller.company,
            email=email,
            role=role,
            invited_by=audit.Actor(caller.subject, caller.user_id),
            ttl_days=ttl_days,
        )
    url = link(public_url, caller.company, token)
    mailed = await asyncio.to_thread(
        mail_invitation, mailer, invitation["email"], company["name"], role, url
    )
    return {**invitation, "url": url, "mailed": mailed}


async def list_invitations(
    conn: psycopg.AsyncConnection[Any], caller: Caller
) -> list[dict[str, Any]]:
    caller.require("admin")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            sql.SQL(
                "SELECT {} FROM invitations i ORDER BY i.created_at DESC, i.id LIMIT 500"
            ).format(_COLS)
        )
        return [_public(r) for r in await cur.fetchall()]


async def revoke(
    conn: psycopg.AsyncConnection[Any], caller: Caller, invitation_id: uuid.UUID
) -> None:
    """Revoke a pending invitation (revoking a revoked one changes nothing)."""
    caller.require("admin")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM invitations i WHERE i.id = %s FOR UPDATE").format(_COLS),
            (invitation_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("no such invitation")
        members.may_manage(caller, row["role"])
        if row["status"] == "accepted":
            raise ConflictError("the invitation was accepted already")
        if row["status"] == "revoked":
            return
        await conn.execute(
            "UPDATE invitations SET revoked_at = now() WHERE id = %s", (invitation_id,)
        )
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="invitation.revoke",
            target_type="invitation",
            target_id=str(invitation_id),
            before={"email": row["email"], "role": row["role"], "status": row["status"]},
            after={"status": "revoked"},
        )


def _parse(company: uuid.UUID | str, token: str) -> tuple[uuid.UUID, bytes]:
    """A link's parts, or NotFoundError (a malformed link is as unknown as a wrong one)."""
    try:
        company_id = company if isinstance(company, uuid.UUID) else uuid.UUID(str(company))
    except ValueError:
        raise NotFoundError("no such invitation") from None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise NotFoundError("no such invitation")
    return company_id, token_hash(token)


async def preview(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID | str, token: str
) -> dict[str, Any]:
    """What a link offers, for the landing page: the company, the role, the invited email."""
    company_id, digest = _parse(company, token)
    async with tenant_transaction_async(conn, company_id):
        cur = await conn.execute(
            sql.SQL(
                "SELECT {}, c.name AS company_name, c.status AS company_status "
                "FROM invitations i JOIN companies c ON c.id = i.company_id "
                "WHERE i.token_hash = %s"
            ).format(_COLS),
            (digest,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such invitation")
    return {
        "company_id": str(company_id),
        "company_name": row["company_name"],
        "role": row["role"],
        "email": row["email"],
        "expires_at": row["expires_at"],
        "status": row["status"] if row["company_status"] == "active" else "unavailable",
    }


async def accept(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID | str, token: str, person: Person
) -> dict[str, Any]:
    """Make `person` a member with the invited role: once (the row is locked), before it
    expires, unless revoked, and only for the invited (verified) email. Audited `member.join`.
    Returns the company as sign-in shows it: {"id", "name", "slug", "role"}."""
    company_id, digest = _parse(company, token)
    async with tenant_transaction_async(conn, company_id):
        cur = await conn.execute(
            sql.SQL(
                "SELECT {}, c.name AS company_name, c.slug, c.status AS company_status "
                "FROM invitations i JOIN companies c ON c.id = i.company_id "
                "WHERE i.token_hash = %s FOR UPDATE OF i"
            ).format(_COLS),
            (digest,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("no such invitation")
        if row["status"] != "pending":
            raise GoneError(f"this invitation is {row['status']}")
        if row["company_status"] != "active":
            raise SuspendedError("company suspended")
        if person.verified_email is None or person.verified_email != row["email"].lower():
            raise ForbiddenError("this invitation is for another email address")
        cur = await conn.execute(
            "SELECT u.id, m.role FROM users u LEFT JOIN members m "
            "ON m.company_id = u.company_id AND m.user_id = u.id WHERE u.subject = %s",
            (person.subject,),
        )
        existing = await cur.fetchone()
        if existing is not None and existing["role"] is not None:
            raise ConflictError("already a member")
        if existing is None:
            cur = await conn.execute(
                "INSERT INTO users (company_id, subject, email, display_name) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (company_id, person.subject, person.verified_email, person.display_name),
            )
            created = await cur.fetchone()
            assert created is not None
            user_id = created["id"]
        else:
            user_id = existing["id"]
        await conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
            (company_id, user_id, row["role"]),
        )
        await conn.execute(
            "UPDATE invitations SET accepted_at = now(), accepted_user_id = %s WHERE id = %s",
            (user_id, row["id"]),
        )
        await audit.record_async(
            conn,
            company_id,
            audit.Actor(person.subject, user_id),
            action="member.join",
            target_type="member",
            target_id=str(user_id),
            after={"subject": person.subject, "role": row["role"], "invitation": str(row["id"])},
        )
    log.info("invitation accepted", extra=fields(company_id=str(company_id), role=row["role"]))
    return {
        "id": str(company_id),
        "name": row["company_name"],
        "slug": row["slug"],
        "role": row["role"],
    }
