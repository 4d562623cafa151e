"""The python-socketio, python-engineio and uvicorn internals that realtime/transport.py uses.

Each test names the internal it guards: when an upgrade renames, moves or reshapes one, the test
fails here, before the relay silently stops taking published events, queues frames nowhere, or
can no longer cut off a slow reader.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import engineio
import engineio.async_socket
import pytest
import socketio
import socketio.async_pubsub_manager
import websockets.frames
from uvicorn.protocols.websockets import websockets_impl, websockets_sansio_impl, wsproto_impl

from controlroom.core import rooms
from realtime import transport

JS = Path(__file__).resolve().parents[1] / "js"


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# --- the Redis manager: published events are taken before Socket.IO broadcasts them ----------
def test_the_pubsub_manager_hands_every_emit_to_handle_emit() -> None:
    hook = socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit
    assert inspect.iscoroutinefunction(hook)
    assert _parameters(hook) == ["self", "message"]
    # both paths of a publish reach it: from another instance (the listener) and from this one
    pubsub = socketio.async_pubsub_manager.AsyncPubSubManager
    assert "self._handle_emit(data)" in inspect.getsource(pubsub._thread)
    assert "self._handle_emit(message)" in inspect.getsource(pubsub.emit)
    assert issubclass(transport.FeedRedisManager, socketio.AsyncRedisManager)
    assert issubclass(socketio.AsyncRedisManager, pubsub)


def test_feed_events_go_to_the_feed_and_the_rest_to_socketio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broadcast: list[dict[str, Any]] = []

    async def socketio_broadcast(_self: object, message: dict[str, Any]) -> None:
        broadcast.append(message)

    monkeypatch.setattr(
        socketio.async_pubsub_manager.AsyncPubSubManager, "_handle_emit", socketio_broadcast
    )
    manager = transport.FeedRedisManager("redis://127.0.0.1:9/0")  # never connects here
    taken: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
    manager.deliver(lambda *args: taken.append(args), frozenset({"event", "creator_state"}))
    company = uuid.uuid4()
    room = rooms.company_room(company)
    message = {"method": "emit", "event": "event", "room": room, "data": [{"seq": 7}]}
    other = {"method": "emit", "event": "hello", "room": room, "data": [{}]}

    async def run() -> None:
        await manager._handle_emit(message)
        await manager._handle_emit(other)

    asyncio.run(run())
    assert taken == [(company, "event", {"seq": 7})]
    assert broadcast == [other]


# --- frames: encoded once, put straight on Engine.IO queues ------------------------------------
FRAME_DATA = [{"seq": 1, "summary": {"message_text": "héllo ✓"}}, {"seq": 2, "creator_id": None}]


def _wire() -> str:
    frame = transport.encode(socketio.AsyncServer(async_mode="asgi"), "events", FRAME_DATA)
    assert isinstance(frame, engineio.packet.Packet)
    wire = frame.encode()
    assert isinstance(wire, str)
    return wire


def test_an_encoded_frame_decodes_back_with_the_python_parsers() -> None:
    eio = engineio.packet.Packet(encoded_packet=_wire())
    assert eio.packet_type == engineio.packet.MESSAGE
    sio = socketio.packet.Packet(encoded_packet=eio.data)
    assert sio.packet_type == socketio.packet.EVENT
    assert sio.namespace in {None, "/"}  # the root namespace goes unwritten on the wire
    assert sio.data == ["events", FRAME_DATA]


def test_an_encoded_frame_decodes_back_with_the_official_javascript_parsers() -> None:
    node = shutil.which("node")
    # `make install` puts the official client in tests/js before any test runs
    assert node is not None, "node is needed: the project's tests run the official client"
    assert (JS / "node_modules" / "socket.io-parser").is_dir(), "tests/js: run `make install`"
    script = """
import { decodePacket } from "engine.io-parser";
import { Decoder } from "socket.io-parser";
const eio = decodePacket(process.argv[1]);
const decoder = new Decoder();
decoder.on("decoded", (p) =>
  console.log(JSON.stringify({ eio: eio.type, type: p.type, nsp: p.nsp, data: p.data })));
