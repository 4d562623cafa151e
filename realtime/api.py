"""The REST API under /api/: thin routes over controlroom's use cases, documented by OpenAPI."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
import psycopg_pool
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlroom import edge, errors
from controlroom.adapters import helix
from controlroom.adapters.db import tenant_transaction_async
from controlroom.adapters.tokens import TokenVerifier
from controlroom.core.events import TOPICS
from controlroom.core.roles import Caller
from controlroom.errors import (
    AuthError,
    BadRequestError,
    InvalidError,
    NotFoundError,
    QueueUnavailableError,
    UnauthorizedError,
    UnavailableError,
)
from controlroom.usecases import audit, branding, history, members, roster

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
Role = Literal["viewer", "operator", "admin", "owner"]
Topic = Literal["stream", "audience", "monetization", "moderation", "engagement", "platform"]
assert set(Topic.__args__) == set(TOPICS)  # type: ignore[attr-defined]


def storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: refuse both."""
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("text contains characters that cannot be stored")
    return value


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable(self) -> Strict:
        for name in type(self).model_fields:
            _check_strings(getattr(self, name))
        return self


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


class Branding(BaseModel):
    primary_color: str | None = None
    accent_color: str | None = None
    logo_key: str | None = None
    logo_url: str | None = None


class CompanyOut(BaseModel):
    id: str
    name: str
    slug: str
    branding: Branding


class MeOut(BaseModel):
    user_id: str
    subject: str
    role: Role
    company: CompanyOut


class CompanyPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    primary_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    accent_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")


class LogoUploadIn(Strict):
    content_type: str = Field(max_length=100)
    content_length: int = Field(ge=1, le=100 * 1024 * 1024)


class LogoUploadOut(BaseModel):
    key: str
    upload_url: str
    method: str
    headers: dict[str, str]
    expires_in: int


class LogoConfirmIn(Strict):
    key: str = Field(min_length=1, max_length=300)


class CreatorOut(BaseModel):
    id: str
    twitch_user_id: str
    twitch_login: str
    display_name: str
    labels: list[str]
    notes: str
    status: str
    title: str | None
    category_name: str | None
    live_since: datetime | None
    last_event_at: datetime | None
    authorization_revoked: bool
    created_at: datetime


class CreatorIn(Strict):
    login: str = Field(pattern=r"^[a-z0-9_]{1,25}$")
    twitch_user_id: str | None = Field(None, pattern=r"^[0-9]{1,20}$")
    display_name: str | None = Field(None, min_length=1, max_length=100)
    labels: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20
    )


class CreatorPatch(Strict):
    labels: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        None, max_length=20
    )
    notes: str | None = Field(None, max_length=2000)


class SubscriptionHealth(BaseModel):
    creator_id: str
    type: str
    status: str
    updated_at: datetime


class MemberOut(BaseModel):
    user_id: str
    subject: str
    email: str | None
    display_name: str | None
    role: Role
    created_at: datetime


class MemberIn(Strict):
    subject: str = Field(min_length=1, max_length=255)
    email: str | None = Field(None, max_length=255)
    display_name: str | None = Field(None, max_length=100)
    role: Role


class MemberPatch(Strict):
    role: Role


class EventOut(BaseModel):
    seq: int
    type: str
    version: str
    topic: str
    creator_id: str | None
    broadcaster_user_id: str
    occurred_at: str
    summary: dict[str, Any]


class EventsPage(BaseModel):
    items: list[EventOut]
    next_before_seq: int | None = None
    next_after_seq: int | None = None


class AckIn(Strict):
    note: str = Field("", max_length=500)


class AuditEntry(BaseModel):
    id: int
    occurred_at: datetime
    actor_user_id: str | None
    actor_subject: str
    action: str
    target_type: str
    target_id: str | None
    before: Any
    after: Any
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before_id: int | None


class ChainOut(BaseModel):
    intact: bool
    checked: int
    first_bad_id: int | None
    reason: str | None


class Ok(BaseModel):
    ok: bool = True


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 503)
}


