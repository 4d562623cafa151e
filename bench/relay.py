"""The relay beside Node's socket.io server with its Redis adapter: 1,000 clients in one room.

Both servers get the same load from the same client process (`bench/node/clients.mjs`, the
official socket.io-client) and receive their events through Redis from a separate publisher:
ours from python-socketio's Redis emitter (as persist publishes, the events stored in
PostgreSQL first), Node's from @socket.io/redis-emitter. Each event carries its publish time;
latency is measured at every client. Server CPU is the server process's CPU time over the
run divided by the deliveries; memory per connection is the RSS growth while the clients
connect, divided by their number. Steady rate and a burst; our relay with and without
batching. Also: the time to replay 10,000 missed events to one reconnecting client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core.events import compact
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from controlroom.dev.stack.process import free_port, tcp_answers

NODE = Path(__file__).resolve().parent / "node"
CLIENTS = 1000


def _company(cfg: settings.DatabaseSettings, name: str) -> uuid.UUID:
    company = uuid.uuid4()
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, %s, %s)",
            (company, name, f"b-{company.hex[:10]}"),
        )
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'bench') RETURNING id",
            (company,),
        ).fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (company, user["id"]),
        )
    return company


def _store(cfg: settings.DatabaseSettings, company: uuid.UUID, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = [
        eventstore.NewEvent(
            twitch_message_id=f"bench-{uuid.uuid4()}",
            type="channel.cheer",
            version="1",
            topic="monetization",
            occurred_at=now,
            received_at=now,
            broadcaster_user_id="1",
            payload={"bits": 100},
            summary={"amount": 100, "actor_login": "bench"},
        )
        for _ in range(count)
    ]
    rows = []
    with db.connect(cfg) as conn:
        for start in range(0, count, 500):
            batch = events[start : start + 500]
            with db.tenant_transaction(conn, company):
                results = eventstore.append(conn, company, batch)
            for event, result in zip(batch, results, strict=True):
                rows.append(
                    compact(
                        {
                            "seq": result.seq,
                            "type": event.type,
                            "version": event.version,
                            "topic": event.topic,
                            "creator_id": None,
                            "broadcaster_user_id": event.broadcaster_user_id,
                            "occurred_at": event.occurred_at,
                            **event.summary,
                        }
                    )
                )
    return rows


class _Clients:
    def __init__(self, url: str, expected: int, token: str | None) -> None:
        argv = ["node", str(NODE / "clients.mjs"), url, str(CLIENTS), str(expected), "120"]
        self.proc = subprocess.Popen(
            [*argv, *([token] if token else [])], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"clients did not connect: {line!r}")

    def result(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=180)
        return dict(json.loads(out.strip().splitlines()[-1]))


def _tree(pid: int) -> list[psutil.Process]:
    """A server process and its children (uvicorn's worker processes)."""
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _cpu(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _rss(pid: int) -> int:
    return sum(p.memory_info().rss for p in _tree(pid))


def _measure(server_pid: int, run: Any, clients: _Clients, events: int) -> dict[str, Any]:
    procs = _tree(server_pid)  # the same processes before and after
    cpu_before = _cpu(procs)
    profiler = _profile(procs, events)
    started = time.perf_counter()
    run()
    result = clients.result()
    result["seconds"] = time.perf_counter() - started
    result["cpu_us_per_delivery"] = (_cpu(procs) - cpu_before) / max(1, result["received"]) * 1e6
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    result["deliveries_per_s"] = result["received"] / result["seconds"]
    result["expected"] = events * CLIENTS
    return result


def _profile(procs: list[psutil.Process], events: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_PROFILE_DIR set: py-spy records the (one) Python server while it delivers,
    as collapsed stacks (flamegraph.pl's input). Its own CPU is not counted, but it shares the
    machine: figures from a profiled run are not the benchmark's figures."""
    directory = os.environ.get("BENCH_PROFILE_DIR")
    if not directory or "python" not in procs[0].name() or len(procs) != 1:
        return None
    out = Path(directory, f"relay-{procs[0].pid}-{events}.txt")
    argv = ["py-spy", "record", "--nonblocking", "--rate", "250", "-f", "raw", "-o", str(out)]
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), *argv[1:], "--pid", str(procs[0].pid)], stdout=subprocess.DEVNULL
    )


class _WorkerRelay(RelayServer):
    """The relay under uvicorn with several worker processes sharing its port."""

    def __init__(self, name: str, log_dir: Path, port: int, env: dict[str, str]) -> None:
        super().__init__(name, log_dir, port, env)
        self.workers = int(env.get("WEB_CONCURRENCY", "1"))

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv, env = super().command()
        return [*argv, "--workers", str(self.workers)], env

    def ready(self) -> bool:
        # the parent binds the port before its workers load the app: wait until all of them
        # are there and done starting (their CPU time stands still)
        if self.process is None or self.process.pid is None or not super().ready():
            return False
        workers = [
            w
            for w in psutil.Process(self.process.pid).children(recursive=True)
            if "spawn_main" in " ".join(w.cmdline())
        ]
        if len(workers) < self.workers:
            return False
        before = _cpu(workers)
        time.sleep(1)
        return _cpu(workers) - before < 0.05


def _python_round(
    stack: LocalStack,
    env: dict[str, str],
    batch_ms: int,
    count: int,
    rate: float,
    *,
    fast_write: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    cfg = settings.DatabaseSettings.from_env(env)
    relay_env = {
        **os.environ,
        **env,
        "RELAY_BATCH_MS": str(batch_ms),
        "RELAY_RECONCILE_SECONDS": "3600",
        "RELAY_FAST_WRITE": "1" if fast_write else "0",  # 0: every frame through its queue
        "WEB_CONCURRENCY": str(workers),
        "RATE_LIMITS": "off",  # a thousand sockets from one address is the point here
    }
    port = free_port()
    # sign-in comes back to PUBLIC_URL: the stack started without services names none
    relay_env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = _WorkerRelay if workers > 1 else RelayServer
    relay = server(f"bench-relay-{batch_ms}-{workers}", stack.root / "logs", port, relay_env)
    relay.start()
    try:
        company = _company(cfg, "Bench")
        assert relay.process is not None and relay.process.pid is not None
        rss_before = _rss(relay.process.pid)
        clients = _Clients(relay.url, count, stack.keys.token("bench", company, "viewer"))
        rss_per_conn = (_rss(relay.process.pid) - rss_before) / CLIENTS
        rows = _store(cfg, company, count)
        publisher = SocketIOPublisher(env["REDIS_URL"])

        def publish() -> None:
            start = time.perf_counter()
            for i, row in enumerate(rows):
                if rate > 0:
                    pause = start + i / rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                publisher.publish(company, "event", {**row, "t": time.time() * 1000})

        result = _measure(relay.process.pid, publish, clients, count)
        result["rss_kib_per_connection"] = rss_per_conn / 1024
        return result
    finally:
        relay.stop()


def _node_round(env: dict[str, str], count: int, rate: float) -> dict[str, Any]:
    port, room = free_port(), "company:bench"
    server = subprocess.Popen(
        ["node", str(NODE / "server.mjs"), str(port), env["REDIS_URL"], room],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not tcp_answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        rss_before = psutil.Process(server.pid).memory_info().rss
        clients = _Clients(f"http://127.0.0.1:{port}", count, None)
        rss_per_conn = (psutil.Process(server.pid).memory_info().rss - rss_before) / CLIENTS

        def publish() -> None:
            subprocess.run(
                ["node", str(NODE / "publish.mjs"), env["REDIS_URL"], room, str(count), str(rate)],
                check=True,
                timeout=120,
            )

        result = _measure(server.pid, publish, clients, count)
        result["rss_kib_per_connection"] = rss_per_conn / 1024
        return result
    finally:
        server.terminate()
        server.wait(10)


def _replay_10k(stack: LocalStack, env: dict[str, str]) -> float:
    import socketio

    cfg = settings.DatabaseSettings.from_env(env)
    port = free_port()
    relay_env = {**os.environ, **env, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    relay = RelayServer("bench-relay-replay", stack.root / "logs", port, relay_env)
    relay.start()
    try:
        company = _company(cfg, "Replay")
        _store(cfg, company, 10_000)
        received: list[int] = []
        live = []
        client = socketio.Client(reconnection=False)
        client.on("events", lambda batch: received.extend(e["seq"] for e in batch))
        client.on("event", lambda e: received.append(e["seq"]))
        client.on("live", live.append)
        started = time.perf_counter()
        client.connect(
            relay.url,
            auth={"token": stack.keys.token("bench", company, "viewer"), "last_seq": 0},
            transports=["websocket"],
        )
        deadline = time.monotonic() + 120
        while not live and time.monotonic() < deadline:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        client.disconnect()
        assert received == list(range(1, 10_001)), "replay incomplete"
        return elapsed
    finally:
        relay.stop()


def _row(label: str, r: dict[str, Any]) -> str:
    missing = r["expected"] - r["received"]
    return (
        f"{label:<36}{r['deliveries_per_s']:>12,.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
        f"{r['cpu_us_per_delivery']:>10.1f}{r['rss_kib_per_connection']:>10.1f}"
        f"{missing:>9}{r['duplicates']:>6}"
    )


# label: (RELAY_BATCH_MS, RELAY_FAST_WRITE, worker processes); queued = the path before the
# pre-encoded writes, every frame through its socket's Engine.IO queue and writer task
PY_STEADY = {
    "py steady, queued (before)": (0, False, 1),
    "py steady": (0, True, 1),
    "py steady, 2 workers": (0, True, 2),
}
PY_BURST = {
    "py burst, queued (before)": (0, False, 1),
    "py burst": (0, True, 1),
    "py burst, 5 ms batches": (5, True, 1),
    "py burst, 2 workers": (0, True, 2),
}


def run(quick: bool = False) -> dict[str, Any]:
    steady_count, rate = (100, 20.0) if quick else (300, 20.0)
    burst_count = 100 if quick else 500
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        env = endpoints.env()
        try:
            for label, (batch_ms, fast, workers) in PY_STEADY.items():
                results[label] = _python_round(
                    stack, env, batch_ms, steady_count, rate, fast_write=fast, workers=workers
                )
                print(f"{label}: {json.dumps(results[label])}", flush=True)
            results["node steady"] = _node_round(env, steady_count, rate)
            for label, (batch_ms, fast, workers) in PY_BURST.items():
                results[label] = _python_round(
                    stack, env, batch_ms, burst_count, 0, fast_write=fast, workers=workers
                )
                print(f"{label}: {json.dumps(results[label])}", flush=True)
            results["node burst"] = _node_round(env, burst_count, 0)
            results["replay_10k_seconds"] = _replay_10k(stack, env)
        finally:
            stack.stop()
    print(
        f"{CLIENTS} clients in one room; steady: {steady_count} events at {rate:.0f}/s; "
        f"burst: {burst_count} events at once"
    )
    header = ("deliv/s", "p50 ms", "p99 ms", "CPU us/d", "KiB/conn", "missing", "dup", "CPU/node")
    widths = (12, 9, 9, 10, 10, 9, 6, 10)
    print(f"{'':<36}" + "".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for mode, labels in (("steady", PY_STEADY), ("burst", PY_BURST)):
        node = results[f"node {mode}"]
        for label in [*labels, f"node {mode}"]:
            r = results[label]
            ratio = r["cpu_us_per_delivery"] / node["cpu_us_per_delivery"]
            print(_row(label, r) + f"{ratio:>10.2f}")
    for mode in ("steady", "burst"):
        py, node = results[f"py {mode}"], results[f"node {mode}"]
        throughput = py["deliveries_per_s"] / node["deliveries_per_s"]
        cpu = py["cpu_us_per_delivery"] / node["cpu_us_per_delivery"]
        print(f"ratio python/node, {mode}: throughput {throughput:.2f}, CPU per delivery {cpu:.2f}")
    replay = results["replay_10k_seconds"]
    print(f"replay of 10,000 missed events to one reconnecting client: {replay:.2f} s")
    return results
