"""Persist: one company's events stored per second per process, with and without group commit.

Task bodies (as the webhook would enqueue them) are POSTed straight to the persist function
(functions-framework, one process), skipping the Cloud Tasks emulator, whose dispatch would
otherwise be what is measured. Every delivery is stored for the same one company (the demo
company), so its writers all meet on its counter row. The function runs twice, side by side
in the same run: as before (`PERSIST_GROUP_COMMIT=off`: each delivery its own transaction and
commit) and with group commit (concurrent deliveries of the company share one), each at 8
and 16 concurrent connections. The baseline is the use case called in a loop on one
connection in this process, one delivery at a time (what persist did per connection before);
the same use case with 16 threads sharing a GroupCommit shows the store's ceiling without
HTTP. Both persist processes run with THREADS=16, as deployed (16 requests per instance).

The bare 204 function (bench/bare_function, as bench/webhook.py runs it) takes the same
generator at 16 connections in the same run: no function on this machine answers faster
over HTTP, so it is the ceiling persist's figures are read against (persist/bare).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench import load
from bench.webhook import BareFunction
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


def _threads(count: int, workers: int, call: Callable[[int], None]) -> float:
    """`count` calls spread over `workers` threads; returns calls per second."""
    cursor = iter(range(count))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            call(index)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / (time.perf_counter() - started)


Row = tuple[str, float, float | None, float | None]
HEADERS = {"Content-Type": "application/json"}


def _http(label: str, url: str, bodies: list[bytes], workers: int) -> Row:
    """The bodies POSTed to url over `workers` keep-alive connections, all answered 204."""
    result = load.run(url, [load.Request(b, HEADERS) for b in bodies], workers=workers)
    assert set(result.statuses) == {204}, result.statuses
    return (label, result.rate, result.p50, result.pct(0.99))


GROUPED = "ingest() in-process, 16 threads, group commit"
ONE_BY_ONE = "  the same, gift bombs detected one at a time"


@contextlib.contextmanager
def _gift_detection(*, grouped: bool) -> Iterator[None]:
    """With grouped=False, a group's gift bombs go through detection one event at a time
    (each its own key check, lock, link and update), as before issue 20's grouped path."""
    if grouped:
        yield
        return
    ingest.GROUP_GIFT_BOMBS = False
    try:
        yield
    finally:
        ingest.GROUP_GIFT_BOMBS = True


def _gaps(cfg: settings.DatabaseSettings, company: str) -> tuple[int, int]:
    """(events stored, their highest seq) for the company: equal when seq is gap-free."""
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        row = conn.execute("SELECT count(*) AS n, max(seq) AS top FROM events").fetchone()
    assert row is not None
    return int(row["n"]), int(row["top"] or 0)


def run(quick: bool = False) -> dict[str, float]:
    count = 400 if quick else 4000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        env = {**os.environ, **endpoints.env()}
        cfg = settings.DatabaseSettings.from_env(env)
        with db.connect(cfg) as conn:
            seed.seed_demo(conn)
        company = str(seed.DEMO_COMPANY_ID)
        secret = endpoints.eventsub_secret
        servers = {
            mode: FunctionServer(
                "persist",
                Path(tmp) / "logs",
                free_port(),
                {**env, "PERSIST_GROUP_COMMIT": mode, "THREADS": "16"},
                instance=f"persist-{mode}",
            )
            for mode in ("off", "on")
        }
        bare = BareFunction("bare", Path(tmp) / "logs", free_port(), {**os.environ})
        servers["bare"] = bare
        for server in servers.values():
            server.start()
        try:
            publisher = SocketIOPublisher(endpoints.redis_url)
            bodies = _tasks(count, secret)
            with db.connect(cfg, autocommit=True) as conn:
                started = time.perf_counter()
                for body in bodies:
                    ingest.ingest(body, conn, publisher)
                rows.append(
                    (
                        "ingest() in-process, one at a time (baseline)",
                        count / (time.perf_counter() - started),
                        None,
                        None,
                    )
                )
            for workers in (8, 16):
                for mode, label in (("off", "before"), ("on", "group commit")):
                    rows.append(
                        _http(
                            f"function over HTTP, {workers} connections, {label}",
                            servers[mode].url,
                            _tasks(count, secret),
                            workers,
                        )
                    )
            rows.append(
                _http(
                    "bare 204 function over HTTP, 16 connections (ceiling)",
                    bare.url,
                    _tasks(count, secret),
                    16,
                )
            )
            pool = db.Pool(cfg, max_idle=16)
            group = ingest.GroupCommit()
            rates: dict[str, list[float]] = {GROUPED: [], ONE_BY_ONE: []}
            for _ in range(2):  # alternated, so a slow minute does not favour either
                for label in (GROUPED, ONE_BY_ONE):
                    bodies = _tasks(count, secret)

                    def one(index: int, bodies: list[bytes] = bodies) -> None:
                        with pool.connection() as conn:
                            ingest.ingest(bodies[index], conn, publisher, None, group)

                    with _gift_detection(grouped=label == GROUPED):
                        rates[label].append(_threads(count, 16, one))
            rows += [(label, sum(r) / len(r), None, None) for label, r in rates.items()]
            pool.close()
            stored, top = _gaps(cfg, company)
        finally:
            for server in servers.values():
                server.stop()
            stack.stop()
    print(f"{count} deliveries per row, all for one company, PostgreSQL with fsync on")
    print(f"{'':<56}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, rate, p50, p99 in rows:
        pct = f"{p50:>10.1f}{p99:>10.1f}" if p50 is not None and p99 is not None else ""
        print(f"{label:<56}{rate:>10,.0f}{pct}")
    figures = {label: rate for label, rate, _, _ in rows}
    ceiling = figures["bare 204 function over HTTP, 16 connections (ceiling)"]
    for workers in (8, 16):
        before = figures[f"function over HTTP, {workers} connections, before"]
        after = figures[f"function over HTTP, {workers} connections, group commit"]
        print(
            f"{workers} connections: group commit {after / before:.2f}x before;"
            f" persist/bare {before / ceiling:.2f} before, {after / ceiling:.2f} group commit"
        )
    print(f"stored {stored:,} events, highest seq {top:,} (gap-free: {stored == top})")
    return {
        "in_process_rate": rows[0][1],
        "http_8_before": figures["function over HTTP, 8 connections, before"],
        "http_8_group": figures["function over HTTP, 8 connections, group commit"],
        "http_16_before": figures["function over HTTP, 16 connections, before"],
        "http_16_group": figures["function over HTTP, 16 connections, group commit"],
        "in_process_16_group": figures[GROUPED],
        "in_process_16_gifts_one_by_one": figures[ONE_BY_ONE],
        "bare_16": ceiling,
    }
