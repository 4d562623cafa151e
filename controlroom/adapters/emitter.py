"""Publishing to dashboards through python-socketio's Redis manager, in write-only mode.

Each company's messages go to a channel of its own, `<channel>:company:<id>` (the manager's
channel is `socketio`): a relay instance subscribes to the channels of the companies whose
sockets it holds (realtime/transport.py), so it neither receives nor decodes the others'.
Everything else python-socketio publishes (disconnects, rooms, callbacks) stays on the
manager's own channel, which every instance receives. See docs/realtime.md, "Channels".
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

import redis
import socketio

from controlroom.adapters import redis_tls
from controlroom.core import rooms
from controlroom.core.tenants import tenant_id
from controlroom.errors import PublishError
from controlroom.logs import fields

log = logging.getLogger(__name__)
CHANNEL = "socketio"  # python-socketio's default: the manager's channel, every instance's


class Publisher(Protocol):
    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None: ...


def company_channel(channel: str, company_id: uuid.UUID | str) -> str:
    """The channel of one company's messages: `<channel>:company:<id>`."""
    return f"{channel}:company:{tenant_id(company_id)}"


def room_company(room: Any) -> uuid.UUID | None:
    """The company of a company room or of one of its creator rooms, or None."""
    if not isinstance(room, str) or not room.startswith("company:"):
        return None
    return rooms.company_of(room.split(":creator:", 1)[0])


def channel_of(channel: str, message: dict[str, Any]) -> str:
    """Where a manager message is published: an emit to a company's room (or to one of its
    creators' rooms) on the company's channel, anything else on the manager's channel."""
    if message.get("method") == "emit":
        company = room_company(message.get("room"))
        if company is not None:
            return company_channel(channel, company)
    return channel


class _CheckedRedisManager(socketio.RedisManager):  # type: ignore[misc]
    # The stock manager logs a failed publish and carries on; we need to know. And it
    # publishes everything on one channel; a company's emits go on the company's channel.
    connected: bool
    _batch = threading.local()  # a thread's messages while publish_many collects them

    def _publish(self, data: Any) -> Any:
        collected: list[Any] | None = getattr(self._batch, "messages", None)
        if collected is not None:
            collected.append(data)
            return None
        channel = channel_of(self.channel, data)
        error: Exception | None = None
        for _attempt in range(2):
            try:
                if not self.connected:
                    self._redis_connect()
                return self.redis.publish(channel, self.json.dumps(data))
            except (redis.RedisError, OSError) as exc:  # retried once, on a new connection
                error, self.connected = exc, False
        log.warning("redis publish failed", extra=fields(error=type(error).__name__))
        raise PublishError("redis publish failed")

    def publish_collected(self, messages: list[Any]) -> None:
        """Publishes messages in their order in one pipelined round trip (no MULTI)."""
        error: Exception | None = None
        for _attempt in range(2):
            try:
                if not self.connected:
                    self._redis_connect()
                pipe = self.redis.pipeline(transaction=False)
                for message in messages:
                    pipe.publish(channel_of(self.channel, message), self.json.dumps(message))
                pipe.execute()
                return
            except (redis.RedisError, OSError) as exc:  # retried once, on a new connection
                error, self.connected = exc, False
        log.warning("redis publish failed", extra=fields(error=type(error).__name__))
        raise PublishError("redis publish failed")


class SocketIOPublisher:
    """Emits to `company:<id>` on every relay instance that holds the company's sockets, via
    the company's Redis channel (`rediss://`: verified TLS)."""

    def __init__(self, redis_url: str, channel: str = CHANNEL, ca_cert: str | None = None) -> None:
        url, tls = redis_tls.client_args(redis_url, ca_cert)
        self._manager = _CheckedRedisManager(
            url,
            channel=channel,
            write_only=True,
            redis_options={"socket_connect_timeout": 1.0, "socket_timeout": 2.0, **tls},
        )

    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None:
        self._manager.emit(name, data, room=rooms.company_room(company_id), namespace="/")

    def publish_many(self, company_id: uuid.UUID | str, events: Iterable[tuple[str, Any]]) -> None:
        """Publishes `(name, data)` events in their order, each exactly as `publish` would
        (same message, same channel), in one Redis round trip. A retry after a failure may
        repeat some of them, as a retried `publish` may."""
        room = rooms.company_room(company_id)
        messages: list[Any] = []
        self._manager._batch.messages = messages
        try:
            for name, data in events:
                self._manager.emit(name, data, room=room, namespace="/")
        finally:
            self._manager._batch.messages = None
        if messages:
            self._manager.publish_collected(messages)