decoder.add(eio.data);
"""
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, _wire()],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    decoded = json.loads(out.stdout)
    assert decoded == {"eio": "message", "type": 2, "nsp": "/", "data": ["events", FRAME_DATA]}


def test_the_engine_socket_is_found_by_sid_and_its_queue_takes_frames() -> None:
    assert _parameters(socketio.AsyncServer(async_mode="asgi").manager.eio_sid_from_sid) == [
        "sid",
        "namespace",
    ]

    async def run() -> None:
        sio = socketio.AsyncServer(async_mode="asgi")
        engine = engineio.async_socket.AsyncSocket(sio.eio, "engine-sid")
        sio.eio.sockets["engine-sid"] = engine
        sid = await sio.manager.connect("engine-sid", "/")
        assert transport.engine_socket(sio, sid) is engine
        assert transport.engine_socket(sio, "nobody") is None
        assert isinstance(engine.queue, asyncio.Queue) and engine.closed is False
        frame = transport.encode(sio, "live", {"last_seq": 3})
        transport.put(engine, frame)
        assert transport.queued(engine) == 1
        assert engine.queue.get_nowait() is frame
        engine.queue.task_done()

    asyncio.run(run())
    assert transport.queued(None) == 0


def test_closing_now_frees_the_queue_and_stops_the_writer() -> None:
    assert {"wait", "abort"} <= set(_parameters(engineio.async_socket.AsyncSocket.close))

    async def run() -> None:
        server = engineio.AsyncServer(async_mode="asgi")
        engine = engineio.async_socket.AsyncSocket(server, "engine-sid")
        for n in range(3):
            transport.put(engine, engineio.packet.Packet(engineio.packet.MESSAGE, str(n)))
        await transport.close_now(engine)
        assert engine.closed
        assert engine.queue.get_nowait() is None  # the writer's signal to stop
        assert engine.queue.empty()
        transport.put(engine, engineio.packet.Packet(engineio.packet.MESSAGE, "late"))
        assert engine.queue.empty()  # a closed socket is sent nothing

    asyncio.run(run())


# --- the reset of a slow reader's TCP connection -----------------------------------------------
def test_engineio_passes_the_asgi_scope_and_send_to_socketio() -> None:
    source = inspect.getsource(engineio.async_drivers.asgi.translate_request)
    assert "'asgi.send': send" in source
    assert "'asgi.scope': scope" in source


@pytest.mark.parametrize(
    ("protocol", "send"),
    [
        (websockets_impl.WebSocketProtocol, "asgi_send"),
        (websockets_sansio_impl.WebSocketsSansIOProtocol, "send"),
        (wsproto_impl.WSProtocol, "send"),
    ],
)
def test_uvicorn_gives_the_app_a_send_bound_to_the_protocol_holding_the_transport(
    protocol: type, send: str
) -> None:
    assert "self.transport = transport" in inspect.getsource(protocol.connection_made)
    assert "self.app(self.scope, " in inspect.getsource(protocol.run_asgi)
    assert f"self.{send})" in inspect.getsource(protocol.run_asgi)
    assert inspect.iscoroutinefunction(getattr(protocol, send))


# --- pre-encoded frames written to a websocket's transport -------------------------------------
@pytest.mark.parametrize("size", [10, 200, 70_000])
def test_a_prebuilt_frame_is_the_frame_websockets_would_write(size: int) -> None:
    frame = transport.encode(socketio.AsyncServer(async_mode="asgi"), "event", {"x": "é" * size})
    payload = frame.encode().encode()
    # what uvicorn's protocol writes for `websocket.send` (conn.send_text, unmasked, no deflate)
    expected = websockets.frames.Frame(websockets.frames.Opcode.TEXT, payload).serialize(
        mask=False, extensions=[]
    )
    assert transport.ws_frame(frame) == expected


def test_the_internals_a_wire_reads_are_there() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    assert hasattr(queue, "_getters")  # a parked `get()` waits on a future there
    assert "self._getters.append(getter)" in inspect.getsource(asyncio.Queue.get)
    protocol = websockets_sansio_impl.WebSocketsSansIOProtocol
    source = inspect.getsource(protocol)
    for attribute in ("writable", "close_sent", "disconnected", "transport"):
        assert f"self.{attribute} = " in source or f"self.{attribute}: " in source
    # flow control: a paused transport clears `writable`, and `send` waits on it
    assert "self.writable.clear()" in inspect.getsource(protocol.pause_writing)
    assert "await self.writable.wait()" in inspect.getsource(protocol.send)
    # Engine.IO's websocket writer takes frames from the socket's queue, in order
    writer = inspect.getsource(engineio.async_socket.AsyncSocket._websocket_handler)
    assert "packets = await self.poll()" in writer
    assert "await ws.send(pkt.encode())" in writer


def test_no_wire_for_a_long_polling_socket() -> None:
    async def run() -> None:
        sio = socketio.AsyncServer(async_mode="asgi")
        engine = engineio.async_socket.AsyncSocket(sio.eio, "engine-sid")
        sio.eio.sockets["engine-sid"] = engine
        sid = await sio.manager.connect("engine-sid", "/")
        sio.environ["engine-sid"] = {"asgi.scope": {"type": "http"}, "asgi.send": None}
        assert transport.wire(sio, sid, engine) is None
        assert transport.wire(sio, sid, None) is None

    asyncio.run(run())
