"""Per-company channels: where a message is published, how `ready` counts SUBSCRIBE replies,
and the python-socketio internals realtime/pubsub.py and the emitter rely on."""

from __future__ import annotations

import asyncio
import inspect
import uuid

import socketio
import socketio.async_pubsub_manager

from controlroom.adapters import emitter
from controlroom.core import rooms
from realtime import pubsub, transport


def test_a_company_s_emits_go_on_its_channel_and_the_rest_on_the_manager_s() -> None:
    company, creator = uuid.uuid4(), uuid.uuid4()
    mine = f"socketio:company:{company}"
    room = rooms.company_room(company)
    assert emitter.channel_of("socketio", {"method": "emit", "room": room}) == mine
    creator_room = rooms.creator_room(company, creator)
    assert emitter.channel_of("socketio", {"method": "emit", "room": creator_room}) == mine
    for other in (
        {"method": "emit", "room": "some-sid"},
        {"method": "emit", "room": None},
        {"method": "emit", "room": [room]},
        {"method": "emit", "room": "company:not-a-uuid"},
        {"method": "disconnect", "sid": "x"},
        {"method": "enter_room", "room": room},
    ):
        assert emitter.channel_of("socketio", other) == "socketio", other


def _manager() -> pubsub.ChannelRedisManager:
    return pubsub.ChannelRedisManager("redis://127.0.0.1:9/0")  # never connects here


def test_ready_waits_for_the_reply_to_the_latest_subscribe() -> None:
    async def run() -> None:
        manager = _manager()
        company = uuid.uuid4()
        channel = emitter.company_channel("socketio", company)
        manager.watch(company)
        manager.unwatch(company)
        manager.watch(company)  # SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE: two replies to come
        waiting = asyncio.ensure_future(manager.ready(company))
        await asyncio.sleep(0)
        manager._confirmed(channel)  # the first SUBSCRIBE's: the UNSUBSCRIBE still follows
        await asyncio.sleep(0)
        assert not waiting.done()
        manager._confirmed(channel)
        assert await waiting is True
        assert await manager.ready(company) is True  # confirmed already: at once

    asyncio.run(run())


def test_a_new_connection_subscribes_every_watched_channel_afresh() -> None:
    async def run() -> None:
        manager = _manager()
        watched, dropped = uuid.uuid4(), uuid.uuid4()
        manager.watch(watched)
        manager.watch(dropped)
        manager.unwatch(dropped)
        manager._resubscribing()  # the replies the old connection owed never come
        waiting = asyncio.ensure_future(manager.ready(watched))
        await asyncio.sleep(0)
        assert not waiting.done()
        manager._confirmed(emitter.company_channel("socketio", watched))
        assert await waiting is True
        assert await manager.ready(dropped) is False  # not watched: nothing to wait for

    asyncio.run(run())


def test_the_relay_s_manager_subscribes_per_company() -> None:
    assert issubclass(transport.FeedRedisManager, pubsub.ChannelRedisManager)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=transport.FeedRedisManager())
    assert pubsub.channels_of(sio) is sio.manager
    assert pubsub.channels_of(socketio.AsyncServer(async_mode="asgi")) is None


# --- the internals: an upgrade that changes one fails here ----------------------------------
def test_the_managers_publish_and_listen_through_the_hooks_we_override() -> None:
    base = socketio.async_pubsub_manager.AsyncPubSubManager
    assert "self._listen()" in inspect.getsource(base._thread)
    assert "await self._publish(message)" in inspect.getsource(base.emit)
    for manager in (socketio.AsyncRedisManager, socketio.RedisManager):
        connect = inspect.getsource(manager._redis_connect)
        assert "self.redis =" in connect and "self.connected = True" in connect
        assert list(inspect.signature(manager._publish).parameters) == ["self", "data"]
        assert "self.json.dumps(data)" in inspect.getsource(manager._publish)
    assert "self._publish(" in inspect.getsource(socketio.pubsub_manager.PubSubManager.emit)
