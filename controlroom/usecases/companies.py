"""The tenant lifecycle, as platform operators run it: create a company with its first owner's
invitation, suspend, resume, delete after a grace period, restore, purge; the operators
themselves. Every action is recorded in the platform audit, which outlives the companies.

Platform work runs in a transaction that sets `app.platform = 'operator'` (migrations/0008):
the only context in which the runtime role sees every company and writes the platform audit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from controlroom.adapters.db import tenant_transaction
from controlroom.core.identity import Person
from controlroom.core.tenants import archive_prefixes, tenant_id
from controlroom.errors import ConflictError, InvalidError, NotFoundError, TenantError
from controlroom.logs import fields
from controlroom.usecases import audit, branding, invitations
from controlroom.usecases.invitations import Mailer

log = logging.getLogger(__name__)

_SET_PLATFORM = "SELECT set_config('app.platform', 'operator', true)"
_SET_TENANT = "SELECT set_config('app.company_id', %s, true)"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_COLUMNS = "id, name, slug, status, status_changed_at, delete_after, created_at"
_COLS = sql.SQL(_COLUMNS)  # composed into statements below, never from input
STATUSES = ("active", "suspended", "deleting")


def _idle(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise TenantError("a platform transaction needs a connection outside any transaction")


@asynccontextmanager
async def platform_transaction(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID | None = None
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """One unit of platform work; with `company`, that company's tenant rows are in reach
    too (creating a company writes its owner's invitation in the same transaction)."""
    _idle(conn)
    async with conn.transaction():
        await conn.execute(_SET_PLATFORM)
        if company is not None:
            await conn.execute(_SET_TENANT, (tenant_id(company),))
        yield conn


@contextmanager
def platform_transaction_sync(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The synchronous twin, for the purge (functions/archive and the CLI)."""
    _idle(conn)
    with conn.transaction():
        conn.execute(_SET_PLATFORM)
        yield conn


def _json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, default=str, sort_keys=True)


_AUDIT = "INSERT INTO platform_audit (actor, action, company_id, detail) VALUES (%s, %s, %s, %s)"


async def _audit(
    conn: psycopg.AsyncConnection[Any],
    actor: str,
    action: str,
    company: uuid.UUID | None,
    detail: dict[str, Any],
) -> None:
    await conn.execute(_AUDIT, (actor, action, company, _json(detail)))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in _COLUMNS.split(", ")}, "id": str(row["id"])}


def slug_for(name: str) -> str:
    """A slug from a company's name: lower case letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50].strip("-")
    return slug or "company"


@dataclass(frozen=True)
class Created:
    company: dict[str, Any]
    invitation: dict[str, Any]
    invitation_url: str
    mailed: bool = field(default=False)


async def create(
    conn: psycopg.AsyncConnection[Any],
    actor: str,
    name: str,
    owner_email: str,
    slug: str | None = None,
    *,
    public_url: str,
    invitation_ttl_days: int = 7,
    mailer: Mailer | None = None,
) -> Created:
    """A new active company and an owner invitation for `owner_email`, mailed when a mailer
    is given; the link is returned either way (the CLI prints it)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidError("name must be 1-200 characters")
    email = invitations.normalize_email(owner_email)
    if slug is not None and not _SLUG.fullmatch(slug):
        raise InvalidError("slug is lower case letters, digits and dashes (at most 63)")
    company_id = uuid.uuid4()
    async with platform_transaction(conn, company_id):
        chosen = slug or slug_for(name)
        cur = await conn.execute("SELECT 1 FROM companies WHERE slug = %s", (chosen,))
        if await cur.fetchone() is not None:
            if slug is not None:
                raise ConflictError("a company with this slug exists")
            chosen = f"{chosen[:54]}-{company_id.hex[:8]}"
        cur = await conn.execute(
            sql.SQL(
                "INSERT INTO companies (id, name, slug, status_changed_at) "
                "VALUES (%s, %s, %s, now()) RETURNING {}"
            ).format(_COLS),
            (company_id, name, chosen),
        )
        company = await cur.fetchone()
        assert company is not None
        invitation, token = await invitations.issue(
            conn,
            company_id,
            email=email,
            role="owner",
            invited_by=audit.Actor(actor),
            ttl_days=invitation_ttl_days,
        )
        await _audit(
            conn,
            actor,
            "company.create",
            company_id,
            {"name": name, "slug": chosen, "owner_email": email, "invitation": invitation["id"]},
        )
    url = invitations.link(public_url, company_id, token)
    mailed = await asyncio.to_thread(invitations.mail_invitation, mailer, email, name, "owner", url)
    log.info("company created", extra=fields(company_id=str(company_id), mailed=mailed))
    return Created(_public(company), invitation, url, mailed)


async def list_companies(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    async with platform_transaction(conn):
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM companies ORDER BY name, id").format(_COLS)
        )
        return [_public(r) for r in await cur.fetchall()]


async def get_company(conn: psycopg.AsyncConnection[Any], company: uuid.UUID) -> dict[str, Any]:
    async with platform_transaction(conn):
        cur = await conn.execute(
            sql.SQL("SELECT {} FROM companies WHERE id = %s").format(_COLS), (company,)
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such company")
    return _public(row)


async def _locked(conn: psycopg.AsyncConnection[Any], company: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM companies WHERE id = %s FOR UPDATE").format(_COLS), (company,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such company")
    return dict(row)


async def _set_status(
    conn: psycopg.AsyncConnection[Any],
    actor: str,
    current: dict[str, Any],
    *,
    action: str,
    status: str,
    delete_after: timedelta | None = None,
) -> dict[str, Any]:
    cur = await conn.execute(
        sql.SQL(
            "UPDATE companies SET status = %s, status_changed_at = now(), updated_at = now(), "
            "delete_after = CASE WHEN %s::interval IS NULL THEN NULL "
            "ELSE now() + %s::interval END WHERE id = %s RETURNING {}"
        ).format(_COLS),
        (status, delete_after, delete_after, current["id"]),
    )
    row = await cur.fetchone()
    assert row is not None
    detail = {"from": current["status"], "to": status}
    if row["delete_after"] is not None:
        detail["delete_after"] = row["delete_after"].isoformat()
    await _audit(conn, actor, action, current["id"], detail)
    log.info(
        "company status changed",
        extra=fields(company_id=str(current["id"]), status=status, action=action),
    )
    return _public(row)


async def suspend(
    conn: psycopg.AsyncConnection[Any], actor: str, company: uuid.UUID
) -> dict[str, Any]:
    """Sign-in, the API and sockets refuse its members; its creators' events are not stored."""
    async with platform_transaction(conn):
        current = await _locked(conn, company)
        if current["status"] == "suspended":
            return _public(current)
        if current["status"] == "deleting":
            raise ConflictError("the company is being deleted: restore it first")
        return await _set_status(conn, actor, current, action="company.suspend", status="suspended")


async def resume(
    conn: psycopg.AsyncConnection[Any], actor: str, company: uuid.UUID
) -> dict[str, Any]:
    async with platform_transaction(conn):
        current = await _locked(conn, company)
        if current["status"] == "active":
            return _public(current)
        if current["status"] == "deleting":
            raise ConflictError("the company is being deleted: restore it first")
        return await _set_status(conn, actor, current, action="company.resume", status="active")


async def schedule_delete(
    conn: psycopg.AsyncConnection[Any], actor: str, company: uuid.UUID, grace_days: int
) -> dict[str, Any]:
    """Status `deleting` (refused like a suspended company) until `grace_days` have passed;
    the purge then removes its rows and S3 objects. A second call keeps the first date."""
    if grace_days < 0:
        raise InvalidError("the grace period cannot be negative")
    async with platform_transaction(conn):
        current = await _locked(conn, company)
        if current["status"] == "deleting":
            return _public(current)
        return await _set_status(
            conn,
            actor,
            current,
            action="company.delete",
            status="deleting",
            delete_after=timedelta(days=grace_days),
        )


async def restore(
    conn: psycopg.AsyncConnection[Any], actor: str, company: uuid.UUID
) -> dict[str, Any]:
    """Undo a deletion within the grace period: back to the status it had before."""
    async with platform_transaction(conn):
        current = await _locked(conn, company)
        if current["status"] != "deleting":
            raise ConflictError("the company is not being deleted")
        cur = await conn.execute(
            "SELECT detail->>'from' AS previous FROM platform_audit "
            "WHERE company_id = %s AND action = 'company.delete' ORDER BY id DESC LIMIT 1",
            (company,),
        )
        found = await cur.fetchone()
        previous = found["previous"] if found and found["previous"] in STATUSES else "suspended"
        if previous == "deleting":
            previous = "suspended"
        return await _set_status(conn, actor, current, action="company.restore", status=previous)


# --- the purge (synchronous: functions/archive's scheduled run and the CLI) --------------
@dataclass
class PurgeSummary:
    purged: list[str] = field(default_factory=list)  # company ids
    rows: int = 0
    objects: int = 0
    failed: list[str] = field(default_factory=list)


def company_prefixes(company: uuid.UUID) -> tuple[tuple[str, ...], str]:
    """Where a company's objects live: its archive (a prefix per format) and its branding."""
    return archive_prefixes(company), branding.branding_prefix(company)


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix`; returns how many."""
    removed = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not keys:
            continue
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if answer.get("Errors"):
            raise RuntimeError(f"{len(answer['Errors'])} object(s) not deleted under {prefix}")
        removed += len(keys)
    return removed


def purge_due(
    conn: psycopg.Connection[Any],
    s3: Any,
    archive_bucket: str,
    branding_bucket: str | None,
    *,
    actor: str = "scheduler",
) -> PurgeSummary:
    """Remove every company whose grace period is over: its S3 objects first (so nothing is
    left that no row names), then its rows (`purge_company`), then a platform audit record.

    `conn` is an autocommit connection as the runtime role (each company is its own unit)."""
    summary = PurgeSummary()
    with platform_transaction_sync(conn):
        due = [
            r["id"]
            for r in conn.execute(
                "SELECT id FROM companies WHERE status = 'deleting' AND delete_after <= now() "
                "ORDER BY delete_after"
            ).fetchall()
        ]
    for company in due:
        try:
            events, logos = company_prefixes(company)
            objects = sum(delete_prefix(s3, archive_bucket, prefix) for prefix in events)
            if branding_bucket:
                objects += delete_prefix(s3, branding_bucket, logos)
            with platform_transaction_sync(conn):
                row = conn.execute("SELECT purge_company(%s) AS removed", (company,)).fetchone()
                removed = int(row["removed"]) if row else 0
                conn.execute(
                    _AUDIT,
                    (actor, "company.purge", company, _json({"rows": removed, "objects": objects})),
                )
        except Exception as exc:  # noqa: BLE001 - one company must not stop the others
            log.warning(
                "company purge failed",
                extra=fields(company_id=str(company), error=type(exc).__name__),
            )
            summary.failed.append(str(company))
            continue
        summary.purged.append(str(company))
        summary.rows += removed
        summary.objects += objects
        log.info(
            "company purged",
            extra=fields(company_id=str(company), rows=removed, objects=objects),
        )
    return summary


def tenant_row_count(conn: psycopg.Connection[Any], company: uuid.UUID) -> int:
    """How many rows the company still has in its tenant tables (a purge leaves none)."""
    with tenant_transaction(conn, company):
        row = conn.execute(
            "SELECT (SELECT count(*) FROM companies) + (SELECT count(*) FROM users) "
            "+ (SELECT count(*) FROM members) + (SELECT count(*) FROM creators) "
            "+ (SELECT count(*) FROM events) + (SELECT count(*) FROM invitations) "
            "+ (SELECT count(*) FROM audit_logs) AS n"
        ).fetchone()
    return int(row["n"]) if row else 0


# --- the platform audit and the operators ------------------------------------------------
async def platform_audit_page(
    conn: psycopg.AsyncConnection[Any],
    before_id: int | None = None,
    limit: int = 50,
    company: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The platform audit, newest first, keyset by id (optionally one company's)."""
    limit = max(1, min(limit, 200))
    async with platform_transaction(conn):
        cur = await conn.execute(
            "SELECT id, occurred_at, actor, action, company_id, detail FROM platform_audit "
            "WHERE (%s::bigint IS NULL OR id < %s) AND (%s::uuid IS NULL OR company_id = %s) "
            "ORDER BY id DESC LIMIT %s",
            (before_id, before_id, company, company, limit + 1),
        )
        rows = await cur.fetchall()
    items = [
        {**r, "company_id": str(r["company_id"]) if r["company_id"] else None} for r in rows[:limit]
    ]
    return {"items": items, "next_before_id": items[-1]["id"] if len(rows) > limit else None}


async def add_operator(conn: psycopg.AsyncConnection[Any], actor: str, email: str) -> bool:
    """List `email` as a platform operator (bound to a subject at their first sign-in);
    False when it was listed already."""
    address = invitations.normalize_email(email)
    async with platform_transaction(conn):
        cur = await conn.execute(
            "INSERT INTO platform_operators (email, added_by) VALUES (%s, %s) "
            "ON CONFLICT (email) DO NOTHING RETURNING email",
            (address, actor),
        )
        added = await cur.fetchone() is not None
        if added:
            await _audit(conn, actor, "operator.add", None, {"email": address})
    return added


async def operator_for(conn: psycopg.AsyncConnection[Any], person: Person) -> bool:
    """Whether this signed-in person is a platform operator. The first sign-in with a listed,
    verified email binds their subject; afterwards only that subject counts."""
    if await is_operator(conn, person.subject):
        return True
    email = person.verified_email
    if email is None:
        return False
    async with platform_transaction(conn):
        cur = await conn.execute(
            "UPDATE platform_operators SET subject = %s WHERE email = %s AND subject IS NULL "
            "RETURNING email",
            (person.subject, email),
        )
        bound = await cur.fetchone() is not None
        if bound:
            await _audit(
                conn, email, "operator.bind", None, {"email": email, "subject": person.subject}
            )
    return bound


async def is_operator(conn: psycopg.AsyncConnection[Any], subject: str) -> bool:
    """Whether `subject` is (still) a bound platform operator."""
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM platform_operators WHERE subject = %s", (subject,))
        return await cur.fetchone() is not None
