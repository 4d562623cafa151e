"""The Socket.IO relay: authenticated tenant sockets, their handlers, and the live path.

Persist publishes each stored event once, through Redis, to the room `company:<id>`. Every
relay instance receives it (realtime/transport.py takes it from the Redis manager before
Socket.IO would broadcast it) and hands it to the company's feed (realtime/feed.py), which
puts events in `seq` order and gives them back here to be sent to the company's live sockets.

Each socket has one ordered path and a cursor, the last `seq` that path has passed (sent,
or left out by the socket's creator filter). Everything a socket is sent, live frames,
replayed pages, `live` and `resync`, is decided and written to its Engine.IO queue in one
synchronous step that also moves the cursor, so no interleaving of connect, resume, replay
and live can send a `seq` twice or out of order: a live frame skips what is at or below
the cursor. A socket that is replaying (realtime/replay.py) gets no live frames: they are
held for it, and when its replay from PostgreSQL has reached the head the feed had when the
replay began, the held events past the cursor are sent and the socket switches to live,
without an await in between.

A socket whose client stops reading cannot hold the instance's memory: Engine.IO queues
frames per socket without a limit, so before each live send the relay cuts off any socket
with more than `RELAY_SEND_QUEUE_LIMIT` frames waiting. Membership is checked again on every
reconcile tick, so a removed member's open socket is closed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
import socketio

from controlroom.adapters.ratelimit import Decision, Limits
from controlroom.adapters.tokens import TokenVerifier
from controlroom.core import rooms
from controlroom.core.roles import Claims
from controlroom.errors import AuthError
from controlroom.logs import fields
from controlroom.settings import RealtimeSettings
from controlroom.usecases import history, members
from controlroom.usecases.history import Head
from realtime import pubsub, transport
from realtime.feed import CompanyFeed
from realtime.middleware import scope_client_ip
from realtime.replay import replay
from realtime.sessions import Session

log = logging.getLogger(__name__)
# a narrowed socket names its creators at connect; a page follows one, a wall of them a few
MAX_CONNECT_CREATORS = 50


class Relay:
    FEED_EVENTS = frozenset({"event", "creator_state"})

    def __init__(
        self,
        sio: socketio.AsyncServer,
        pool: psycopg_pool.AsyncConnectionPool,
        verifier: TokenVerifier,
        cfg: RealtimeSettings,
        *,
        limits: Limits | None = None,
    ) -> None:
        self.sio = sio
        self.pool = pool
        self.verifier = verifier
        self.cfg = cfg
        self.limits = limits or Limits()  # connects per IP, resumes per subject
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

    def _feed(self, company: uuid.UUID) -> CompanyFeed:
        return CompanyFeed(
            company,
            fetch_head=self._fetch_head,
            fetch_page=self._fetch_page,
            send=self.send_live,
            spawn=self.spawn,
            batch_seconds=self.cfg.batch_ms / 1000,
        )

    async def _fetch_head(self, company: uuid.UUID) -> Head:
        async with self.pool.connection() as conn:
            return await history.head(conn, company)

    async def _fetch_page(self, company: uuid.UUID, after: int, upto: int) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            return await history.events_between(conn, company, after, upto, self.cfg.replay_page)

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
        if session.engine is not None:
            await transport.close_now(session.engine)

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
        """Encode one Socket.IO event once and send it to each socket now, in order.

        No await and no task per socket: before anything else can run, the frame is either
        written to the socket's connection or in its Engine.IO queue, in order with
        everything else this relay sends it. A websocket whose queue is empty and whose
        writer is idle gets the frame's websocket bytes, built once for all the sockets,
        written to its transport at once (`RELAY_FAST_WRITE`, docs/realtime.md); any other
        socket gets it on its queue, written by Engine.IO's task for that socket."""
        frame = transport.encode(self.sio, name, data)
        if not self.cfg.fast_write:
            for session in sessions:
                transport.put(session.engine, frame)
            return
        raw: bytes | None = None
        for session in sessions:
            wire = session.wire if session.wired else self._wire(session)
            if wire is not None:
                if raw is None:
                    raw = transport.ws_frame(frame)
                if wire.write(raw):
                    continue
            transport.put(session.engine, frame)

    def _wire(self, session: Session) -> transport.Wire | None:
        session.wired = True
        session.wire = transport.wire(self.sio, session.sid, session.engine)
        return session.wire

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
                        current = await members.current_members(conn, company)
                    await self._end_revoked(company, current)
                    if head.last_seq > feed.head:
                        await feed.catch_up(head.last_seq)
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    log.warning("reconcile skipped", extra=fields(error=type(exc).__name__))
                except Exception:  # a bug must not end gap filling for the whole instance
                    log.exception("reconcile failed", extra=fields(company_id=str(company)))

    async def _end_revoked(self, company: uuid.UUID, current: members.CurrentMembers) -> None:
        """Close the sockets of people who are no longer members, or of everyone when the
        company is suspended (their tokens may still be valid for minutes), saying why."""
        reason = "company suspended" if current.suspended else "not a member of this company"
        for session in self.sessions_of(company):
            if session.subject not in current.subjects:
                log.info(
                    "company suspended; socket closed"
                    if current.suspended
                    else "member removed; socket closed",
                    extra=fields(sid=session.sid, company_id=str(company)),
                )
                await self.sio.emit(
                    "session_expired",
                    {"reason": reason},
                    to=session.sid,
                    ignore_queue=True,
                )
                await self.sio.disconnect(session.sid, ignore_queue=True)

    # --- socket handlers -----------------------------------------------------------------
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        if self.limits.connect_ip is not None:  # before the token is even read
            ip = scope_client_ip(environ.get("asgi.scope", {}), self.limits.trusted_proxy_hops)
            decision = await self.limits.connect_ip.check(ip)
            if not decision.allowed:
                log.info("socket refused: rate limited", extra=fields(limit="connect-ip"))
                raise socketio.exceptions.ConnectionRefusedError("rate limited", refusal(decision))
        try:
            who = await members.authenticate(self.verifier, self.pool.connection, auth.get("token"))
        except AuthError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            log.warning("connection refused: database unavailable")
            raise socketio.exceptions.ConnectionRefusedError("service unavailable") from None
        last_seq = auth.get("last_seq")
        if last_seq is not None and (not isinstance(last_seq, int) or last_seq < 0):
            raise socketio.exceptions.ConnectionRefusedError("last_seq must be a whole number")
        claims = who.claims
        creators = await self._connect_filters(claims.company_id, auth.get("creators"))
        session = Session(
            sid, claims.company_id, claims.subject, who.caller.role, claims.expires_at
        )
        session.filters = creators
        session.engine = transport.engine_socket(self.sio, sid)
        session.abort = transport.aborter(environ)
        self.sessions[sid] = session
        self._company_sessions.setdefault(claims.company_id, {})[sid] = session
        channels = pubsub.channels_of(self.sio)
        if claims.company_id not in self.feeds:
            self.feeds[claims.company_id] = self._feed(claims.company_id)
            if channels is not None:  # the company's Redis channel, from its first socket on
                channels.watch(claims.company_id)
        await self.sio.enter_room(sid, rooms.company_room(claims.company_id))
        for creator in creators:
            await self.sio.enter_room(sid, rooms.creator_room(claims.company_id, creator))
        self._schedule_expiry(session)
        if channels is not None:  # subscribed before the feed reads its head: no gap
            await channels.ready(claims.company_id)
        epoch = auth.get("epoch") if isinstance(auth.get("epoch"), str) else None
        self.sio.start_background_task(
            self._catch_up_session, session, last_seq, epoch, bool(auth.get("snapshot"))
        )

    async def _connect_filters(self, company: uuid.UUID, creators: Any) -> set[str]:
        """A narrowed socket's creators, named at connect (`auth.creators`), so that the replay
        that starts with the connection is already filtered: a `subscribe` sent after connecting
        is answered while that replay may already be sending the other creators' events."""
        if creators is None:
            return set()
        if (
            not isinstance(creators, list)
            or not 0 < len(creators) <= MAX_CONNECT_CREATORS
            or not all(isinstance(c, str) for c in creators)
        ):
            raise socketio.exceptions.ConnectionRefusedError(
                f"creators must be a list of 1 to {MAX_CONNECT_CREATORS} creator ids"
            )
        try:
            async with self.pool.connection() as conn:
                for creator in creators:
                    if not await history.owns_creator(conn, company, creator):
                        raise socketio.exceptions.ConnectionRefusedError("no such creator")
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            log.warning("connection refused: database unavailable")
            raise socketio.exceptions.ConnectionRefusedError("service unavailable") from None
        return {str(uuid.UUID(c)) for c in creators}

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
                if (channels := pubsub.channels_of(self.sio)) is not None:
                    channels.unwatch(session.company)  # its last socket here left

    async def on_resume(self, sid: str, data: Any) -> dict[str, Any]:
        session = self.sessions.get(sid)
        last_seq = data.get("last_seq") if isinstance(data, dict) else None
        if session is None or not isinstance(last_seq, int) or last_seq < 0:
            return {"ok": False, "error": "resume needs last_seq"}
        if session.replaying or session.resuming:
            # two replays at once would interleave their frames: the client waits for `live`.
            # `resuming` is claimed before the rate limit's await, so a second resume handled
            # meanwhile is refused too (CI saw both accepted when only `replaying` was read).
            return {"ok": False, "error": "a replay is running; resume after live"}
        session.resuming = True
        try:
            if self.limits.resume_subject is not None:  # a replay reads PostgreSQL: per person
                decision = await self.limits.resume_subject.check(session.subject)
                if not decision.allowed:
                    log.info("resume refused: rate limited", extra=fields(sid=sid))
                    return {"ok": False, "error": "rate limited", **refusal(decision)}
            session.replaying, session.held = True, []  # from now on, live events are held
        finally:
            session.resuming = False
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

        def same_person(claims: Claims) -> None:
            if claims.subject != session.subject or claims.company_id != session.company:
                raise AuthError("token is for someone else")

        try:
            who = await members.authenticate(
                self.verifier, self.pool.connection, token, expect=same_person
            )
        except AuthError as exc:
            return {"ok": False, "error": str(exc)}
        claims = who.claims
        session.role = who.caller.role
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
            feed = self.feeds.get(session.company)
            if feed is None:
                return
            await replay(
                session,
                feed,
                last_seq=last_seq,
                epoch=epoch,
                snapshot=snapshot,
                fetch_head=self._fetch_head,
                fetch_page=self._fetch_page,
                push=self._push,
                send_snapshot=self._send_snapshot,
            )
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.warning("replay failed; disconnecting", extra=fields(error=type(exc).__name__))
            await self.sio.disconnect(session.sid, ignore_queue=True)


def refusal(decision: Decision) -> dict[str, Any]:
    """What a refused socket is told: `{"code": "rate_limited", "retry_after": N}`."""
    return {"code": "rate_limited", "retry_after": decision.retry_after}


def _frame(events: list[dict[str, Any]]) -> tuple[str, Any]:
    """A live frame: one event alone, or several in one `events` frame."""
    return ("event", events[0]) if len(events) == 1 else ("events", events)
