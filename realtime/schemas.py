"""The REST API's request and answer shapes (Pydantic), which the OpenAPI document describes."""

from __future__ import annotations

import functools
import uuid
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
    time_zone: str = "UTC"


class MeOut(BaseModel):
    user_id: str
    subject: str
    role: Role
    company: CompanyOut


class CompanyPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    primary_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    accent_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    time_zone: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        examples=["Europe/Berlin"],
        description="IANA zone: where the company's analytics days and hours begin",
    )

    @model_validator(mode="after")
    def _known_time_zone(self) -> CompanyPatch:
        if self.time_zone is not None:
            _zone(self.time_zone)
        return self


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
    viewers: int | None  # the audience pulse's newest sample (None before the first one)
    viewers_at: datetime | None
    # Twitch's profile image, on the image origin (TWITCH_IMAGE_ORIGIN) only
    avatar_url: str | None
    # while live: Twitch's preview template, with literal {width} and {height} to fill in
    preview_url: str | None


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


# --- incidents, detection rules, notification channels, viewer samples (issue 17) ----------
Severity = Literal["info", "warning", "critical"]
IncidentStatus = Literal["open", "acknowledged", "resolved"]
ChannelKind = Literal["discord", "slack", "webhook"]
Transition = Literal["opened", "acknowledged", "resolved", "test"]
DeliveryStatus = Literal["pending", "sending", "delivered", "failed", "skipped"]
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class IncidentOut(BaseModel):
    id: str
    number: int
    creator_id: str | None
    rule: str
    severity: Severity
    status: IncidentStatus
    title: str
    details: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    assignee_user_id: str | None
    event_count: int


class IncidentsPage(BaseModel):
    items: list[IncidentOut]
    next_before: int | None = None  # pass as ?before= for the next (older) page


class IncidentNoteOut(BaseModel):
    id: int
    author_subject: str
    body: str
    created_at: datetime


class DeliveryOut(BaseModel):
    id: str
    channel_id: str
    channel_name: str | None = None
    incident_id: str | None = None
    transition: Transition
    status: DeliveryStatus
    reason: str | None
    attempts: int
    last_status: int | None
    created_at: datetime
    delivered_at: datetime | None


class IncidentDetail(IncidentOut):
    notes: list[IncidentNoteOut]
    events: list[EventOut]
    deliveries: list[DeliveryOut]


class ResolveIn(Strict):
    resolution: str | None = Field(None, max_length=300)


class AssigneeIn(Strict):
    user_id: uuid.UUID | None  # a member of the company, or null to unassign


class NoteIn(Strict):
    body: str = Field(min_length=1, max_length=2000)


class ParamSpecOut(BaseModel):
    name: str
    label: str
    minimum: int
    maximum: int
    unit: str


class RuleDefaults(BaseModel):
    enabled: bool
    severity: Severity
    params: dict[str, int]


class RuleOut(BaseModel):
    rule: str
    title: str
    description: str
    enabled: bool
    severity: Severity
    params: dict[str, int]
    defaults: RuleDefaults
    param_specs: list[ParamSpecOut]


class RuleIn(Strict):
    """The whole effective setting of one rule; the use case checks each param's range."""

    enabled: bool
    severity: Severity
    params: dict[
        Annotated[str, Field(min_length=1, max_length=40)],
        Annotated[float, Field(allow_inf_nan=False)],
    ] = Field(default_factory=dict, max_length=20)


@functools.cache
def _zones() -> frozenset[str]:
    import zoneinfo

    # not the system's aliases and variants, which PostgreSQL may not know
    return frozenset(
        z
        for z in zoneinfo.available_timezones()
        if z not in {"localtime", "posixrules", "Factory"}
        and not z.startswith(("posix/", "right/"))
    )


def _zone(name: str) -> str:
    # the IANA names Python knows (not "localtime" or a path): PostgreSQL applies them too
    if name not in _zones():
        raise ValueError("timezone must be an IANA time zone name, such as Europe/Berlin")
    return name


