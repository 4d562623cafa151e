"""The REST routes under /api/, and the probes: thin translations to controlroom's use cases.

Each route takes what it needs through dependencies that read the app's state (set once by
`realtime.api.build_api`): the connection pool, the token verifier, the branding bucket, Helix
and the roster notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from controlroom import errors
from controlroom.adapters import helix, ratelimit
from controlroom.adapters.db import tenant_transaction_async
from controlroom.core.events import Topic
from controlroom.core.roles import Caller, Claims
from controlroom.errors import (
    AuthError,
    BadRequestError,
    InvalidError,
    NotFoundError,
    QueueUnavailableError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
)
from controlroom.usecases import audit, branding, history, members, roster
from realtime.schemas import (
    AckIn,
    AuditPage,
    Branding,
    ChainOut,
    CompanyOut,
    CompanyPatch,
    CreatorIn,
    CreatorOut,
    CreatorPatch,
    ErrorOut,
    EventsPage,
    LogoConfirmIn,
    LogoUploadIn,
    LogoUploadOut,
    MemberIn,
    MemberOut,
    MemberPatch,
    MeOut,
    Ok,
    SubscriptionHealth,
    check_strings,
    error_response,
)

log = logging.getLogger("realtime.api")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
router = APIRouter(prefix="/api", responses=_ERRORS)
probes = APIRouter()

ReadyCheck = Callable[[], Awaitable[None]]
RosterChanged = Callable[[str], None]


@dataclass(frozen=True)
class Bucket:
    """Where logos live: an S3 client and the branding bucket's name."""

    client: Any
    name: str


# --- dependencies: what a route needs, from the app's state ------------------------------
@dataclass(frozen=True)
class _Session:
    caller: Caller
    conn: psycopg.AsyncConnection[Any]


