"""A Socket.IO server on the Redis manager, so tests can watch what persist publishes.

It is a harness, not the product's relay: it joins each client to the room of the company
named in its auth, and records nothing itself; the clients are real Socket.IO clients. Like
the relay, it subscribes to the company's Redis channel (realtime/pubsub.py) before it lets
the client in.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import socketio
import uvicorn

from controlroom.core import rooms
from controlroom.dev.stack.process import free_port
from realtime.pubsub import ChannelRedisManager


class Listener:
    def __init__(self, redis_url: str) -> None:
        manager = ChannelRedisManager(redis_url)
        self.sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
        watched: set[uuid.UUID] = set()

        @self.sio.event
        async def connect(sid: str, environ: dict[str, Any], auth: dict[str, str]) -> None:
            company = uuid.UUID(auth["company_id"])
            if company not in watched:  # from the first client on, for as long as it runs
                watched.add(company)
                manager.watch(company)
            await manager.ready(company)
            await self.sio.enter_room(sid, rooms.company_room(company))

        self.port = free_port()
        config = uvicorn.Config(
            socketio.ASGIApp(self.sio),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws_per_message_deflate=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the Socket.IO harness did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @contextmanager
    def client(self, company_id: str) -> Iterator[list[tuple[str, Any]]]:
        """A connected client; yields the list that fills with (event name, data)."""
        received: list[tuple[str, Any]] = []
        client = socketio.Client(reconnection=False)
        client.on("*", lambda name, data: received.append((name, data)))
        client.connect(
            f"http://127.0.0.1:{self.port}",
            auth={"company_id": company_id},
            transports=["websocket"],
            wait_timeout=10,
        )
        try:
            yield received
        finally:
            client.disconnect()


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class Recorder:
    """An HTTP endpoint on 127.0.0.1 that records every POST it gets and answers 204."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[tuple[str, dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
