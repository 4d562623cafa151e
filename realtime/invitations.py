"""The invitations API under /api/invitations: owners and admins invite, list and revoke."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from controlroom.settings import TenancySettings
from controlroom.usecases import invitations
from realtime.routes import Conn, Who
from realtime.schemas import ErrorOut, Role, Strict

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 503)
}
router = APIRouter(prefix="/api/invitations", tags=["invitations"], responses=_ERRORS)


class InvitationOut(BaseModel):
    id: str
    email: str
    role: Role
    status: Literal["pending", "accepted", "revoked", "expired"]
    created_at: datetime
    expires_at: datetime
    invited_by_subject: str
    accepted_at: datetime | None


class InvitationCreated(InvitationOut):
    url: str  # shown once: only its hash is stored
    mailed: bool  # False when no mail server is configured or it refused the message


class InvitationIn(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: Role


@router.get("", response_model=list[InvitationOut])
async def list_invitations(conn: Conn, who: Who) -> list[dict[str, Any]]:
    return await invitations.list_invitations(conn, who)


@router.post("", response_model=InvitationCreated, status_code=201)
async def create_invitation(
    body: InvitationIn, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    tenancy: TenancySettings = request.app.state.tenancy
    return await invitations.create(
        conn,
        who,
        email=body.email,
        role=body.role,
        public_url=tenancy.public_url,
        ttl_days=tenancy.invitation_ttl_days,
        mailer=request.app.state.mailer,
    )


@router.delete("/{invitation_id}", status_code=204, response_class=Response)
async def revoke_invitation(invitation_id: uuid.UUID, conn: Conn, who: Who) -> Response:
    await invitations.revoke(conn, who, invitation_id)
    return Response(status_code=204)
