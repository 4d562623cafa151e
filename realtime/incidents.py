"""The incident response API under /api/: incidents, detection rules, notification channels and
the audience pulse's viewer samples. Viewers read; operators acknowledge, resolve, assign and
write notes; admins manage rules and channels.

A transition is published after its transaction commits: the Incident JSON to the company's
dashboards (Socket.IO, through Redis to every relay instance) and the notification deliveries
it planned to the dispatcher (Cloud Tasks), off the event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from controlroom.core.roles import Caller
from controlroom.usecases import audit, incidents, notifications, viewers
from realtime.routes import Conn, Who
from realtime.schemas import (
    AssigneeIn,
    ChannelIn,
    ChannelOut,
    ChannelPatch,
    DeliveryOut,
    ErrorOut,
    IncidentDetail,
    IncidentOut,
    IncidentsPage,
    IncidentStatus,
    NoteIn,
    ResolveIn,
    RuleIn,
    RuleOut,
    Severity,
    ViewersOut,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
router = APIRouter(prefix="/api", tags=["incidents"], responses=_ERRORS)

MAX_PAGE = 200
_RULE = r"^[a-z_]{1,40}$"

# (company, event name, data): emits to the company's room (realtime.app builds it)
Publish = Callable[[uuid.UUID, str, dict[str, Any]], Coroutine[Any, Any, None]]
PUBLISH_SECONDS = 5


class _OnLoop:
    """incidents.Publisher for `publish_changes` in a worker thread: emits on the service's
    event loop and waits for Redis to take it."""

    def __init__(self, publish: Publish, loop: asyncio.AbstractEventLoop) -> None:
        self._publish, self._loop = publish, loop

    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None:
        emitted = self._publish(uuid.UUID(str(company_id)), name, data)
        asyncio.run_coroutine_threadsafe(emitted, self._loop).result(PUBLISH_SECONDS)


def _actor(who: Caller) -> audit.Actor:
    return audit.Actor(who.subject, who.user_id)


def _dispatcher(request: Request) -> incidents.Dispatcher | None:
    dispatcher: incidents.Dispatcher | None = getattr(request.app.state, "dispatcher", None)
    return dispatcher


async def _published(
    request: Request, company: uuid.UUID, change: incidents.Change
) -> dict[str, Any]:
    """After commit, off the event loop: the incident to the company's dashboards and its
    planned deliveries to the queue (neither fails the request: what is stored stands)."""
    publish: Publish | None = getattr(request.app.state, "publish", None)
    publisher = _OnLoop(publish, asyncio.get_running_loop()) if publish is not None else None
    await asyncio.to_thread(
        incidents.publish_changes, publisher, _dispatcher(request), company, [change]
    )
    return change.incident.to_json()


# --- incidents -----------------------------------------------------------------------------
@router.get("/incidents", response_model=IncidentsPage)
async def list_incidents(  # keyword-only: each filter is a query parameter
    *,
    conn: Conn,
    who: Who,
    status: Annotated[list[IncidentStatus] | None, Query(max_length=3)] = None,
    severity: Annotated[list[Severity] | None, Query(max_length=3)] = None,
    creator_id: uuid.UUID | None = None,
    rule: Annotated[str | None, Query(pattern=_RULE)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    found = await incidents.list_incidents(
        conn,
        who.company,
        status=list(status) if status else None,
        severity=list(severity) if severity else None,
        creator_id=creator_id,
        rule=rule,
        before_number=before,
        limit=limit,
    )
    items = [i.to_json() for i in found]
    more = len(items) == limit and items[-1]["number"] > 1
    return {"items": items, "next_before": items[-1]["number"] if more else None}


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
async def get_incident(incident_id: uuid.UUID, conn: Conn, who: Who) -> dict[str, Any]:
    return await incidents.get_incident(conn, who.company, incident_id)


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentOut)
async def acknowledge(
    incident_id: uuid.UUID, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    who.require("operator")
    change = await incidents.acknowledge(conn, who.company, incident_id, _actor(who))
    return await _published(request, who.company, change)


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentOut)
async def resolve(
    incident_id: uuid.UUID, body: ResolveIn, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    who.require("operator")
    change = await incidents.resolve(conn, who.company, incident_id, _actor(who), body.resolution)
    return await _published(request, who.company, change)


@router.put("/incidents/{incident_id}/assignee", response_model=IncidentOut)
async def assign(
    incident_id: uuid.UUID, body: AssigneeIn, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    who.require("operator")
    change = await incidents.assign(conn, who.company, incident_id, _actor(who), body.user_id)
    return await _published(request, who.company, change)


@router.post("/incidents/{incident_id}/notes", response_model=IncidentOut, status_code=201)
async def add_note(
    incident_id: uuid.UUID, body: NoteIn, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    who.require("operator")
    change = await incidents.add_note(conn, who.company, incident_id, _actor(who), body.body)
    return await _published(request, who.company, change)


# --- detection rules -----------------------------------------------------------------------
@router.get("/incident-rules", response_model=list[RuleOut])
async def get_rules(conn: Conn, who: Who) -> list[dict[str, Any]]:
    return await incidents.get_rules(conn, who.company)


@router.put("/incident-rules/{rule}", response_model=RuleOut)
async def set_rule(rule: str, body: RuleIn, conn: Conn, who: Who) -> dict[str, Any]:
    who.require("admin")
    return await incidents.set_rule(
        conn,
        who.company,
        rule,
        _actor(who),
        enabled=body.enabled,
        severity=body.severity,
        params=body.params,
    )


# --- notification channels -----------------------------------------------------------------
@router.get("/notification-channels", response_model=list[ChannelOut])
async def list_channels(conn: Conn, who: Who) -> list[dict[str, Any]]:
    who.require("admin")
    return await notifications.list_channels(conn, who.company, _actor(who))


@router.post("/notification-channels", response_model=ChannelOut, status_code=201)
async def create_channel(body: ChannelIn, conn: Conn, who: Who) -> dict[str, Any]:
    who.require("admin")
    return await notifications.create_channel(
        conn, who.company, _actor(who), **body.model_dump(mode="json")
    )


@router.patch("/notification-channels/{channel_id}", response_model=ChannelOut)
async def update_channel(
    channel_id: uuid.UUID, body: ChannelPatch, conn: Conn, who: Who
) -> dict[str, Any]:
    who.require("admin")
    # only what was sent changes (`"quiet_hours": null` clears them)
    changes = body.model_dump(mode="json", include=body.model_fields_set)
    return await notifications.update_channel(conn, who.company, _actor(who), channel_id, **changes)


@router.delete("/notification-channels/{channel_id}", status_code=204, response_class=Response)
async def delete_channel(channel_id: uuid.UUID, conn: Conn, who: Who) -> Response:
    who.require("admin")
    await notifications.delete_channel(conn, who.company, _actor(who), channel_id)
    return Response(status_code=204)


@router.post(
    "/notification-channels/{channel_id}/test", response_model=DeliveryOut, status_code=202
)
async def send_test(
    channel_id: uuid.UUID, conn: Conn, who: Who, request: Request
) -> dict[str, Any]:
    who.require("admin")
    delivery = await notifications.send_test(conn, who.company, _actor(who), channel_id)
    dispatcher = _dispatcher(request)
    if dispatcher is not None and delivery["status"] == "pending":
        await asyncio.to_thread(dispatcher.dispatch, who.company, [uuid.UUID(delivery["id"])])
    return delivery


@router.get("/notification-channels/{channel_id}/deliveries", response_model=list[DeliveryOut])
async def channel_deliveries(
    channel_id: uuid.UUID,
    conn: Conn,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> list[dict[str, Any]]:
    who.require("admin")
    return await notifications.channel_deliveries(
        conn, who.company, _actor(who), channel_id, limit=limit
    )


# --- the audience pulse --------------------------------------------------------------------
@router.get("/viewers", response_model=ViewersOut)
async def viewer_samples(
    conn: Conn,
    who: Who,
    minutes: Annotated[int, Query(ge=1, le=viewers.MAX_MINUTES)] = 60,
) -> dict[str, Any]:
    return {
        "minutes": minutes,
        "creators": await viewers.recent_samples(conn, who.company, minutes),
    }
