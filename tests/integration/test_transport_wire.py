"""Frames written pre-encoded to a websocket's transport (realtime/transport.py `Wire`) and
frames going through Engine.IO's queue and writer task reach the client in the order sent,
under uvicorn's websocket protocol on loopback."""

from __future__ import annotations

import asyncio

import socketio
import uvicorn

from realtime import transport


def test_frames_written_ahead_of_the_queue_arrive_in_order_under_uvicorn() -> None:
    """Frames sent to one socket, some written pre-encoded, some through Engine.IO's queue and
    writer, arrive at the Python client in the order they were sent."""
    count = 400

    async def run() -> tuple[list[int], int]:
        sio = socketio.AsyncServer(async_mode="asgi")
        app = socketio.ASGIApp(sio)
        connected: asyncio.Queue[str] = asyncio.Queue()
        sio.on("connect", lambda sid, environ: connected.put_nowait(sid))
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            ws="websockets-sansio",
            log_level="warning",
            lifespan="off",
            ws_per_message_deflate=False,
        )
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = socketio.AsyncClient(reconnection=False)
        received: list[int] = []
        done = asyncio.Event()

        def on_n(n: int) -> None:
            received.append(n)
            if len(received) == count:
                done.set()

        client.on("n", on_n)
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        sid = await asyncio.wait_for(connected.get(), 10)
        engine = transport.engine_socket(sio, sid)
        wire = transport.wire(sio, sid, engine)
        assert wire is not None
        written = 0
        for n in range(count):
            frame = transport.encode(sio, "n", n)
            if n % 7 == 3:  # another frame on the queue (an ack, a page) between live frames
                transport.put(engine, frame)
            elif wire.write(transport.ws_frame(frame)):
                written += 1
            else:
                transport.put(engine, frame)
            if n % 5 == 0:
                await asyncio.sleep(0)  # let the writer take part of the queue
        await asyncio.wait_for(done.wait(), 20)
        await client.disconnect()
        server.should_exit = True
        await serving
        return received, written

    received, written = asyncio.run(run())
    assert received == list(range(count))
    assert written > 0  # the test did write some frames ahead of the queue
