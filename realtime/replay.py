"""Catching one socket up: what it missed from PostgreSQL, then the feed's held events, then live.

Each socket has one ordered path and a cursor, the last `seq` that path has passed (sent, or
left out by the socket's creator filter). Every frame below is queued by `push`, which writes
to the socket's Engine.IO queue in the same synchronous step that moves the cursor. While this
runs the socket is `replaying`: the feed holds live events for it instead of sending them.
PostgreSQL gives what lies up to the feed's head as it stood when the replay began; the held
events past the cursor are then sent and the socket switched to live with no await in between,
so nothing can slip between the two or be sent twice (docs/realtime.md, "How the feed stays
gap-free and ordered").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from realtime.feed import CompanyFeed, FetchHead, FetchPage
from realtime.sessions import Session

Push = Callable[[list[Session], str, Any], None]


async def replay(
    session: Session,
    feed: CompanyFeed,
    *,
    last_seq: int | None,
    epoch: str | None,
    snapshot: bool,
    fetch_head: FetchHead,
    fetch_page: FetchPage,
    push: Push,
    send_snapshot: Callable[[Session], Awaitable[None]],
) -> None:
    """Send what the socket missed, then switch it to live.

    PostgreSQL gives what lies up to the feed's head as it stands now; everything past
    that head goes through the feed, which holds it for the socket while this runs.
    The held events past the cursor are sent and the socket switched to live with no
    await in between, so nothing can slip between the two or be sent twice."""
    await feed.load()
    if snapshot:
        await send_snapshot(session)
    resync: dict[str, Any] | None = None
    if last_seq is not None:
        stored = await fetch_head(session.company)
        lost = (
            (epoch is not None and epoch != stored.epoch)
            or last_seq > stored.last_seq
            or (stored.oldest_seq is not None and last_seq + 1 < stored.oldest_seq)
        )
        # never a partial recovery: the client reloads its snapshot instead
        resync = {"epoch": stored.epoch} if lost else None
    if last_seq is None or resync is not None:
        assert feed.head is not None
        session.cursor = feed.head
    else:
        session.cursor = last_seq
        assert feed.head is not None
        target = feed.head
        while session.cursor < target:
            page = await fetch_page(session.company, session.cursor, target)
            # an empty page: what lay between was pruned, so there is nothing to send
            session.cursor = page[-1]["seq"] if page else target
            visible = session.visible(page)
            if visible:
                push([session], "events", visible)
    if resync is not None:
        push([session], "resync", {**resync, "last_seq": session.cursor})
    # from here to the end, no await: the held events and the switch to live are one step
    held, session.held = session.held, []
    tail = [e for e in held if e["seq"] > session.cursor]
    if tail:
        session.cursor = tail[-1]["seq"]
        visible = session.visible(tail)
        if visible:
            push([session], "events", visible)
    session.replaying = False
    push([session], "live", {"epoch": feed.epoch, "last_seq": session.cursor})