class QuietHours(Strict):
    start: str = Field(pattern=_CLOCK, examples=["22:00"])
    end: str = Field(pattern=_CLOCK, examples=["07:00"])
    timezone: str = Field("UTC", min_length=1, max_length=64, examples=["Europe/Berlin"])

    @model_validator(mode="after")
    def _known_zone(self) -> QuietHours:
        _zone(self.timezone)
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")
        return self


class ChannelOut(BaseModel):
    id: str
    kind: ChannelKind
    name: str
    url_hint: str
    min_severity: Severity
    quiet_hours: QuietHours | None
    mention: str | None
    enabled: bool
    has_secret: bool
    created_at: datetime
    updated_at: datetime


class ChannelIn(Strict):
    kind: ChannelKind
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=8, max_length=500, pattern=r"^https?://\S+$")
    secret: str | None = Field(None, min_length=1, max_length=200)
    min_severity: Severity = "warning"
    quiet_hours: QuietHours | None = None
    mention: str | None = Field(None, max_length=100)
    enabled: bool = True


class ChannelPatch(Strict):
    """Only the fields given change; null clears quiet_hours or mention (a null secret keeps
    the one stored); a new url or secret is sealed again."""

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, min_length=8, max_length=500, pattern=r"^https?://\S+$")
    secret: str | None = Field(None, min_length=1, max_length=200)
    min_severity: Severity | None = None
    quiet_hours: QuietHours | None = None
    mention: str | None = Field(None, max_length=100)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _clearable(self) -> ChannelPatch:
        # null clears quiet_hours or mention; the rest cannot be cleared
        for name in ("name", "url", "min_severity", "enabled"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ViewersOut(BaseModel):
    minutes: int
    # creator id -> [[epoch seconds, viewers or null while offline], ...], oldest first
    creators: dict[str, list[Annotated[list[int | None], Field(min_length=2, max_length=2)]]]


# --- analytics -----------------------------------------------------------------------------
# controlroom.core.analytics.METRICS, spelled out so OpenAPI lists them (a unit test keeps the
# two equal)
MetricName = Literal[
    "live_minutes",
    "viewers_peak",
    "viewers_avg",
    "follows",
    "subs",
    "subs_tier1",
    "subs_tier2",
    "subs_tier3",
    "resubs",
    "gifted_subs",
    "bits",
    "raids_in",
    "raids_in_viewers",
    "raids_out",
    "raids_out_viewers",
    "hype_trains",
    "hype_train_level",
    "polls",
    "predictions",
    "chat_messages",
    "bans",
    "timeouts",
    "ad_break_minutes",
]


class MetricValue(BaseModel):
    value: float | None = Field(description="over the range; null: no audience sample")
    previous: float | None = Field(description="over the previous range of the same length")


class _AnalyticsRange(BaseModel):
    start: datetime
    end: datetime
    time_zone: str = Field(description="the company's zone: local hours and days")


class AnalyticsSummary(_AnalyticsRange):
    previous_start: datetime
    previous_end: datetime
    creator_id: str | None
    metrics: dict[str, MetricValue]


class AnalyticsSeries(_AnalyticsRange):
    interval: Literal["5m", "1h", "1d"]
    creator_id: str | None
    buckets: list[datetime] = Field(description="the start of every bucket, oldest first")
    series: dict[str, list[float | None]] = Field(
        description="per metric, one value per bucket: 0 where nothing was counted, "
        "null where the audience pulse took no sample"
    )


class LeaderboardRow(BaseModel):
    rank: int
    creator_id: str
    display_name: str
    twitch_login: str
    value: float | None
    previous: float | None


class AnalyticsLeaderboard(_AnalyticsRange):
    metric: MetricName
    previous_start: datetime
    previous_end: datetime
    rows: list[LeaderboardRow]


class MetricOut(BaseModel):
    name: MetricName
    label: str
    kind: Literal["sum", "max", "avg"]
    unit: str
