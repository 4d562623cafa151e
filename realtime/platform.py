"""The platform operators' API under /api/platform: companies' lifecycle and the platform audit.

Callers present a platform token (audience "controlroom-platform", verified by
`verifier.verify_platform`) and must still be listed in platform_operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from controlroom.core.identity import PlatformCaller
from controlroom.errors import AuthError, ForbiddenError, UnauthorizedError
from controlroom.settings import TenancySettings
from controlroom.usecases import companies
from realtime.schemas import ErrorOut, Strict

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 503)
}
router = APIRouter(prefix="/api/platform", tags=["platform"], responses=_ERRORS)


@dataclass(frozen=True)
class _Operator:
    caller: PlatformCaller
    conn: psycopg.AsyncConnection[Any]


async def _operator(request: Request) -> AsyncIterator[_Operator]:
    """A verified platform token (before any connection is taken), then a check that its
    subject is still a listed operator, on the connection that then serves the route."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("a bearer token is required")
    verify = getattr(request.app.state.verifier, "verify_platform", None)
    if verify is None:
        raise UnauthorizedError("platform tokens are not accepted here")
    try:
        caller: PlatformCaller = await asyncio.to_thread(verify, token.strip())
    except AuthError as exc:
        raise UnauthorizedError(str(exc)) from None
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(request.app.state.pool.connection())
        if not await companies.is_operator(conn, caller.subject):
            raise ForbiddenError("not a platform operator")
        yield _Operator(caller, conn)


Operator = Annotated[_Operator, Depends(_operator)]


class PlatformCompanyOut(BaseModel):
    id: str
    name: str
    slug: str
    status: Literal["active", "suspended", "deleting"]
    status_changed_at: datetime | None
    delete_after: datetime | None
    created_at: datetime


class CompanyCreateIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    owner_email: str = Field(min_length=3, max_length=320)
    slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


class CompanyCreated(BaseModel):
    company: PlatformCompanyOut
    invitation_url: str  # the owner's link, shown once (also mailed when SMTP is configured)
    mailed: bool


class PlatformAuditEntry(BaseModel):
    id: int
    occurred_at: datetime
    actor: str
    action: str
    company_id: str | None
    detail: dict[str, Any]


class PlatformAuditPage(BaseModel):
    items: list[PlatformAuditEntry]
    next_before_id: int | None


def _actor(op: _Operator) -> str:
    return op.caller.email or op.caller.subject


@router.get("/companies", response_model=list[PlatformCompanyOut])
async def list_companies(op: Operator) -> list[dict[str, Any]]:
    return await companies.list_companies(op.conn)


@router.post("/companies", response_model=CompanyCreated, status_code=201)
async def create_company(body: CompanyCreateIn, op: Operator, request: Request) -> dict[str, Any]:
    tenancy: TenancySettings = request.app.state.tenancy
    created = await companies.create(
        op.conn,
        _actor(op),
        body.name,
        body.owner_email,
        body.slug,
        public_url=tenancy.public_url,
        invitation_ttl_days=tenancy.invitation_ttl_days,
        mailer=request.app.state.mailer,
    )
    return {
        "company": created.company,
        "invitation_url": created.invitation_url,
        "mailed": created.mailed,
    }


@router.get("/companies/{company_id}", response_model=PlatformCompanyOut)
async def get_company(company_id: uuid.UUID, op: Operator) -> dict[str, Any]:
    return await companies.get_company(op.conn, company_id)


@router.post("/companies/{company_id}/suspend", response_model=PlatformCompanyOut)
async def suspend(company_id: uuid.UUID, op: Operator) -> dict[str, Any]:
    return await companies.suspend(op.conn, _actor(op), company_id)


@router.post("/companies/{company_id}/resume", response_model=PlatformCompanyOut)
async def resume(company_id: uuid.UUID, op: Operator) -> dict[str, Any]:
    return await companies.resume(op.conn, _actor(op), company_id)


@router.delete("/companies/{company_id}", response_model=PlatformCompanyOut, status_code=202)
async def delete(company_id: uuid.UUID, op: Operator, request: Request) -> dict[str, Any]:
    tenancy: TenancySettings = request.app.state.tenancy
    return await companies.schedule_delete(
        op.conn, _actor(op), company_id, tenancy.delete_grace_days
    )


@router.post("/companies/{company_id}/restore", response_model=PlatformCompanyOut)
async def restore(company_id: uuid.UUID, op: Operator) -> dict[str, Any]:
    return await companies.restore(op.conn, _actor(op), company_id)


@router.get("/audit", response_model=PlatformAuditPage)
async def platform_audit(
    op: Operator,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    company_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return await companies.platform_audit_page(op.conn, before_id, limit, company_id)
