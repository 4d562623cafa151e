"""The REST API under /api/: the FastAPI app, its error answers, and the state its routes read.

The routes are in realtime/routes.py, their shapes in realtime/schemas.py, the body limit in
realtime/middleware.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from controlroom import edge, errors, settings
from controlroom.adapters import helix
from controlroom.adapters.tokens import TokenVerifier
from controlroom.usecases import incidents as incident_usecases
from controlroom.usecases.invitations import Mailer
from realtime import analytics, incidents, invitations, platform, routes
from realtime import consent as creator_consent
from realtime.middleware import MAX_BODY_BYTES, BodyLimit
from realtime.routes import Bucket, ReadyCheck
from realtime.schemas import error_response

log = logging.getLogger(__name__)


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    found = edge.answer(exc, log)  # the one table, as for the functions
    response = error_response(found.status, found.code, found.detail)
    for name, value in found.headers:  # Retry-After for a 429
        response.headers[name] = value
    return response


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return error_response(422, "invalid", detail)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return error_response(exc.status_code, code, None)


def build_api(
    pool: psycopg_pool.AsyncConnectionPool,
    verifier: TokenVerifier,
    s3: object,
    branding_bucket: str,
    ready_checks: list[ReadyCheck],
    *,
    twitch: helix.Helix | None = None,
    roster_changed: Callable[[str], None] | None = None,
    tenancy: settings.TenancySettings | None = None,
    mailer: Mailer | None = None,
    consent: creator_consent.ConsentConfig | None = None,
    publish: incidents.Publish | None = None,
    dispatcher: incident_usecases.Dispatcher | None = None,
) -> FastAPI:
    api = FastAPI(
        title="Creator Control Room",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    # Exception last: Starlette gives that one to its outermost middleware (a generic 500)
    for kind in (errors.ControlRoomError, psycopg.Error, Exception):
        api.add_exception_handler(kind, _refused)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(HTTPException, _http_error)

    # what the routes' dependencies read (realtime/routes.py)
    api.state.pool = pool
    api.state.verifier = verifier
    api.state.logos = Bucket(s3, branding_bucket)
    api.state.twitch = twitch
    api.state.roster_changed = roster_changed
    api.state.ready_checks = ready_checks
    api.state.tenancy = tenancy or settings.TenancySettings()  # invitation links, grace period
    api.state.mailer = mailer  # None: invitation links are shown, not mailed
    api.state.consent = consent  # None: Twitch is not configured, connect links refused
    api.state.publish = publish  # incident changes to the company's dashboards
    api.state.dispatcher = dispatcher  # None: no notification queue (NOTIFY_URL unset)

    api.include_router(routes.router)
    api.include_router(invitations.router)
    api.include_router(incidents.router)
    api.include_router(analytics.router)
    api.include_router(platform.router)
    api.include_router(creator_consent.router)
    api.include_router(creator_consent.pages)
    api.include_router(routes.probes)
    return api
