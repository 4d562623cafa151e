"""One company's feed on a relay instance: events in `seq` order, each handed on once.

Persist publishes each stored event once; the feed puts what arrives in order, drops what it
already had, fills a gap from PostgreSQL when one does not close by itself, and hands the
events, in batches, to whatever `send` it was given (the company's sockets). It knows nothing
of sockets or of the relay: it is given callables.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from controlroom.usecases.history import Head

GAP_WAIT_SECONDS = 0.25  # how long an out-of-order event waits for the one before it

FetchHead = Callable[[uuid.UUID], Awaitable[Head]]
# the stored events with after < seq <= upto, in seq order, one page at most
FetchPage = Callable[[uuid.UUID, int, int], Awaitable[list[dict[str, Any]]]]
Send = Callable[[uuid.UUID, list[dict[str, Any]]], None]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class CompanyFeed:
    """One company's events on this relay instance, in seq order, each handed on once."""

    def __init__(
        self,
        company: uuid.UUID,
        *,
        fetch_head: FetchHead,
        fetch_page: FetchPage,
        send: Send,
        spawn: Spawn,
        batch_seconds: float,
    ) -> None:
        self.company = company
        self._fetch_head = fetch_head
        self._fetch_page = fetch_page
        self._send_events = send
        self._spawn = spawn
        self._batch_seconds = batch_seconds
        self.head: int | None = None  # the last seq put in order (sent, or about to be)
        self.epoch: str | None = None
        self.pending: dict[int, dict[str, Any]] = {}
        self.ready: list[dict[str, Any]] = []  # in order, waiting for the next send
        self.lock = asyncio.Lock()
        self.loaded = asyncio.Event()
        self.gap_timer: asyncio.TimerHandle | None = None
        self.send_timer: asyncio.TimerHandle | None = None

    async def load(self) -> None:
        if self.loaded.is_set():
            return
        async with self.lock:
            if self.loaded.is_set():
                return
            head = await self._fetch_head(self.company)
            self.head, self.epoch = head.last_seq, head.epoch
            self.loaded.set()
            self._drain()

    def offer(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if not isinstance(seq, int):
            return
        if self.head is not None and seq <= self.head:
            return  # had it already (a duplicate publish, or filled from PostgreSQL)
        self.pending[seq] = event
        if self.head is not None:
            self._drain()

    def _drain(self) -> None:
        assert self.head is not None
        for seq in [s for s in self.pending if s <= self.head]:
            del self.pending[seq]
        while self.head + 1 in self.pending:
            self.head += 1
            self._deliver(self.pending.pop(self.head))
        if self.pending and self.gap_timer is None:
            loop = asyncio.get_running_loop()
            self.gap_timer = loop.call_later(GAP_WAIT_SECONDS, lambda: self._spawn(self.catch_up()))

    async def catch_up(self, upto: int | None = None) -> None:
        """Fetch from PostgreSQL what never arrived (a lost publish, a gap) and send it."""
        self.gap_timer = None
        async with self.lock:
            if self.head is None:
                return
            target = upto if upto is not None else (min(self.pending) - 1 if self.pending else None)
            while target is not None and self.head < target:
                page = await self._fetch_page(self.company, self.head, target)
                if not page:
                    break
                for event in page:
                    self.pending.setdefault(event["seq"], event)
                self._drain()
            self._drain()

    def _deliver(self, event: dict[str, Any]) -> None:
        self.ready.append(event)
        if self.send_timer is None:
            loop = asyncio.get_running_loop()
            self.send_timer = loop.call_later(self._batch_seconds, self._send)

    def _send(self) -> None:
        """Hand what is ready to every live socket of the company, in one synchronous step."""
        self.send_timer = None
        events, self.ready = self.ready, []
        if events:
            self._send_events(self.company, events)

    def close(self) -> None:
        for timer in (self.gap_timer, self.send_timer):
            if timer is not None:
                timer.cancel()
