"""A company's people and their roles; nobody removes or demotes the last owner (audited)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core.roles import ROLES, Caller, Claims, role_at_least
from controlroom.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
)
from controlroom.usecases import audit

if TYPE_CHECKING:  # the token verifier needs PyJWT, which only realtime ships
    from controlroom.adapters.tokens import TokenVerifier

Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]

_MEMBERS = "FROM members m JOIN users u ON u.company_id = m.company_id AND u.id = m.user_id"
_SELECT = (
    f"SELECT u.id AS user_id, u.subject, u.email, u.display_name, m.role, m.created_at {_MEMBERS}"
)


def may_manage(caller: Caller, role: str) -> None:
    """Owners manage anyone; admins manage roles below admin; nobody else manages people."""
    if caller.role == "owner":
        return
    if caller.role == "admin" and not role_at_least(role, "admin"):
        return
    raise ForbiddenError("your role cannot manage this member")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "user_id": str(row["user_id"])}


async def caller_for(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, subject: str
) -> Caller | None:
    """The member with this subject and their role now, or None when they are not a member:
    the one membership lookup (the REST API and the relay both come through authenticate).
    AuthError when the company is suspended or being deleted."""
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            "SELECT u.id AS user_id, m.role, c.status "
            "FROM users u LEFT JOIN members m ON m.company_id = u.company_id AND m.user_id = u.id "
            "JOIN companies c ON c.id = u.company_id WHERE u.subject = %s",
            (subject,),
        )
        row = await cur.fetchone()
    if row is None or row["role"] is None:
        return None
    if row["status"] != "active":
        raise AuthError("company suspended")
    return Caller(company, row["user_id"], subject, row["role"])


@dataclass(frozen=True)
class CurrentMembers:
    """Who may watch a company now: nobody while it is suspended or being deleted."""

    subjects: frozenset[str]
    suspended: bool


async def current_members(conn: psycopg.AsyncConnection[Any], company: uuid.UUID) -> CurrentMembers:
    """The subjects of everyone who is a member of the company now, and whether it is
    suspended (then nobody is: the relay's reconcile tick closes their sockets, saying why)."""
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(
            "SELECT c.status, u.subject FROM companies c LEFT JOIN (members m JOIN users u "
            "ON u.company_id = m.company_id AND u.id = m.user_id) ON m.company_id = c.id "
            "WHERE c.id = %s",
            (company,),
        )
        rows = await cur.fetchall()
    suspended = not rows or rows[0]["status"] != "active"
    subjects = (
        frozenset() if suspended else frozenset(str(r["subject"]) for r in rows if r["subject"])
    )
    return CurrentMembers(subjects, suspended)


@dataclass(frozen=True)
class Authenticated:
    claims: Claims  # what the token says (its expiry included)
    caller: Caller  # who that is in the company now, with their current role


async def authenticate(
    verifier: TokenVerifier,
    connect: Connect,
    token: object,
    *,
    expect: Callable[[Claims], None] | None = None,
) -> Authenticated:
    """Token → verified claims → the current member and role, or AuthError.

    `expect` checks the claims before the database is asked (a refreshed token must be for
    the same person); `connect` is only entered once the token is good."""
    claims = await asyncio.to_thread(verifier.verify, token)
    if expect is not None:
        expect(claims)
    async with connect() as conn:
        caller = await caller_for(conn, claims.company_id, claims.subject)
    if caller is None:
        raise AuthError("not a member of this company")
    return Authenticated(claims, caller)


async def list_members(conn: psycopg.AsyncConnection[Any], caller: Caller) -> list[dict[str, Any]]:
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(f"{_SELECT} ORDER BY u.display_name, u.subject")
        return [_public(r) for r in await cur.fetchall()]


async def add_member(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    *,
    subject: str,
    email: str | None,
    display_name: str | None,
    role: str,
) -> dict[str, Any]:
    if role not in ROLES:
        raise InvalidError(f"role must be one of {', '.join(ROLES)}")
    may_manage(caller, role)
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute(
            "INSERT INTO users (company_id, subject, email, display_name) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (company_id, subject) DO NOTHING RETURNING id",
            (caller.company, subject, email, display_name),
        )
        user = await cur.fetchone()
        if user is None:
            raise ConflictError("a member with this subject exists")
        await conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
            (caller.company, user["id"], role),
        )
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="member.add",
            target_type="member",
            target_id=str(user["id"]),
            after={"subject": subject, "role": role},
        )
        cur = await conn.execute(f"{_SELECT} WHERE u.id = %s", (user["id"],))
        row = await cur.fetchone()
    assert row is not None
    return _public(row)


async def _current(conn: psycopg.AsyncConnection[Any], user_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(f"{_SELECT} WHERE u.id = %s FOR UPDATE OF m", (user_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such member")
    return dict(row)


async def _guard_last_owner(conn: psycopg.AsyncConnection[Any], current: dict[str, Any]) -> None:
    if current["role"] != "owner":
        return
    # lock every owner row so two concurrent demotions cannot both pass this check
    cur = await conn.execute("SELECT user_id FROM members WHERE role = 'owner' FOR UPDATE")
    if len(await cur.fetchall()) <= 1:
        raise ConflictError("a company keeps at least one owner")


async def change_role(
    conn: psycopg.AsyncConnection[Any], caller: Caller, user_id: uuid.UUID, role: str
) -> dict[str, Any]:
    if role not in ROLES:
        raise InvalidError(f"role must be one of {', '.join(ROLES)}")
    async with tenant_transaction_async(conn, caller.company):
        current = await _current(conn, user_id)
        may_manage(caller, current["role"])
        may_manage(caller, role)
        if role != "owner":
            await _guard_last_owner(conn, current)
        await conn.execute(
            "UPDATE members SET role = %s, updated_at = now() WHERE user_id = %s", (role, user_id)
        )
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="member.role",
            target_type="member",
            target_id=str(user_id),
            before={"role": current["role"]},
            after={"role": role},
        )
    return _public({**current, "role": role})


async def remove_member(
    conn: psycopg.AsyncConnection[Any], caller: Caller, user_id: uuid.UUID
) -> None:
    async with tenant_transaction_async(conn, caller.company):
        current = await _current(conn, user_id)
        may_manage(caller, current["role"])
        await _guard_last_owner(conn, current)
        await conn.execute("DELETE FROM members WHERE user_id = %s", (user_id,))
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="member.remove",
            target_type="member",
            target_id=str(user_id),
            before={"subject": current["subject"], "role": current["role"]},
        )
