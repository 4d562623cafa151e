"""Publishing to dashboards through python-socketio's Redis manager, in write-only mode."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import socketio

from controlroom.adapters import redis_tls
from controlroom.core import rooms
from controlroom.errors import PublishError


class Publisher(Protocol):
    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None: ...


class _CheckedRedisManager(socketio.RedisManager):  # type: ignore[misc]
    # The stock manager logs a failed publish and carries on; we need to know.
    def _publish(self, data: Any) -> Any:
        result = super()._publish(data)
        if result is None:
            raise PublishError("redis publish failed")
        return result


class SocketIOPublisher:
    """Emits to `company:<id>` on every relay instance via Redis (`rediss://`: verified TLS)."""

    def __init__(
        self, redis_url: str, channel: str = "socketio", ca_cert: str | None = None
    ) -> None:
        url, tls = redis_tls.client_args(redis_url, ca_cert)
        self._manager = _CheckedRedisManager(
            url,
            channel=channel,
            write_only=True,
            redis_options={"socket_connect_timeout": 1.0, "socket_timeout": 2.0, **tls},
        )

    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None:
        self._manager.emit(name, data, room=rooms.company_room(company_id), namespace="/")
