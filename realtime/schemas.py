"""The REST API's request and answer shapes (Pydantic), which the OpenAPI document describes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlroom.core.roles import Role

__all__ = ["Role"]


def storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: refuse both."""
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("text contains characters that cannot be stored")
    return value


def check_strings(value: Any) -> None:
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, list):
        for item in value:
            check_strings(item)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable(self) -> Strict:
        for name in type(self).model_fields:
            check_strings(getattr(self, name))
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


class CreatorAuthorization(BaseModel):
    """What the broadcaster granted our Twitch client (disconnected: a revocation came after
    the last grant)."""

    status: Literal["connected", "partial", "not_connected", "disconnected"]
    scopes: list[str]
    granted_at: datetime | None
    revoked_at: datetime | None


class CreatorSubscriptions(BaseModel):
    """The creator's EventSub subscriptions by topic label ("follows", "bits", ...), each label
    under its worst status."""

    enabled: list[str]
    needs_authorization: list[str]
    failing: list[str]
    pending: list[str]


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
    authorization: CreatorAuthorization
    subscriptions: CreatorSubscriptions


class ConnectLinkOut(BaseModel):
    url: str
    expires_at: datetime


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


def error_response(status: int, code: str, detail: Any = None) -> JSONResponse:
    """An error answer, shaped as ErrorOut."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)
