"""Scale-out: four relay instances of 250 clients against one instance of 1,000, side by side.

Four companies of `SCALEOUT_CLIENTS` clients each (250 by default; `bench/node/clients.mjs`,
the official socket.io-client, one client process per company) and one publish stream: every
company gets the same events at the same rate, stored in PostgreSQL first and published as
persist publishes them. Three set-ups, each on fresh relay processes:

- one instance holding all four companies (per-company channels);
- four instances, one company each, with per-company channels (this code);
- four instances, one company each, with the single shared channel of before: every
  instance receives and decodes every company's events. It runs the relay from
  `SCALEOUT_BEFORE_TREE` (a source tree without per-company channels; by default a git
  worktree of `SCALEOUT_BEFORE_REV`, the commit before them), published on one channel.

With `SCALEOUT_OTHERS=N`, N more companies get the same stream with no client on any of
these instances (their viewers are on other instances): per-company channels never bring
their events here; the shared channel brings them to every instance.

Measured: the CPU time (user + system) of all relay processes while the events are published
and delivered, per delivery; how many copies of the published messages Redis handed to relay
instances (PUBLISH's receiver count, summed); latency at the clients; and the overhead of
four instances over one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.relay import _company
from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.adapters.emitter import CHANNEL, company_channel
from controlroom.core import rooms
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from controlroom.dev.stack.process import free_port

NODE = Path(__file__).resolve().parent / "node"
ROOT = Path(__file__).resolve().parents[1]
COMPANIES = 4
BEFORE_REV = "a6fe378^"  # the commit before per-company channels


class _Clients:
    """`n` clients of one company in one Node process, live once `ready` is printed."""

    def __init__(self, url: str, n: int, expected: int, token: str) -> None:
        argv = ["node", str(NODE / "clients.mjs"), url, str(n), str(expected), "180", token]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"clients did not connect: {line!r}")

    def result(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=240)
        return dict(json.loads(out.strip().splitlines()[-1]))


class _BeforeRelay(RelayServer):
    """The relay from another source tree: `-P` keeps this checkout off sys.path."""

    def __init__(self, tree: Path, name: str, log_dir: Path, port: int, env: dict[str, str]):
        super().__init__(name, log_dir, port, {**env, "PYTHONPATH": str(tree)})

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv, env = super().command()
        return [argv[0], "-P", *argv[1:]], env


def _store(cfg: settings.DatabaseSettings, company: uuid.UUID, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = [
        eventstore.NewEvent(
            twitch_message_id=f"scale-{uuid.uuid4()}",
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
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        results = eventstore.append(conn, company, events)
    return [eventstore.published(e, r.seq) for e, r in zip(events, results, strict=True)]


def _message(company: uuid.UUID, row: dict[str, Any], host: str) -> str:
    """What python-socketio's Redis emitter publishes for `publish(company, "event", row)`."""
    return json.dumps(
        {
            "method": "emit",
            "event": "event",
            "data": [{**row, "t": time.time() * 1000}],
            "binary": False,
            "namespace": "/",
            "room": rooms.company_room(company),
            "skip_sid": None,
            "callback": None,
            "host_id": host,
        },
        default=str,
    )