def _error(status: int, code: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


async def _connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as conn:
        yield conn


Conn = Annotated[psycopg.AsyncConnection[Any], Depends(_connection)]


async def _caller(request: Request, conn: Conn) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("a bearer token is required")
    try:
        claims = await asyncio.to_thread(request.app.state.verifier.verify, token.strip())
    except AuthError as exc:
        raise UnauthorizedError(str(exc)) from None
    found = await members.caller_for(conn, claims.company_id, claims.subject)
    if found is None:
        raise UnauthorizedError("not a member of this company")
    return found


Who = Annotated[Caller, Depends(_caller)]


def build_api(
    pool: psycopg_pool.AsyncConnectionPool,
    verifier: TokenVerifier,
    s3: Any,
    branding_bucket: str,
    ready_checks: list[Callable[[], Awaitable[None]]],
    *,
    twitch: helix.Helix | None = None,
    roster_changed: Callable[[str], None] | None = None,
) -> FastAPI:
    api = FastAPI(
        title="Creator Control Room",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    api.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        found = edge.answer(exc, log)  # the one table, as for the functions
        return _error(found.status, found.code, found.detail)

    # Exception last: Starlette gives that one to its outermost middleware (a generic 500)
    for kind in (errors.ControlRoomError, psycopg.Error, Exception):
        api.add_exception_handler(kind, refused)

    @api.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(422, "invalid", detail)

    @api.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return _error(exc.status_code, code, None)

    api.state.pool = pool
    api.state.verifier = verifier
    router = APIRouter(prefix="/api", responses=_ERRORS)

    async def company_out(conn: psycopg.AsyncConnection[Any], who: Caller) -> CompanyOut:
        company = await branding.get_company(conn, who)
        logo = branding.logo_url(s3, branding_bucket, company["branding"].get("logo_key"))
        return CompanyOut(
            id=company["id"],
            name=company["name"],
            slug=company["slug"],
            branding=Branding(**{**company["branding"], "logo_url": logo}),
        )

    @router.get("/me", response_model=MeOut)
    async def me(conn: Conn, who: Who) -> MeOut:
        return MeOut(
            user_id=str(who.user_id),
            subject=who.subject,
            role=who.role,  # type: ignore[arg-type]
            company=await company_out(conn, who),
        )

    @router.get("/company", response_model=CompanyOut)
    async def get_company(conn: Conn, who: Who) -> CompanyOut:
        return await company_out(conn, who)

    @router.patch("/company", response_model=CompanyOut)
    async def patch_company(body: CompanyPatch, conn: Conn, who: Who) -> CompanyOut:
        await branding.update_company(
            conn,
            who,
            name=body.name,
            primary_color=body.primary_color,
            accent_color=body.accent_color,
        )
        return await company_out(conn, who)

    @router.post("/company/logo-uploads", response_model=LogoUploadOut, status_code=201)
    async def logo_upload(body: LogoUploadIn, who: Who) -> dict[str, Any]:
        return branding.logo_upload(
            s3, branding_bucket, who, body.content_type, body.content_length
        )

    @router.post("/company/logo-uploads/confirm", response_model=CompanyOut)
    async def logo_confirm(body: LogoConfirmIn, conn: Conn, who: Who) -> CompanyOut:
        await branding.confirm_logo(conn, s3, branding_bucket, who, body.key)
        return await company_out(conn, who)

    @router.get("/creators", response_model=list[CreatorOut])
    async def list_creators(conn: Conn, who: Who) -> list[dict[str, Any]]:
        return await roster.list_creators(conn, who)

    async def notify_roster(reason: str) -> None:
        # the reconciler makes Twitch send (or stop sending) this creator's events
        if roster_changed is None:
            return
        try:
            await asyncio.to_thread(roster_changed, reason)
        except QueueUnavailableError:
            log.warning("subscription reconcile not requested; the schedule will catch up")

    @router.post("/creators", response_model=CreatorOut, status_code=201)
    async def add_creator(body: CreatorIn, conn: Conn, who: Who) -> dict[str, Any]:
        who.require("admin")
        twitch_id, display = body.twitch_user_id, body.display_name
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
        created = await roster.add_creator(
            conn,
            who,
            twitch_user_id=twitch_id,
            login=body.login,
            display_name=display or body.login,
            labels=body.labels,
        )
        await notify_roster("creator added")
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
        return await roster.update_creator(
            conn, who, creator_id, labels=body.labels, notes=body.notes
        )

    @router.delete("/creators/{creator_id}", status_code=204, response_class=Response)
    async def remove_creator(creator_id: uuid.UUID, conn: Conn, who: Who) -> Response:
        await roster.remove_creator(conn, who, creator_id)
        await notify_roster("creator removed")
        return Response(status_code=204)

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
            _check_strings(type)
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
        if not await history.acknowledge(conn, who.company, who.user_id, seq, body.note):
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

    api.include_router(router)

    @api.get("/healthz", response_model=dict[str, str])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", response_model=dict[str, str], responses={503: {"model": ErrorOut}})
    async def readyz() -> Any:
        try:
            for check in ready_checks:
                await asyncio.wait_for(check(), timeout=2)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("not ready", extra={"fields": {"error": type(exc).__name__}})
            return _error(503, "unavailable", "a dependency is not reachable")
        return {"status": "ready"}

    return api


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, whether the client declares the
    length or streams the body chunked (which no Content-Length check would catch)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, "too_large", f"request bodies are at most {self.max_bytes} bytes")
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if any(not v.isdigit() or int(v) > self.max_bytes for v in lengths):
            await too_large(scope, receive, send)
            return
        received, tripped, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _BodyTooLargeError()
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if tripped:  # whatever the app made of the aborted read, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await too_large(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except _BodyTooLargeError:
            if not started:
                await too_large(scope, receive, send)


class TwitchNotConfiguredError(InvalidError):
    def __init__(self) -> None:
        super().__init__("twitch_user_id is required while Twitch is not configured")


class CursorConflictError(BadRequestError):
    def __init__(self) -> None:
        super().__init__("use before_seq or after_seq, not both")
