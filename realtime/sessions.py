"""A relay socket's session: who it is, its cursor on the company's feed, its filters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from realtime import transport


@dataclass
class Session:
    sid: str
    company: uuid.UUID
    subject: str
    role: str
    expires_at: datetime
    # a replay task runs (from connect or a resume): live frames pass this socket by, and
    # only one replay runs at a time
    replaying: bool = True
    resuming: bool = False  # a resume is being checked (its rate limit awaits Redis)
    cursor: int = 0  # the last seq this socket's ordered path has passed
    held: list[dict[str, Any]] = field(default_factory=list)  # live events met while replaying
    filters: set[str] = field(default_factory=set)
    expiry: asyncio.TimerHandle | None = None
    engine: Any = None  # the Engine.IO socket: its queue holds the frames not yet written
    abort: Callable[[], None] | None = None  # drops the connection without a goodbye
    closing: bool = False  # cut off as a slow reader: sent nothing more
    # where its frames can be written pre-encoded, once looked up (`wired`); None: the queue
    wire: transport.Wire | None = None
    wired: bool = False

    @property
    def queued(self) -> int:
        return transport.queued(self.engine)

    def visible(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.filters:
            return events
        return [e for e in events if e.get("creator_id") in self.filters]
