"""Sign-in sessions: one refresh-token family per sign-in, rotated on each use (a token used
twice revokes its whole family), the companies a person may act in, and which one they chose."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from controlroom.core.identity import Person
from controlroom.errors import AuthError, ForbiddenError, SuspendedError
from controlroom.logs import fields

log = logging.getLogger(__name__)

REFRESH_TOKEN_BYTES = 32


def token_hash(token: str) -> bytes:
    """What the database keeps of a refresh token: its SHA-256 (the token is 256 random bits,
    so a plain hash is enough; nothing here can be guessed or brute-forced)."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Membership:
    """A company the person belongs to, with their role and the company's status."""

    company_id: uuid.UUID
    name: str
    slug: str
    status: str  # active | suspended | deleting
    role: str

    def public(self, *, with_status: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.company_id),
            "name": self.name,
            "slug": self.slug,
            "role": self.role,
        }
        if with_status:
            out["status"] = self.status
        return out


@dataclass(frozen=True)
class Session:
    """A sign-in: who, and the company they chose last (None before any choice)."""

    id: uuid.UUID
    person: Person
    company_id: uuid.UUID | None


@dataclass(frozen=True)
class Renewed:
    session: Session
    refresh_token: str  # the next one; the one presented is now used


def _new_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def _session(row: dict[str, Any]) -> Session:
    email = row["email"]
    return Session(
        id=row["id"],
        # only a verified email is ever stored (see `start`)
        person=Person(
            issuer=row["issuer"],
            subject=row["subject"],
            email=email,
            email_verified=email is not None,
            display_name=row["display_name"],
        ),
        company_id=row["company_id"],
    )


async def start(
    conn: psycopg.AsyncConnection[Any], person: Person, ttl_seconds: int
) -> tuple[Session, str]:
    """A new sign-in session and its first refresh token (returned once; only its hash is kept).

    The email is stored only when the provider vouches for it: invitations and platform
    operators are matched by verified email, never by one a person merely typed."""
    token = _new_token()
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO sign_in_sessions (issuer, subject, email, display_name, expires_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (person.issuer, person.subject, person.verified_email, person.display_name, expires),
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id) VALUES (%s, %s)",
            (token_hash(token), row["id"]),
        )
    log.info("signed in", extra=fields(session_id=str(row["id"])))
    return _session(row), token


async def rotate(conn: psycopg.AsyncConnection[Any], token: object) -> Renewed:
    """The session behind a refresh token, and its next token; the presented one is used up.

    A token presented a second time means two parties hold it (a thief, or a thief's victim):
    the whole family is revoked, the newer tokens included, and both are signed out."""
    if not isinstance(token, str) or not 20 <= len(token) <= 200:
        raise AuthError("not signed in")
    reused: uuid.UUID | None = None
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT s.*, t.used_at FROM refresh_tokens t "
            "JOIN sign_in_sessions s ON s.id = t.session_id "
            "WHERE t.token_hash = %s FOR UPDATE OF t, s",
            (token_hash(token),),
        )
        row = await cur.fetchone()
        if row is None:
            raise AuthError("not signed in")
        if row["revoked_at"] is not None or row["expires_at"] <= datetime.now(UTC):
            raise AuthError("signed out; sign in again")
        if row["used_at"] is not None:
            reused = row["id"]
            await conn.execute(
                "UPDATE sign_in_sessions SET revoked_at = now(), "
                "revoked_reason = 'refresh token reused' WHERE id = %s",
                (reused,),
            )
        else:
            fresh = _new_token()
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s",
                (token_hash(token),),
            )
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id) VALUES (%s, %s)",
                (token_hash(fresh), row["id"]),
            )
            await conn.execute(
                "UPDATE sign_in_sessions SET last_used_at = now() WHERE id = %s", (row["id"],)
            )
    if reused is not None:  # raised after the revocation committed
        log.warning("refresh token reused; session revoked", extra=fields(session_id=str(reused)))
        raise AuthError("refresh token reused; signed out")
    return Renewed(_session(row), fresh)


async def current(conn: psycopg.AsyncConnection[Any], token: object) -> Session:
    """The session a refresh token stands for, without rotating it (the token must be the
    family's newest and the session live): for calls that act as the signed-in person."""
    if not isinstance(token, str) or not 20 <= len(token) <= 200:
        raise AuthError("not signed in")
    cur = await conn.execute(
        "SELECT s.* FROM refresh_tokens t JOIN sign_in_sessions s ON s.id = t.session_id "
        "WHERE t.token_hash = %s AND t.used_at IS NULL AND s.revoked_at IS NULL "
        "AND s.expires_at > now()",
        (token_hash(token),),
    )
    row = await cur.fetchone()
    if row is None:
        raise AuthError("not signed in")
    return _session(row)


async def revoke(
    conn: psycopg.AsyncConnection[Any], token: object, reason: str = "signed out"
) -> bool:
    """Sign-out: the session of this refresh token is revoked (every token of its family)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 200:
        return False
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE sign_in_sessions SET revoked_at = now(), revoked_reason = %s "
            "WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = %s) "
            "AND revoked_at IS NULL RETURNING id",
            (reason, token_hash(token)),
        )
        row = await cur.fetchone()
    if row is not None:
        log.info("signed out", extra=fields(session_id=str(row["id"])))
    return row is not None


async def memberships(conn: psycopg.AsyncConnection[Any], subject: str) -> list[Membership]:
    """Every company this person is a member of (any status), by name."""
    cur = await conn.execute(
        "SELECT company_id, company_name, company_slug, company_status, role "
        "FROM memberships_of(%s)",
        (subject,),
    )
    return [
        Membership(
            r["company_id"], r["company_name"], r["company_slug"], r["company_status"], r["role"]
        )
        for r in await cur.fetchall()
    ]


def choose(
    found: list[Membership], requested: uuid.UUID | None, remembered: uuid.UUID | None
) -> Membership | None:
    """The company to act in: the one asked for (a member of it, and active), else the last
    choice if still usable, else the only active one; several and no choice → None."""
    by_id = {m.company_id: m for m in found}
    if requested is not None:
        chosen = by_id.get(requested)
        if chosen is None:
            raise ForbiddenError("not a member of this company")
        if chosen.status != "active":
            raise SuspendedError("this company is suspended")
        return chosen
    last = by_id.get(remembered) if remembered is not None else None
    if last is not None and last.status == "active":
        return last
    active = [m for m in found if m.status == "active"]
    return active[0] if len(active) == 1 else None


async def remember(
    conn: psycopg.AsyncConnection[Any], session_id: uuid.UUID, company_id: uuid.UUID | None
) -> None:
    """Keep the company chosen, so the next visit starts there."""
    await conn.execute(
        "UPDATE sign_in_sessions SET company_id = %s WHERE id = %s", (company_id, session_id)
    )
