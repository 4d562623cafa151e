"""Persist: events stored per second per process, through HTTP and called in-process.

Task bodies (as the webhook would enqueue them) are POSTed straight to the persist function
(functions-framework, one process, 8 connections), skipping the Cloud Tasks emulator, whose
one-at-a-time dispatch would otherwise be what is measured. The baseline is the same use
case, `ingest.ingest`, called in a loop on one connection in this process: the cost of the
work without HTTP and the framework. Each delivery is stored for one watching company.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import load
from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import FunctionServer
from controlroom.dev.stack.process import free_port
from controlroom.usecases import ingest


def _tasks(count: int, secret: str) -> list[bytes]:
    creators = [twitchsim.Broadcaster(i, login) for i, login, _ in seed.DEMO_CREATORS]
    out = []
    for i in range(count):
        body = twitchsim.notification_body("channel.subscription.gift", creators[i % len(creators)])
        d = twitchsim.sign_delivery(body, secret)
        delivery = eventsub.verify_delivery(d.headers, d.body, [secret.encode()], datetime.now(UTC))
        out.append(PersistTask.from_delivery(delivery, datetime.now(UTC)).encode())
    return out


def run(quick: bool = False) -> dict[str, float]:
    count = 400 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        env = {**os.environ, **endpoints.env()}
        cfg = settings.DatabaseSettings.from_env(env)
        with db.connect(cfg) as conn:
            seed.seed_demo(conn)
        persist = FunctionServer("persist", Path(tmp) / "logs", free_port(), env)
        persist.start()
        try:
            secret = endpoints.eventsub_secret
            headers = {"Content-Type": "application/json"}
            via_http = load.run(
                persist.url, [load.Request(b, headers) for b in _tasks(count, secret)]
            )
            publisher = SocketIOPublisher(endpoints.redis_url)
            bodies = _tasks(count, secret)
            with db.connect(cfg, autocommit=True) as conn:
                started = time.perf_counter()
                for body in bodies:
                    ingest.ingest(body, conn, publisher)
                in_process = count / (time.perf_counter() - started)
        finally:
            persist.stop()
            stack.stop()
    assert set(via_http.statuses) == {204}, via_http.statuses
    print(f"{count} deliveries, one watching company each, PostgreSQL with fsync on")
    print(f"{'':<46}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(
        f"{'persist function over HTTP (8 connections)':<46}{via_http.rate:>10,.0f}"
        f"{via_http.p50:>10.1f}{via_http.pct(0.99):>10.1f}"
    )
    print(f"{'ingest() in-process, one connection (baseline)':<46}{in_process:>10,.0f}")
    print(f"{'ratio function / in-process':<46}{via_http.rate / in_process:>10.2f}")
    return {"http_rate": via_http.rate, "in_process_rate": in_process}
