"""The composition of the realtime service: one ASGI app for the relay and the HTTP routes.

Run it with `uvicorn --factory realtime.app:create_app --ws-per-message-deflate false`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis.asyncio
import socketio
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from controlroom import logs, settings
from controlroom.adapters import cloudtasks, db, helix, s3, taskqueue
from controlroom.adapters.tokens import TokenVerifier
from realtime.api import build_api
from realtime.relay import Relay
from realtime.transport import FeedRedisManager

# Socket.IO limits: small frames from clients, and a dead peer noticed within a minute.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


def create_app(cfg: settings.RealtimeSettings | None = None) -> socketio.ASGIApp:
    logs.configure()
    cfg = cfg or settings.realtime()
    manager = FeedRedisManager(
        cfg.redis_url.reveal(),
        redis_options={"socket_connect_timeout": 2.0, "health_check_interval": 10},
    )
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=[],  # same origin only: the dashboard is served from here
        max_http_buffer_size=MAX_CLIENT_MESSAGE_BYTES,
        ping_interval=25,
        ping_timeout=20,
    )
    verifier = TokenVerifier(
        issuer=cfg.auth.issuer,
        audience=cfg.auth.audience,
        jwks_url=cfg.auth.jwks_url,
        public_key_pem=cfg.auth.public_key_pem,
    )
    pool = db.async_pool(cfg.database)
    relay = Relay(sio, pool, verifier, cfg)
    manager.deliver(relay.on_published, relay.FEED_EVENTS)
    redis_client = redis.asyncio.Redis.from_url(cfg.redis_url.reveal(), socket_connect_timeout=2)

    async def database_ready() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def redis_ready() -> None:
        await redis_client.ping()

    api = build_api(
        pool,
        verifier,
        s3.client(cfg.s3_endpoint_url),
        cfg.branding_bucket,
        [database_ready, redis_ready],
        twitch=_twitch(cfg),
        roster_changed=_roster_changed(cfg),
    )
    mount_dashboard(api, cfg.dashboard_dir)
    return socketio.ASGIApp(sio, other_asgi_app=api, on_startup=relay.start, on_shutdown=relay.stop)


def _twitch(cfg: settings.RealtimeSettings) -> helix.Helix | None:
    """Helix for resolving logins, when Twitch credentials are configured."""
    if not (cfg.twitch_client_id and cfg.twitch_client_secret):
        return None
    return helix.Helix(
        helix.HelixConfig(
            cfg.twitch_client_id, cfg.twitch_client_secret, cfg.helix_api_url, cfg.twitch_token_url
        )
    )


def _roster_changed(cfg: settings.RealtimeSettings) -> Callable[[str], None] | None:
    """A Cloud Task for functions/subscriptions after a creator is added or removed."""
    if not (cfg.subscriptions_url and cfg.tasks_project and cfg.tasks_location and cfg.tasks_queue):
        return None
    target = taskqueue.Target(
        queue_path=cloudtasks.queue_path(cfg.tasks_project, cfg.tasks_location, cfg.tasks_queue),
        url=cfg.subscriptions_url,
        service_account=cfg.subscriptions_invoker,
    )
    client = cloudtasks.client(cfg.tasks_emulator_host)
    return lambda reason: taskqueue.request_run(client, target, reason)


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