def _cpu(pids: list[int]) -> float:
    procs = []
    for pid in pids:
        proc = psutil.Process(pid)
        procs += [proc, *proc.children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _round(  # noqa: PLR0917 - one benchmark set-up, called three times
    stack: LocalStack,
    env: dict[str, str],
    companies: list[uuid.UUID],
    instances: int,
    shared_channel: bool,
    before: Path | None,
    per_company: int,
    count: int,
    rate: float,
    others: list[uuid.UUID],
) -> dict[str, Any]:
    cfg = settings.DatabaseSettings.from_env(env)
    relay_env = {
        **os.environ,
        **env,
        "RELAY_RECONCILE_SECONDS": "3600",
        "RATE_LIMITS": "off",  # a thousand sockets from one address is the point here
    }
    relays: list[RelayServer] = []
    for i in range(instances):
        name = f"bench-scaleout-{instances}-{i}-{'shared' if shared_channel else 'company'}"
        port = free_port()
        # sign-in comes back to PUBLIC_URL: the stack started without services names none
        relay_env = {**relay_env, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
        relays.append(
            _BeforeRelay(before, name, stack.root / "logs", port, relay_env)
            if before is not None
            else RelayServer(name, stack.root / "logs", port, relay_env)
        )
    for relay in relays:
        relay.start()
    clients: list[_Clients] = []
    try:
        for i, company in enumerate(companies):
            relay = relays[i % instances]
            token = stack.keys.token("bench", company, "viewer")
            clients.append(_Clients(relay.url, per_company, count, token))
        rows = {company: _store(cfg, company, count) for company in companies}
        pids = [r.process.pid for r in relays if r.process and r.process.pid]
        publisher = redis.Redis.from_url(env["REDIS_URL"])
        host = uuid.uuid4().hex
        cpu_before = _cpu(pids)
        started = time.perf_counter()
        receptions = 0
        for i in range(count):
            pause = started + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            for n, company in enumerate([*companies, *others]):
                row = rows[company] if company in rows else rows[companies[n % len(companies)]]
                channel = CHANNEL if shared_channel else company_channel(CHANNEL, company)
                receptions += int(publisher.publish(channel, _message(company, row[i], host)))
        results = [c.result() for c in clients]
        seconds = time.perf_counter() - started
        cpu = _cpu(pids) - cpu_before
    finally:
        for c in clients:
            if c.proc.poll() is None:
                c.proc.kill()
        for relay in relays:
            relay.stop()
    received = sum(r["received"] for r in results)
    return {
        "instances": instances,
        "cpu_s": cpu,
        "cpu_us_per_delivery": cpu / max(1, received) * 1e6,
        "received": received,
        "expected": count * per_company * len(companies),
        "receptions": receptions,
        "duplicates": sum(r["duplicates"] for r in results),
        "out_of_order": sum(r["outOfOrder"] for r in results),
        "p50": max(r["p50"] or 0 for r in results),
        "p99": max(r["p99"] or 0 for r in results),
        "seconds": seconds,
    }


def _before_tree(tmp: Path) -> Path:
    tree = os.environ.get("SCALEOUT_BEFORE_TREE")
    if tree:
        return Path(tree)
    rev = os.environ.get("SCALEOUT_BEFORE_REV", BEFORE_REV)
    path = tmp / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    return path


def run(quick: bool = False) -> dict[str, Any]:
    per_company = 50 if quick else int(os.environ.get("SCALEOUT_CLIENTS", "250"))
    count, rate = (40, 10.0) if quick else (int(os.environ.get("SCALEOUT_EVENTS", "150")), 10.0)
    others = [uuid.uuid4() for _ in range(int(os.environ.get("SCALEOUT_OTHERS", "0")))]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = _before_tree(Path(tmp))
        stack = LocalStack(Path(tmp) / "stack")  # free ports: beside make run
        env = stack.start().env()
        try:
            cfg = settings.DatabaseSettings.from_env(env)
            companies = [_company(cfg, f"Scale {i}") for i in range(COMPANIES)]
            args = (per_company, count, rate, others)
            results["one instance"] = _round(stack, env, companies, 1, False, None, *args)
            results["four, per-company channels"] = _round(
                stack, env, companies, COMPANIES, False, None, *args
            )
            results["four, one shared channel (before)"] = _round(
                stack, env, companies, COMPANIES, True, before, *args
            )
        finally:
            stack.stop()
            if not os.environ.get("SCALEOUT_BEFORE_TREE"):
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                    check=False,
                    capture_output=True,
                )
    print(
        f"{COMPANIES} companies x {per_company} clients; each company {count} events at "
        f"{rate:.0f}/s (stored first), published to all at once; {len(others)} more companies "
        "with the same stream and no client here"
    )
    header = ("relays", "CPU s", "CPU us/d", "copies", "p50 ms", "p99 ms", "missing", "dup")
    widths = (8, 8, 10, 8, 9, 9, 9, 6)
    print(f"{'':<36}" + "".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for label, r in results.items():
        print(
            f"{label:<36}{r['instances']:>8}{r['cpu_s']:>8.2f}{r['cpu_us_per_delivery']:>10.1f}"
            f"{r['receptions']:>8}{r['p50']:>9.1f}{r['p99']:>9.1f}"
            f"{r['expected'] - r['received']:>9}{r['duplicates']:>6}"
        )
    one = results["one instance"]["cpu_s"]
    for label in ("four, per-company channels", "four, one shared channel (before)"):
        print(f"{label}: total relay CPU {results[label]['cpu_s'] / one:.2f}x one instance's")
    print("copies: the published messages Redis handed to relay instances (each one decoded)")
    return results


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