async def _session(request: Request) -> AsyncIterator[_Session]:
    """The verified caller and the request's pooled connection, in that order: the token is
    checked before the pool is asked, so a forged or unknown-kid token never holds a
    connection. Between the two, the subject's rate limit (RateLimitedError, 429). The
    connection taken for the membership lookup then serves the route."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("a bearer token is required")
    limits: ratelimit.Limits | None = getattr(request.app.state, "limits", None)
    per_subject = limits.api_subject if limits is not None else None
    async with contextlib.AsyncExitStack() as stack:
        held: list[psycopg.AsyncConnection[Any]] = []
        verified: list[Claims] = []

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
            if per_subject is not None and verified:  # the token is good: whose bucket
                decision = await per_subject.check(verified[0].subject)
                if not decision.allowed:
                    raise RateLimitedError(decision.retry_after)
            held.append(await stack.enter_async_context(request.app.state.pool.connection()))
            yield held[0]

        try:
            who = await members.authenticate(
                request.app.state.verifier, connect, token.strip(), expect=verified.append
            )
        except AuthError as exc:
            raise UnauthorizedError(str(exc)) from None
        yield _Session(who.caller, held[0])


_Authenticated = Annotated[_Session, Depends(_session)]


async def _caller(session: _Authenticated) -> Caller:
    return session.caller


async def _connection(session: _Authenticated) -> psycopg.AsyncConnection[Any]:
    return session.conn


# Every route that takes Conn also takes Who; either one authenticates first (FastAPI runs
# `_session` once per request, whichever parameter asks for it first).
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(_connection)]
Who = Annotated[Caller, Depends(_caller)]


def _logos(request: Request) -> Bucket:
    bucket: Bucket = request.app.state.logos
    return bucket


Logos = Annotated[Bucket, Depends(_logos)]


def _twitch(request: Request) -> helix.Helix | None:
    twitch: helix.Helix | None = request.app.state.twitch
    return twitch


Twitch = Annotated[helix.Helix | None, Depends(_twitch)]


def _roster_changed(request: Request) -> RosterChanged | None:
    notify: RosterChanged | None = request.app.state.roster_changed
    return notify


Notify = Annotated[RosterChanged | None, Depends(_roster_changed)]


class TwitchNotConfiguredError(InvalidError):
    def __init__(self) -> None:
        super().__init__("twitch_user_id is required while Twitch is not configured")


class CursorConflictError(BadRequestError):
    def __init__(self) -> None:
        super().__init__("use before_seq or after_seq, not both")


async def _company_out(
    conn: psycopg.AsyncConnection[Any], who: Caller, logos: Bucket
) -> CompanyOut:
    company = await branding.get_company(conn, who)
    logo = branding.logo_url(logos.client, logos.name, company["branding"].get("logo_key"))
    return CompanyOut(
        id=company["id"],
        name=company["name"],
        slug=company["slug"],
        branding=Branding(**{**company["branding"], "logo_url": logo}),
        time_zone=company["time_zone"],
    )


async def _notify_roster(roster_changed: RosterChanged | None, reason: str) -> None:
    # the reconciler makes Twitch send (or stop sending) this creator's events
    if roster_changed is None:
        return
    try:
        await asyncio.to_thread(roster_changed, reason)
    except QueueUnavailableError:
        log.warning("subscription reconcile not requested; the schedule will catch up")


# --- the company ---------------------------------------------------------------------------
@router.get("/me", response_model=MeOut)
async def me(conn: Conn, who: Who, logos: Logos) -> MeOut:
    return MeOut(
        user_id=str(who.user_id),
        subject=who.subject,
        role=who.role,  # type: ignore[arg-type]
        company=await _company_out(conn, who, logos),
    )


@router.get("/company", response_model=CompanyOut)
async def get_company(conn: Conn, who: Who, logos: Logos) -> CompanyOut:
    return await _company_out(conn, who, logos)


@router.patch("/company", response_model=CompanyOut)
async def patch_company(body: CompanyPatch, conn: Conn, who: Who, logos: Logos) -> CompanyOut:
    await branding.update_company(
        conn,
        who,
        name=body.name,
        primary_color=body.primary_color,
        accent_color=body.accent_color,
        time_zone=body.time_zone,
    )
    return await _company_out(conn, who, logos)


@router.post("/company/logo-uploads", response_model=LogoUploadOut, status_code=201)
async def logo_upload(body: LogoUploadIn, who: Who, logos: Logos) -> dict[str, Any]:
    return branding.logo_upload(
        logos.client, logos.name, who, body.content_type, body.content_length
    )


@router.post("/company/logo-uploads/confirm", response_model=CompanyOut)
async def logo_confirm(body: LogoConfirmIn, conn: Conn, who: Who, logos: Logos) -> CompanyOut:
    await branding.confirm_logo(conn, logos.client, logos.name, who, body.key)
    return await _company_out(conn, who, logos)


# --- creators ------------------------------------------------------------------------------
@router.get("/creators", response_model=list[CreatorOut])
async def list_creators(conn: Conn, who: Who) -> list[dict[str, Any]]:
    return await roster.list_creators(conn, who)


@router.post("/creators", response_model=CreatorOut, status_code=201)
async def add_creator(
    body: CreatorIn, conn: Conn, who: Who, twitch: Twitch, notify: Notify
) -> dict[str, Any]:
    who.require("admin")
    twitch_id, display, avatar = body.twitch_user_id, body.display_name, None
    if twitch_id is None:
        if twitch is None:
            raise TwitchNotConfiguredError()
        try:
            user = await asyncio.to_thread(twitch.user_by_login, body.login)
        except errors.HelixError:
            raise UnavailableError("Twitch could not be asked; try again") from None
        if user is None:
            raise NotFoundError("no Twitch user with that login")
        twitch_id, display = str(user["id"]), display or str(user.get("display_name") or "")
        avatar = user.get("profile_image_url")  # None unless on the image origin (adapter)
    created = await roster.add_creator(
        conn,
        who,
        twitch_user_id=twitch_id,
        login=body.login,
        display_name=display or body.login,
        labels=body.labels,
        profile_image_url=avatar,
    )
    await _notify_roster(notify, "creator added")
    return created


@router.get("/subscriptions/unhealthy", response_model=list[SubscriptionHealth])
async def unhealthy(conn: Conn, who: Who) -> list[dict[str, Any]]:
    return await roster.unhealthy_subscriptions(conn, who)


@router.get("/creators/{creator_id}", response_model=CreatorOut)
async def get_creator(creator_id: uuid.UUID, conn: Conn, who: Who) -> dict[str, Any]:
    return await roster.get_creator(conn, who, creator_id)


@router.patch("/creators/{creator_id}", response_model=CreatorOut)
async def patch_creator(
    creator_id: uuid.UUID, body: CreatorPatch, conn: Conn, who: Who
) -> dict[str, Any]:
    return await roster.update_creator(conn, who, creator_id, labels=body.labels, notes=body.notes)


@router.delete("/creators/{creator_id}", status_code=204, response_class=Response)
async def remove_creator(creator_id: uuid.UUID, conn: Conn, who: Who, notify: Notify) -> Response:
    await roster.remove_creator(conn, who, creator_id)
    await _notify_roster(notify, "creator removed")
    return Response(status_code=204)


# --- members -------------------------------------------------------------------------------
@router.get("/members", response_model=list[MemberOut])
async def list_members(conn: Conn, who: Who) -> list[dict[str, Any]]:
    return await members.list_members(conn, who)


@router.post("/members", response_model=MemberOut, status_code=201)
async def add_member(body: MemberIn, conn: Conn, who: Who) -> dict[str, Any]:
    return await members.add_member(
        conn,
        who,
        subject=body.subject,
        email=body.email,
        display_name=body.display_name,
        role=body.role,
    )


@router.patch("/members/{user_id}", response_model=MemberOut)
async def change_role(
    user_id: uuid.UUID, body: MemberPatch, conn: Conn, who: Who
) -> dict[str, Any]:
    return await members.change_role(conn, who, user_id, body.role)


@router.delete("/members/{user_id}", status_code=204, response_class=Response)
async def remove_member(user_id: uuid.UUID, conn: Conn, who: Who) -> Response:
    await members.remove_member(conn, who, user_id)
    return Response(status_code=204)


# --- events and the audit log --------------------------------------------------------------
@router.get("/events", response_model=EventsPage)
async def list_events(
    conn: Conn,
    who: Who,
    creator_id: uuid.UUID | None = None,
    type: Annotated[list[str] | None, Query(max_length=20)] = None,
    topic: Topic | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    if before_seq is not None and after_seq is not None:
        raise CursorConflictError()
    try:
        check_strings(type)
    except ValueError as exc:
        raise InvalidError(str(exc)) from None
    return await history.list_events(
        conn,
        who.company,
        creator_id=creator_id,
        types=type,
        topic=topic,
        since=since,
        until=until,
        before_seq=before_seq,
        after_seq=after_seq,
        limit=limit,
    )


@router.post("/events/{seq}/ack", response_model=Ok)
async def acknowledge(
    seq: Annotated[int, Field(ge=1, le=2**62)], body: AckIn, conn: Conn, who: Who
) -> Ok:
    who.require("operator")
    if not await history.acknowledge(conn, who, seq, body.note):
        raise NotFoundError("no such event")
    return Ok()


@router.get("/audit", response_model=AuditPage)
async def audit_log(
    conn: Conn,
    who: Who,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    who.require("admin")
    return await audit.list_entries(conn, who.company, before_id, limit)


@router.get("/audit/verify", response_model=ChainOut)
async def audit_verify(conn: Conn, who: Who) -> ChainOut:
    who.require("admin")
    async with tenant_transaction_async(conn, who.company):
        report = await audit.verify_chain_async(conn)
    return ChainOut(
        intact=report.intact,
        checked=report.checked,
        first_bad_id=report.first_bad_id,
        reason=report.reason,
    )


# --- probes --------------------------------------------------------------------------------
@probes.get("/healthz", response_model=dict[str, str])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@probes.get("/readyz", response_model=dict[str, str], responses={503: {"model": ErrorOut}})
async def readyz(request: Request) -> Any:
    checks: list[ReadyCheck] = request.app.state.ready_checks
    try:
        for check in checks:
            await asyncio.wait_for(check(), timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        log.warning("not ready", extra={"fields": {"error": type(exc).__name__}})
        return error_response(503, "unavailable", "a dependency is not reachable")
    return {"status": "ready"}
