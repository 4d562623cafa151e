"""The Socket.IO relay: authenticated tenant sockets and a gap-free, ordered feed per company.

Persist publishes each stored event once, through Redis, to the room `company:<id>`. Every
relay instance receives it, and instead of letting Socket.IO broadcast it as it comes, hands
it to the company's feed: the feed puts events in `seq` order, drops what it already had,
fills a gap from PostgreSQL when one does not close by itself, and hands the events to the
company's sockets.

Each socket has one ordered path and a cursor, the last `seq` that path has passed (sent,
or left out by the socket's creator filter). Everything a socket is sent, live frames,
replayed pages, `live` and `resync`, is decided and written to its Engine.IO queue in one
synchronous step that also moves the cursor, so no interleaving of connect, resume, replay
and live can send a `seq` twice or out of order: a live frame skips what is at or below
the cursor. A socket that is replaying gets no live frames: the feed holds them for it,
and when its replay from PostgreSQL has reached the head the feed had when the replay
began, the held events past the cursor are sent and the socket switches to live, without
an await in between.

A socket whose client stops reading cannot hold the instance's memory: Engine.IO queues
frames per socket without a limit, so before each live send the relay cuts off any socket
with more than `RELAY_SEND_QUEUE_LIMIT` frames waiting. Membership is checked again on every
reconcile tick, so a removed member's open socket is closed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import engineio
import psycopg
import psycopg_pool
import socketio

from controlroom.adapters.tokens import TokenVerifier
from controlroom.core import rooms
from controlroom.core.roles import Claims
from controlroom.errors import AuthError
from controlroom.logs import fields
from controlroom.settings import RealtimeSettings
from controlroom.usecases import history

log = logging.getLogger(__name__)

GAP_WAIT_SECONDS = 0.25  # how long an out-of-order event waits for the one before it


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
    cursor: int = 0  # the last seq this socket's ordered path has passed
    held: list[dict[str, Any]] = field(default_factory=list)  # live events met while replaying
    filters: set[str] = field(default_factory=set)
    expiry: asyncio.TimerHandle | None = None
    engine: Any = None  # the Engine.IO socket: its queue holds the frames not yet written
    abort: Callable[[], None] | None = None  # drops the connection without a goodbye
    closing: bool = False  # cut off as a slow reader: sent nothing more

    @property
    def queued(self) -> int:
        queue = getattr(self.engine, "queue", None)
        return queue.qsize() if isinstance(queue, asyncio.Queue) else 0

    def visible(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.filters:
            return events
        return [e for e in events if e.get("creator_id") in self.filters]


class CompanyFeed:
    """One company's events on this relay instance, in seq order, each handed on once."""

    def __init__(self, relay: Relay, company: uuid.UUID) -> None:
        self.relay = relay
        self.company = company
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
            async with self.relay.pool.connection() as conn:
                head = await history.head(conn, self.company)
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
            self.gap_timer = loop.call_later(
                GAP_WAIT_SECONDS, lambda: self.relay.spawn(self.catch_up())
            )

    async def catch_up(self, upto: int | None = None) -> None:
        """Fetch from PostgreSQL what never arrived (a lost publish, a gap) and send it."""
        self.gap_timer = None
        async with self.lock:
            if self.head is None:
                return
            target = upto if upto is not None else (min(self.pending) - 1 if self.pending else None)
            while target is not None and self.head < target:
                async with self.relay.pool.connection() as conn:
                    page = await history.events_between(
                        conn, self.company, self.head, target, self.relay.cfg.replay_page
                    )
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
            self.send_timer = loop.call_later(self.relay.cfg.batch_ms / 1000, self._send)

    def _send(self) -> None:
        """Hand what is ready to every live socket of the company, in one synchronous step."""
        self.send_timer = None
        events, self.ready = self.ready, []
        if events:
            self.relay.send_live(self.company, events)

    def close(self) -> None:
        for timer in (self.gap_timer, self.send_timer):
            if timer is not None:
                timer.cancel()


class RelayRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """The Redis client manager, with published events handed to the relay's feeds."""

    relay: Relay | None = None

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        relay = self.relay
        room = message.get("room")
        company = rooms.company_of(room) if isinstance(room, str) else None
        if relay is not None and company is not None and message.get("event") in relay.FEED_EVENTS:
            data = message.get("data")
            if isinstance(data, list) and len(data) == 1:
                data = data[0]
            if isinstance(data, dict):
                relay.on_published(company, str(message["event"]), data)
            return
        await super()._handle_emit(message)


