"""A real Socket.IO client for relay tests: records what arrives, flattening batched frames."""

from __future__ import annotations

import threading
from typing import Any

import socketio

from tests.integration.listener import wait_for


class FeedClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.Client(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.control: list[tuple[str, Any]] = []
        self.refused: str | None = None
        self.lock = threading.Lock()
        self.client.on("event", lambda data: self._add([data]))
        self.client.on("events", self._add)
        self.client.on("creator_state", self.states.append)
        for name in ("live", "resync", "session_expired"):
            self.client.on(name, lambda data, name=name: self.control.append((name, data)))
        self.client.on("connect_error", self._refused)

    def _refused(self, data: Any) -> None:
        self.refused = data.get("message") if isinstance(data, dict) else str(data)

    def _add(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.events.extend(items)

    def connect(self, auth: dict[str, Any]) -> bool:
        try:
            self.client.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return False
        return True

    def call(self, name: str, data: Any) -> Any:
        return self.client.call(name, data, timeout=10)

    def seqs(self) -> list[int]:
        with self.lock:
            return [e["seq"] for e in self.events]

    def wait_live(self) -> dict[str, Any]:
        assert wait_for(lambda: any(n == "live" for n, _ in self.control), timeout=15)
        return next(d for n, d in self.control if n == "live")

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()
