"""The composition of the realtime service: one ASGI app for the relay and the HTTP routes.

Run it with `uvicorn --factory realtime.app:create_app --ws-per-message-deflate false`.
"""

from __future__ import annotations

import redis.asyncio
import socketio

from controlroom import db, logs, s3, settings
from controlroom.auth import TokenVerifier
from realtime.api import build_api
from realtime.relay import Relay, RelayRedisManager

# Socket.IO limits: small frames from clients, and a dead peer noticed within a minute.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


def create_app(cfg: settings.RealtimeSettings | None = None) -> socketio.ASGIApp:
    logs.configure()
    cfg = cfg or settings.realtime()
    manager = RelayRedisManager(
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
    manager.relay = relay
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
    )
    return socketio.ASGIApp(sio, other_asgi_app=api, on_startup=relay.start, on_shutdown=relay.stop)