class Relay:
    FEED_EVENTS = frozenset({"event", "creator_state"})

    def __init__(
        self,
        sio: socketio.AsyncServer,
        pool: psycopg_pool.AsyncConnectionPool,
        verifier: TokenVerifier,
        cfg: RealtimeSettings,
    ) -> None:
        self.sio = sio
        self.pool = pool
        self.verifier = verifier
        self.cfg = cfg
        self.sessions: dict[str, Session] = {}
        # the same sessions by company: every live frame looks up its company's sockets
        self._company_sessions: dict[uuid.UUID, dict[str, Session]] = {}
        self.feeds: dict[uuid.UUID, CompanyFeed] = {}
        self._reconciler: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        for name in (
            "connect",
            "disconnect",
            "subscribe",
            "unsubscribe",
            "resume",
            "refresh_token",
            "snapshot",
        ):
            sio.on(name, getattr(self, f"on_{name}"))

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.pool.open()
        self._reconciler = asyncio.ensure_future(self._reconcile_loop())

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
        for feed in self.feeds.values():
            feed.close()
        await self.pool.close()

    def spawn(self, awaitable: Any) -> None:
        """Run in the background, keeping a reference until done (asyncio keeps only weak ones)."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def sessions_of(self, company: uuid.UUID) -> list[Session]:
        return list(self._company_sessions.get(company, {}).values())

    # --- the live path -----------------------------------------------------------------
    def on_published(self, company: uuid.UUID, name: str, data: dict[str, Any]) -> None:
        feed = self.feeds.get(company)
        if feed is None:
            return  # nobody of this company is connected here
        if name == "event":
            feed.offer(data)
        else:
            self._push(self._cut_slow(company), name, data)

    def _cut_slow(self, company: uuid.UUID) -> list[Session]:
        """Disconnect the company's sockets whose clients stopped reading; the rest."""
        limit = self.cfg.send_queue_limit
        keep = []
        for session in self.sessions_of(company):
            queued = session.queued
            if queued > limit:
                log.warning(
                    "slow client disconnected",
                    extra=fields(
                        sid=session.sid, company_id=str(session.company), queued=queued, limit=limit
                    ),
                )
                session.closing = True  # nothing more is sent to it
                self.spawn(self._drop(session))
            elif not session.closing:
                keep.append(session)
        return keep

    async def _drop(self, session: Session) -> None:
        """Forget the socket and close its connection without waiting for the client: a
        graceful close would queue behind the frames it is not reading."""
        await self.sio.disconnect(session.sid, ignore_queue=True)
        if session.abort is not None:
            session.abort()
            return
        engine = session.engine
        if engine is not None:
            await engine.close(wait=False, abort=True)
            queue = getattr(engine, "queue", None)
            if isinstance(queue, asyncio.Queue):  # free what was queued; the writer stops
                while not queue.empty():
                    queue.get_nowait()
                    queue.task_done()
                queue.put_nowait(None)

    def send_live(self, company: uuid.UUID, events: list[dict[str, Any]]) -> None:
        """Send events (in seq order) to each live socket of the company past its cursor.

        Sockets that are given the same events share one encoded frame."""
        audiences: dict[tuple[int, ...], tuple[list[dict[str, Any]], list[Session]]] = {}
        last = events[-1]["seq"]
        for session in self._cut_slow(company):
            if session.replaying:
                session.held.extend(events)  # sent when its replay ends, past its cursor
                continue
            if session.cursor >= last:
                continue
            fresh = (
                events
                if session.cursor < events[0]["seq"]
                else [e for e in events if e["seq"] > session.cursor]
            )
            session.cursor = last
            visible = session.visible(fresh)
            if visible:
                # the usual case: every socket gets all of them, one frame encoded once
                key = () if visible is events else tuple(e["seq"] for e in visible)
                audiences.setdefault(key, (visible, []))[1].append(session)
        for visible, sessions in audiences.values():
            self._push(sessions, *_frame(visible))

    def _push(self, sessions: list[Session], name: str, data: Any) -> None:
        """Encode one Socket.IO event once and queue it on each socket's Engine.IO queue now.

        No await and no task per socket: the frame is in the socket's queue, in order with
        everything else this relay sends it, before anything else can run."""
        # binary=False: our frames are JSON, so Socket.IO need not walk them for bytes
        encoded = self.sio.packet_class(
            socketio.packet.EVENT, namespace="/", data=[name, data], binary=False
        ).encode()
        frame = engineio.packet.Packet(engineio.packet.MESSAGE, encoded)
        for session in sessions:
            engine = session.engine
            if engine is not None and not engine.closed:
                engine.queue.put_nowait(frame)

    async def _reconcile_loop(self) -> None:
        """Every few seconds, catch each feed up with PostgreSQL: a publish that never came
        (Redis down, a persist that died after commit) still reaches the dashboards."""
        while True:
            await asyncio.sleep(self.cfg.reconcile_seconds)
            for company, feed in list(self.feeds.items()):
                if feed.head is None:
                    continue
                try:
                    async with self.pool.connection() as conn:
                        head = await history.head(conn, company)
                        subjects = await history.member_subjects(conn, company)
                    await self._end_revoked(company, subjects)
                    if head.last_seq > feed.head:
                        await feed.catch_up(head.last_seq)
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    log.warning("reconcile skipped", extra=fields(error=type(exc).__name__))
                except Exception:  # a bug must not end gap filling for the whole instance
                    log.exception("reconcile failed", extra=fields(company_id=str(company)))

    async def _end_revoked(self, company: uuid.UUID, subjects: set[str]) -> None:
        """Close the sockets of people who are no longer members (their tokens may still be
        valid for hours)."""
        for session in self.sessions_of(company):
            if session.subject not in subjects:
                log.info(
                    "member removed; socket closed",
                    extra=fields(sid=session.sid, company_id=str(company)),
                )
                await self.sio.emit(
                    "session_expired",
                    {"reason": "not a member of this company"},
                    to=session.sid,
                    ignore_queue=True,
                )
                await self.sio.disconnect(session.sid, ignore_queue=True)

    # --- socket handlers -----------------------------------------------------------------
    async def _verify(self, token: object) -> Claims:
        return await asyncio.to_thread(self.verifier.verify, token)

    async def _role(self, claims: Claims) -> str:
        async with self.pool.connection() as conn:
            role = await history.member_role(conn, claims.company_id, claims.subject)
        if role is None:
            raise AuthError("not a member of this company")
        return role

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        try:
            claims = await self._verify(auth.get("token"))
            role = await self._role(claims)
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            log.warning("connection refused: database unavailable")
            raise socketio.exceptions.ConnectionRefusedError("service unavailable") from None
        last_seq = auth.get("last_seq")
        if last_seq is not None and (not isinstance(last_seq, int) or last_seq < 0):
            raise socketio.exceptions.ConnectionRefusedError("last_seq must be a whole number")
        session = Session(sid, claims.company_id, claims.subject, role, claims.expires_at)
        session.engine = self.sio.eio.sockets.get(self.sio.manager.eio_sid_from_sid(sid, "/"))
        session.abort = _aborter(environ)
        self.sessions[sid] = session
        self._company_sessions.setdefault(claims.company_id, {})[sid] = session
        if claims.company_id not in self.feeds:
            self.feeds[claims.company_id] = CompanyFeed(self, claims.company_id)
        await self.sio.enter_room(sid, rooms.company_room(claims.company_id))
        self._schedule_expiry(session)
        epoch = auth.get("epoch") if isinstance(auth.get("epoch"), str) else None
        self.sio.start_background_task(
            self._catch_up_session, session, last_seq, epoch, bool(auth.get("snapshot"))
        )

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        if session.expiry is not None:
            session.expiry.cancel()
        others = self._company_sessions.get(session.company, {})
        others.pop(sid, None)
        if not others:
            self._company_sessions.pop(session.company, None)
            feed = self.feeds.pop(session.company, None)
            if feed is not None:
                feed.close()

    async def on_resume(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        last_seq = data.get("last_seq") if isinstance(data, dict) else None
        if session is None or not isinstance(last_seq, int) or last_seq < 0:
            return {"ok": False, "error": "resume needs last_seq"}
        if session.replaying:
            # two replays at once would interleave their frames: the client waits for `live`
            return {"ok": False, "error": "a replay is running; resume after live"}
        session.replaying, session.held = True, []  # from now on, live events are held
        epoch = data.get("epoch") if isinstance(data.get("epoch"), str) else None
        self.sio.start_background_task(self._catch_up_session, session, last_seq, epoch, False)
        return {"ok": True}

    async def on_snapshot(self, sid: str, _data: Any = None) -> dict[str, Any]:
        session = self.sessions.get(sid)
        if session is None:
            return {"ok": False, "error": "not connected"}
        await self._send_snapshot(session)
        return {"ok": True}

    async def on_subscribe(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        creator = data.get("creator_id") if isinstance(data, dict) else None
        if session is None or not isinstance(creator, str):
            return {"ok": False, "error": "subscribe needs creator_id"}
        async with self.pool.connection() as conn:
            owned = await history.owns_creator(conn, session.company, creator)
        if not owned:
            return {"ok": False, "error": "no such creator"}
        creator = str(uuid.UUID(creator))
        session.filters.add(creator)
        await self.sio.enter_room(sid, rooms.creator_room(session.company, creator))
        return {"ok": True}

    async def on_unsubscribe(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        creator = data.get("creator_id") if isinstance(data, dict) else None
        if session is None or not isinstance(creator, str):
            return {"ok": False, "error": "unsubscribe needs creator_id"}
        with contextlib.suppress(ValueError):
            creator = str(uuid.UUID(creator))
            if creator in session.filters:
                session.filters.discard(creator)
                await self.sio.leave_room(sid, rooms.creator_room(session.company, creator))
        return {"ok": True}

    async def on_refresh_token(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        token = data.get("token") if isinstance(data, dict) else None
        if session is None:
            return {"ok": False, "error": "not connected"}
        try:
            claims = await self._verify(token)
            if claims.subject != session.subject or claims.company_id != session.company:
                raise AuthError("token is for someone else")
            session.role = await self._role(claims)
        except AuthError as exc:
            return {"ok": False, "error": str(exc)}
        session.expires_at = claims.expires_at
        self._schedule_expiry(session)
        return {"ok": True, "expires_at": claims.expires_at.isoformat()}

    # --- catching a session up -----------------------------------------------------------
    def _schedule_expiry(self, session: Session) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
        delay = max(0.0, (session.expires_at - datetime.now(UTC)).total_seconds())
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(delay, lambda: self.spawn(self._expire(session.sid)))

    async def _expire(self, sid: str) -> None:
        if sid in self.sessions:
            await self.sio.emit("session_expired", {}, to=sid, ignore_queue=True)
            await self.sio.disconnect(sid, ignore_queue=True)

    async def _send_snapshot(self, session: Session) -> None:
        async with self.pool.connection() as conn:
            states = await history.creator_states(conn, session.company)
        for state in states:
            self._push([session], "creator_state", state)

    async def _catch_up_session(
        self, session: Session, last_seq: int | None, epoch: str | None, snapshot: bool
    ) -> None:
        try:
            await self._replay(session, last_seq, epoch, snapshot)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.warning("replay failed; disconnecting", extra=fields(error=type(exc).__name__))
            await self.sio.disconnect(session.sid, ignore_queue=True)

    async def _replay(
        self, session: Session, last_seq: int | None, epoch: str | None, snapshot: bool
    ) -> None:
        """Send what the socket missed, then switch it to live.

        PostgreSQL gives what lies up to the feed's head as it stands now; everything past
        that head goes through the feed, which holds it for the socket while this runs.
        The held events past the cursor are sent and the socket switched to live with no
        await in between, so nothing can slip between the two or be sent twice."""
        feed = self.feeds.get(session.company)
        if feed is None:
            return
        await feed.load()
        if snapshot:
            await self._send_snapshot(session)
        resync: dict[str, Any] | None = None
        if last_seq is not None:
            async with self.pool.connection() as conn:
                stored = await history.head(conn, session.company)
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
                async with self.pool.connection() as conn:
                    page = await history.events_between(
                        conn, session.company, session.cursor, target, self.cfg.replay_page
                    )
                # an empty page: what lay between was pruned, so there is nothing to send
                session.cursor = page[-1]["seq"] if page else target
                visible = session.visible(page)
                if visible:
                    self._push([session], "events", visible)
        if resync is not None:
            self._push([session], "resync", {**resync, "last_seq": session.cursor})
        held, session.held = session.held, []
        tail = [e for e in held if e["seq"] > session.cursor]
        if tail:
            session.cursor = tail[-1]["seq"]
            visible = session.visible(tail)
            if visible:
                self._push([session], "events", visible)
        session.replaying = False
        self._push([session], "live", {"epoch": feed.epoch, "last_seq": session.cursor})


def _frame(events: list[dict[str, Any]]) -> tuple[str, Any]:
    """A live frame: one event alone, or several in one `events` frame."""
    return ("event", events[0]) if len(events) == 1 else ("events", events)


def _aborter(environ: dict[str, Any]) -> Callable[[], None] | None:
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
