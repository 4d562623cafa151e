"""The composition of the realtime service: one ASGI app for the relay and the HTTP routes.

Run it with `uvicorn --factory realtime.app:create_app --ws-per-message-deflate false`; with
`WEB_CONCURRENCY=N` (uvicorn's `--workers`), N processes share the port, each its own relay on
the same Redis (docs/realtime.md, "Several worker processes").
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import socketio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from controlroom import logs, services, settings
from controlroom.core import rooms
from realtime import auth
from realtime import consent as creator_consent
from realtime.api import build_api
from realtime.middleware import RateLimit, SecurityHeaders, origin_check, origin_of
from realtime.relay import Relay
from realtime.transport import FeedRedisManager

# Socket.IO limits: small frames from clients, and a dead peer noticed within a minute.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


def create_app(cfg: settings.RealtimeSettings | None = None) -> socketio.ASGIApp:
    logs.configure()
    deps = services.realtime(cfg)
    manager = FeedRedisManager(deps.redis_url, redis_options=deps.redis_options)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        # the dashboard is served from here: its own origin, plus ALLOWED_ORIGINS
        cors_allowed_origins=origin_check(deps.cfg.allowed_origins),
        max_http_buffer_size=MAX_CLIENT_MESSAGE_BYTES,
        # several worker processes share the port without sticky sessions: a websocket stays
        # on the process that accepted it, a long-polling client's requests would not
        transports=["websocket"] if deps.cfg.workers > 1 else None,
        ping_interval=25,
        ping_timeout=20,
    )
    relay = Relay(sio, deps.pool, deps.verifier, deps.cfg, limits=deps.limits)

    async def publish(company: uuid.UUID, name: str, data: dict[str, Any]) -> None:
        # through the Redis manager, to the company's sockets on every relay instance
        await sio.emit(name, data, room=rooms.company_room(company))

    manager.deliver(relay.on_published, relay.FEED_EVENTS)
    api = build_api(
        deps.pool,
        deps.verifier,
        deps.s3,
        deps.cfg.branding_bucket,
        deps.ready_checks,
        twitch=deps.twitch,
        roster_changed=deps.roster_changed,
        tenancy=deps.cfg.tenancy,
        mailer=deps.mailer,
        consent=creator_consent.config_from(deps.cfg, deps.redis),
        publish=publish,
        dispatcher=deps.dispatcher,
    )
    # sign-in and /.well-known/jwks.json: before the dashboard's catch-all mount at /
    auth.install(api, deps.cfg.auth, deps.signer, deps.cfg.allowed_origins)
    mount_dashboard(api, deps.cfg.dashboard_dir)
    if deps.limits is not None:  # per IP here; per subject in routes._session and the relay
        api.state.limits = deps.limits
        api.add_middleware(RateLimit, limits=deps.limits)
    guard_browsers(
        api,
        deps.cfg.allowed_origins,
        storage_origin(deps.s3, deps.cfg.branding_bucket),
        deps.cfg.twitch_image_origin,
    )
    return socketio.ASGIApp(sio, other_asgi_app=api, on_startup=relay.start, on_shutdown=relay.stop)


def storage_origin(s3: Any, bucket: str) -> str:
    """Where the dashboard fetches and uploads logos: the origin of a pre-signed link (signing
    is local, nothing is sent)."""
    url: str = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "logo"}, ExpiresIn=60
    )
    return origin_of(url)


def guard_browsers(
    api: FastAPI,
    allowed_origins: tuple[str, ...],
    storage: str | None,
    images: str | None = None,
) -> None:
    """Security headers on every answer; CORS for the API only toward `allowed_origins` (the
    dashboard itself is same-origin and needs none)."""
    api.add_middleware(
        CORSMiddleware,
        allow_origins=list(allowed_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    api.add_middleware(SecurityHeaders, storage_origin=storage, image_origin=images)


def mount_dashboard(api: FastAPI, directory: str) -> None:
    """The dashboard's static files at `/` (after the API routes, which take precedence)."""
    if Path(directory, "index.html").is_file():
        api.mount("/", StaticFiles(directory=directory, html=True), name="dashboard")
        return

    @api.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(
            "<h1>Creator Control Room</h1><p>The dashboard is not built: run <code>make build"
            "</code> (or <code>make run</code>).</p>",
            status_code=503,
        )
