"""The relay's uses of python-socketio, python-engineio and uvicorn internals, in one module.

The relay writes frames straight onto Engine.IO queues (or, when that keeps their order,
pre-encoded onto a websocket's transport), takes published events from the Redis
manager before Socket.IO broadcasts them, and resets a slow reader's TCP connection. None of
that is public API: each use is here, the three packages are pinned to compatible releases in
pyproject.toml, and tests/unit/test_transport.py fails when an upgrade changes one of them.
The one other module that leans on internals is realtime/pubsub.py (the Redis manager's
per-company channels), guarded by tests/unit/test_pubsub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Any

import engineio
import socketio

# uvicorn's default websocket protocol (uvicorn[standard] installs `websockets`)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from controlroom.core import rooms
from realtime.pubsub import ChannelRedisManager

Published = Callable[[uuid.UUID, str, dict[str, Any]], None]


class FeedRedisManager(ChannelRedisManager):
    """The Redis client manager, with the feed's events handed to `on_published` instead of
    being broadcast as they come (internal: `AsyncPubSubManager._handle_emit`); it receives
    only the channels of the companies the relay watches (realtime/pubsub.py)."""

    on_published: Published | None = None
    feed_events: frozenset[str] = frozenset()

    def deliver(self, on_published: Published, feed_events: frozenset[str]) -> None:
        self.on_published, self.feed_events = on_published, feed_events

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        on_published = self.on_published
        room = message.get("room")
        company = rooms.company_of(room) if isinstance(room, str) else None
        if (
            on_published is not None
            and company is not None
            and message.get("event") in (self.feed_events)
        ):
            data = message.get("data")
            if isinstance(data, list) and len(data) == 1:
                data = data[0]
            if isinstance(data, dict):
                on_published(company, str(message["event"]), data)
            return
        await super()._handle_emit(message)


def encode(sio: socketio.AsyncServer, name: str, data: Any) -> Any:
    """One Socket.IO event in the root namespace, encoded once as an Engine.IO message."""
    # binary=False: our frames are JSON, so Socket.IO need not walk them for bytes
    encoded = sio.packet_class(
        socketio.packet.EVENT, namespace="/", data=[name, data], binary=False
    ).encode()
    return engineio.packet.Packet(engineio.packet.MESSAGE, encoded)


def put(engine: Any, frame: Any) -> None:
    """Queue a frame on an Engine.IO socket now, in order with everything queued before it."""
    if engine is not None and not engine.closed:
        engine.queue.put_nowait(frame)


def engine_socket(sio: socketio.AsyncServer, sid: str) -> Any:
    """The Engine.IO socket under a Socket.IO sid in the root namespace, or None."""
    return sio.eio.sockets.get(sio.manager.eio_sid_from_sid(sid, "/"))


def queued(engine: Any) -> int:
    """How many frames wait on an Engine.IO socket's queue (0 when it has none)."""
    queue = getattr(engine, "queue", None)
    return queue.qsize() if isinstance(queue, asyncio.Queue) else 0


async def close_now(engine: Any) -> None:
    """Close an Engine.IO socket without a goodbye, freeing what was queued for it."""
    await engine.close(wait=False, abort=True)
    queue = getattr(engine, "queue", None)
    if isinstance(queue, asyncio.Queue):  # free what was queued; the writer stops
        while not queue.empty():
            queue.get_nowait()
            queue.task_done()
        queue.put_nowait(None)


def aborter(environ: dict[str, Any]) -> Callable[[], None] | None:
    """How to drop a websocket's TCP connection at once, when the server exposes it.

    uvicorn's ASGI `send` is a method of its protocol object, which holds the transport.
    Nothing else frees a peer whose receive window is closed: a close frame, or even a
    plain close of the socket, waits behind the bytes it does not read. So the socket is
    closed with a zero linger (a reset, which discards what the kernel still holds for it).
    Long-polling sockets (no transport of their own) are closed through Engine.IO instead.
    """
    scope = environ.get("asgi.scope")
    if not isinstance(scope, dict) or scope.get("type") != "websocket":
        return None
    transport = getattr(getattr(environ.get("asgi.send"), "__self__", None), "transport", None)
    # duck-typed: uvloop's transports do not derive from asyncio.Transport
    close_now, extra_info = (
        getattr(transport, "abort", None),
        getattr(transport, "get_extra_info", None),
    )
    if not (callable(close_now) and callable(extra_info)):
        return None

    def abort() -> None:
        sock = extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        close_now()

    return abort


# --- pre-encoded websocket frames, written straight to a connection's transport -------------
def ws_frame(frame: Any) -> bytes:
    """An Engine.IO message as the bytes of one unmasked websocket text frame (RFC 6455 5.2).

    A server's frames are not masked, so these bytes are the same for every socket they go to:
    built once per audience, not once per socket."""
    text: str = frame.encode()
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Wire:
    """Where a websocket socket's frames can be written without Engine.IO's writer task.

    Engine.IO writes a socket's frames from one task per socket that waits on the socket's
    queue; waking it costs more than the write itself. When that task is parked on an empty
    queue (nothing queued, nothing taken and not yet written) and uvicorn's protocol can
    write (open, not paused by flow control), writing the frame's bytes to the transport now
    puts it exactly where the writer would have: after everything sent before, before
    anything queued after. Otherwise `write` says no and the frame goes to the queue.

    Internal: uvicorn's `WebSocketsSansIOProtocol` (its default websocket implementation;
    its `writable`, `close_sent`, `disconnected` and `transport`) and `asyncio.Queue`'s
    `_getters`; tests/unit/test_transport.py guards them.
    """

    __slots__ = ("_engine", "_getters", "_protocol", "_queue", "_transport", "_writable")

    def __init__(self, engine: Any, protocol: Any) -> None:
        self._engine = engine
        self._protocol = protocol
        self._transport = protocol.transport
        self._writable = protocol.writable
        self._queue: asyncio.Queue[Any] = engine.queue
        self._getters = engine.queue._getters

    def write(self, data: bytes) -> bool:
        """Write one pre-encoded frame now if that keeps its order; False: queue it instead."""
        if self._queue.qsize() or not self._writable.is_set():
            return False
        getters = self._getters
        # the writer is parked in `queue.get()` (a woken getter leaves the deque)
        if not getters or getters[-1].done():
            return False
        protocol = self._protocol
        if (
            protocol.close_sent
            or protocol.disconnected
            or self._engine.closed
            or self._transport.is_closing()
        ):
            return False
        self._transport.write(data)
        return True


def wire(sio: socketio.AsyncServer, sid: str, engine: Any) -> Wire | None:
    """The socket's Wire when it is a websocket from its first request under uvicorn's
    websockets-sansio protocol; None otherwise (long-polling, an upgraded polling socket,
    another server or websocket implementation): its frames always go through the queue."""
    if engine is None or not isinstance(getattr(engine, "queue", None), asyncio.Queue):
        return None
    environ = sio.get_environ(sid, "/")
    scope = environ.get("asgi.scope") if isinstance(environ, dict) else None
    if not isinstance(scope, dict) or scope.get("type") != "websocket":
        return None
    protocol = getattr(environ.get("asgi.send"), "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.transport is None:
        return None
    return Wire(engine, protocol)
