"""Per-company Redis channels for the relay: an instance receives only its companies' messages.

Publishers put a company's emits on `<channel>:company:<id>` (controlroom/adapters/emitter.py);
this manager subscribes, on its one pub/sub connection, to the manager's own channel (what
python-socketio publishes between instances: disconnects, rooms, callbacks, and emits from
publishers that predate per-company channels) and to the channel of each company the relay
watches: the relay watches a company when its first socket of that company connects and
stops when the last one leaves. Four instances of 250 clients each then decode what one
instance of 1,000 decodes, not four times that.

No gap when a company is first watched: `ready` waits for Redis to confirm the SUBSCRIBE
before the company's feed reads its head from PostgreSQL, so an event is either stored before
the head was read (and replayed from PostgreSQL) or published after the subscription took
effect (and received); the feed drops what it has twice. Replies on one connection come in
the order of its commands, so `ready` counts SUBSCRIBE replies per channel instead of taking
any reply (SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE in quick succession: the first reply must not
answer for the second). When Redis does not answer within `SUBSCRIBE_WAIT_SECONDS` (it is
down) the relay goes on, as it did before: the reconcile loop fills from PostgreSQL what a
lost publish left out.

Like realtime/transport.py, this leans on python-socketio internals (`_publish`, `_listen`,
`_redis_connect`, the `redis` attribute); tests/unit/test_pubsub.py fails when an upgrade
changes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis
import socketio

from controlroom.adapters.emitter import channel_of, company_channel
from controlroom.logs import fields

log = logging.getLogger(__name__)
SUBSCRIBE_WAIT_SECONDS = 2.0  # then the relay goes on without Redis; reconcile fills gaps
MAX_RETRY_SECONDS = 60.0


class ChannelRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager with a channel per company, subscribed on demand."""

    connected: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watched: set[str] = set()  # the company channels this instance subscribes to
        # messages received per channel (the manager's own included): what this instance decodes
        self.received: collections.Counter[str] = collections.Counter()
        self._sent: collections.Counter[str] = collections.Counter()  # SUBSCRIBEs per channel
        self._acked: collections.Counter[str] = collections.Counter()  # their replies
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._commands: asyncio.Queue[tuple[str, str]] | None = None

    # --- what the relay calls ------------------------------------------------------------
    def watch(self, company: uuid.UUID) -> None:
        """Receive the company's messages from now on (SUBSCRIBE, in order with the rest)."""
        channel = company_channel(self.channel, company)
        self.watched.add(channel)
        self._sent[channel] += 1
        self._command("subscribe", channel)

    def unwatch(self, company: uuid.UUID) -> None:
        """No more of the company's messages (its last socket here left)."""
        channel = company_channel(self.channel, company)
        self.watched.discard(channel)
        self._command("unsubscribe", channel)

    async def ready(self, company: uuid.UUID) -> bool:
        """Wait until Redis has confirmed the company's latest SUBSCRIBE; False on timeout."""
        channel = company_channel(self.channel, company)
        target = self._sent[channel]
        if channel not in self.watched or self._acked[channel] >= target:
            return channel in self.watched
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append((target, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), SUBSCRIBE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("redis subscribe not confirmed", extra=fields(channel=channel))
            return False
        finally:
            waiting = self._waiters.get(channel, [])
            if (target, future) in waiting:
                waiting.remove((target, future))
        return True

    def received_for(self, company: uuid.UUID) -> int:
        """How many messages of the company's channel this instance received."""
        return self.received[company_channel(self.channel, company)]

    # --- python-socketio's hooks ---------------------------------------------------------
    async def _publish(self, data: Any) -> Any:
        """A company's emits (from this instance's API) on the company's channel."""
        channel = channel_of(self.channel, data)
        if channel == self.channel:
            return await super()._publish(data)
        for retries_left in (1, 0):
            try:
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(channel, self.json.dumps(data))
            except (redis.RedisError, OSError) as exc:
                self.connected = False
                log.warning(
                    "redis publish failed",
                    extra=fields(error=type(exc).__name__, retrying=retries_left > 0),
                )
        return None

    async def _listen(self) -> AsyncIterator[Any]:
        async for message in self._messages():
            kind, channel = message.get("type"), _text(message.get("channel"))
            if kind == "subscribe":
                self._confirmed(channel)
            elif kind == "message" and "data" in message:
                self.received[channel] += 1
                yield message["data"]

    # --- the pub/sub connection ------------------------------------------------------------
    def _command(self, verb: str, channel: str) -> None:
        if self._commands is not None:  # else: connecting, which subscribes all watched
            self._commands.put_nowait((verb, channel))

    def _confirmed(self, channel: str) -> None:
        self._acked[channel] += 1
        waiting = self._waiters.get(channel, [])
        for target, future in list(waiting):
            if self._acked[channel] >= target and not future.done():
                future.set_result(None)

    def _resubscribing(self) -> None:
        """A new connection subscribes every watched channel afresh: the replies still owed
        by the old one never come, so each channel's count starts over from its latest."""
        for channel in set(self._sent) | set(self._acked):
            if channel in self.watched:
                self._sent[channel] += 1
                self._acked[channel] = self._sent[channel] - 1
            else:
                self._acked[channel] = self._sent[channel]

    async def _write(self, pubsub: Any, commands: asyncio.Queue[tuple[str, str]]) -> None:
        """Send SUBSCRIBE and UNSUBSCRIBE in the order the relay asked for them."""
        while True:
            verb, channel = await commands.get()
            if verb == "subscribe":
                await pubsub.subscribe(channel)
            else:
                await pubsub.unsubscribe(channel)

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        retry = 1.0
        while True:
            pubsub: Any = None
            writer: asyncio.Task[None] | None = None
            try:
                self._redis_connect()
                # a connection of our own, with the SUBSCRIBE replies (`ready` counts them)
                pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
                self._commands = asyncio.Queue()
                self._resubscribing()
                await pubsub.subscribe(self.channel, *sorted(self.watched))
                writer = asyncio.ensure_future(self._write(pubsub, self._commands))
                retry = 1.0
                async for message in pubsub.listen():
                    if writer.done():  # a SUBSCRIBE could not be sent: start over
                        writer.result()
                    yield message
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                log.error(
                    "cannot receive from redis; retrying",
                    extra=fields(error=type(exc).__name__, retry_seconds=retry),
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY_SECONDS)
            finally:
                self._commands = None
                if writer is not None:
                    writer.cancel()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def channels_of(sio: Any) -> ChannelRedisManager | None:
    """The Server's manager when it subscribes per company (a test's fake server has none)."""
    manager = getattr(sio, "manager", None)
    return manager if isinstance(manager, ChannelRedisManager) else None
