"""`make soak`: the whole product under an agency's load, then a ledger of what was lost.

The local stack runs as it is deployed: one webhook service, one Cloud Tasks queue that
dispatches to one persist service (both with several worker processes, as Cloud Run would
give them instances; the queue's max_concurrent_dispatches matches persist's request slots),
two relay instances and hundreds of dashboard clients (official socket.io-client, one Node
process). A Twitch stand-in sends signed deliveries for
three companies' creators at a steady rate, resends some as Twitch does (same message id,
retry header raised), retries every non-2xx with backoff, and adds a hype-train burst of gift
events. At the end every delivery Twitch saw accepted is looked up in PostgreSQL and in what
each client received, and the run fails unless nothing is lost or doubled.

    python -m bench.soak [--rate 200 --seconds 300 --clients 300 ...] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import http.client
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from google.cloud import tasks_v2
from google.protobuf import duration_pb2
from psycopg.types.json import Jsonb

from controlroom.adapters import cloudtasks
from controlroom.adapters.db import tenant_transaction
from controlroom.dev import dbadmin, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import FunctionServer, RelayServer
from controlroom.dev.stack.local import DATABASE, LOCATION, PROJECT, QUEUE

NODE_DIR = Path(__file__).resolve().parent / "node"
# gunicorn (functions-framework) closes a keep-alive connection idle for 2 s
KEEPALIVE_SECONDS = 1.5
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8)  # about 90 s, then Twitch gives up


@dataclass(frozen=True)
class Plan:
    companies: int = 3
    creators: int = 200
    shared: int = 10  # creators of each company also watched by the next one
    rate: float = 200.0
    seconds: float = 300.0
    duplicates: float = 0.05
    burst: int = 2000
    burst_seconds: float = 10.0
    clients: int = 300
    relays: int = 2
    workers: int = 3  # processes of the webhook and of persist (gunicorn WORKERS)
    threads: int = 8  # request threads per process (gunicorn THREADS)
    queue_rate: float = 500.0  # the persist queue's max_dispatches_per_second (Cloud Tasks' cap)
    senders: int = 48
    seed: int = 2026

    @classmethod
    def quick(cls) -> Plan:
        return cls(rate=40, seconds=30, burst=200, burst_seconds=5, clients=30)


# --- the agency: companies, creators, members ---------------------------------------------
@dataclass(frozen=True)
class Agency:
    companies: list[uuid.UUID]
    broadcasters: list[twitchsim.Broadcaster]
    watchers: dict[str, list[uuid.UUID]]  # broadcaster id -> the companies that watch it
    tokens: dict[uuid.UUID, str]


def create_agency(stack: LocalStack, plan: Plan, tag: str) -> Agency:
    """Companies with a viewer each, and creators split between them with some overlap."""
    assert stack.endpoints is not None
    broadcasters = [
        twitchsim.Broadcaster(str(7_000_000 + i), f"soak_creator_{i}") for i in range(plan.creators)
    ]
    companies = [uuid.uuid4() for _ in range(plan.companies)]
    size = math.ceil(plan.creators / plan.companies)
    watchers: dict[str, list[uuid.UUID]] = {b.user_id: [] for b in broadcasters}
    tokens: dict[uuid.UUID, str] = {}
    with psycopg.connect(stack.endpoints.owner_url) as conn:
        for n, company in enumerate(companies):
            own = broadcasters[n * size : (n + 1) * size]
            nxt = broadcasters[((n + 1) % plan.companies) * size :][: plan.shared]
            watched = own + [b for b in nxt if b not in own]
            with tenant_transaction(conn, company):
                conn.execute(
                    "INSERT INTO companies (id, name, slug, branding) VALUES (%s, %s, %s, %s)",
                    (company, f"Soak {tag} {n}", f"soak-{tag}-{n}", Jsonb({})),
                )
                user = conn.execute(
                    "INSERT INTO users (company_id, subject, email, display_name) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (company, f"soak-viewer-{n}", f"viewer{n}@soak.example", f"Viewer {n}"),
                ).fetchone()
                assert user is not None
                conn.execute(
                    "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
                    (company, user[0]),
                )
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO creators (company_id, twitch_user_id, twitch_login, "
                        "display_name) VALUES (%s, %s, %s, %s)",
                        [(company, b.user_id, b.login, b.login) for b in watched],
                    )
            for b in watched:
                watchers[b.user_id].append(company)
            tokens[company] = stack.keys.token(f"soak-viewer-{n}", company, "viewer")
    return Agency(companies, broadcasters, watchers, tokens)


# --- the topology ---------------------------------------------------------------------------
@dataclass
class Topology:
    webhooks: list[FunctionServer]
    persists: list[FunctionServer]
    relays: list[RelayServer]


def persist_queue(plan: Plan) -> tasks_v2.Queue:
    """The persist queue as infra/terraform configures it, with as many concurrent dispatches
    as persist has request slots and a rate that does not hold the hype train back."""
    return tasks_v2.Queue(
        name=cloudtasks.queue_path(PROJECT, LOCATION, QUEUE),
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=plan.queue_rate,
            max_concurrent_dispatches=plan.workers * plan.threads,
        ),
        retry_config=tasks_v2.RetryConfig(
            max_attempts=100,
            max_retry_duration=duration_pb2.Duration(seconds=86400),
            min_backoff=duration_pb2.Duration(seconds=1),
            max_backoff=duration_pb2.Duration(seconds=300),
            max_doublings=8,
        ),
    )


def start_topology(stack: LocalStack, plan: Plan) -> Topology:
    assert stack.endpoints is not None
    tasks = cloudtasks.client(stack.endpoints.tasks_emulator_host)
    tasks.update_queue(queue=persist_queue(plan))  # UpdateQueue creates a missing queue
    sizing = {"WORKERS": str(plan.workers), "THREADS": str(plan.threads)}
    persist = stack.start_function("persist", "persist", sizing)
    env = {**sizing, "CLOUD_TASKS_QUEUE": QUEUE, "PERSIST_URL": persist.url}
    webhook = stack.start_function("webhook", "webhook", env)
    # hundreds of dashboards (and, in chaos, their reconnects) from one address: no limits
    unlimited = {"RATE_LIMITS": "off"}
    return Topology(
        [webhook], [persist], [stack.start_relay(extra_env=unlimited) for _ in range(plan.relays)]
    )


# --- Twitch's side: deliveries, resends and retries --------------------------------------
@dataclass
class Sent:
    broadcaster: str
    body: bytes
    attempts: int = 0
    accepted_ms: float | None = None  # wall clock at the start of the first accepted attempt
    gave_up: bool = False
    burst: bool = False  # one of the hype train's gifts


@dataclass
class _Job:
    message_id: str
    retry: int
    resend: bool  # a duplicate Twitch sends although it saw a 2xx


@dataclass
class Twitch:
    """Sends deliveries on schedule from `senders` threads, round-robin over the webhooks."""

    urls: list[str]
    secret: str
    senders: int
    duplicates: float
    seed: int
    ledger: dict[str, Sent] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # first attempts: sent after their due time
    statuses: Counter[int] = field(default_factory=Counter)
    resends: int = 0
    retries: int = 0
    last_refused: float = float("-inf")  # monotonic time of the latest non-2xx attempt

    def __post_init__(self) -> None:
        self._heap: list[tuple[float, int, _Job]] = []
        self._counter = 0
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._closing = False
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.senders)
        ]
        for t in self._threads:
            t.start()

    def schedule(
        self, due: float, body: dict[str, Any], broadcaster: str, *, burst: bool = False
    ) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        message_id = str(uuid.uuid4())
        with self._lock:
            self.ledger[message_id] = Sent(broadcaster, raw, burst=burst)
        self._push(due, _Job(message_id, 0, resend=False))

    def _push(self, due: float, job: _Job) -> None:
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (due, self._counter, job))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def _work(self, index: int) -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        idle: dict[int, float] = {}
        turn = index
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    if self._closing and not self._heap:
                        return
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else 0.5
                    self._cond.wait(max(0.001, min(timeout, 0.5)))
                due, _, job = heapq.heappop(self._heap)
                self._busy += 1
            try:
                turn = (turn + 1) % len(self.urls)
                self._attempt(job, turn, conns, idle, due)
            finally:
                with self._cond:
                    self._busy -= 1

    def _attempt(
        self,
        job: _Job,
        target: int,
        conns: dict[int, http.client.HTTPConnection],
        idle: dict[int, float],
        due: float,
    ) -> None:
        sent = self.ledger[job.message_id]
        delivery = twitchsim.sign_delivery(
            sent.body, self.secret, message_id=job.message_id, retry=job.retry
        )
        wall = time.time() * 1000
        lag = (time.monotonic() - due) * 1000
        started = time.perf_counter()
        status = 0
        try:
            conn = conns.get(target)
            if conn is not None and time.monotonic() - idle.get(target, 0.0) > KEEPALIVE_SECONDS:
                conn.close()  # the server may be closing it right now: never race that
                conn = None
            if conn is None:
                host, port = self.urls[target].split("//")[1].rstrip("/").split(":")
                conn = conns[target] = http.client.HTTPConnection(host, int(port), timeout=15)
            conn.request("POST", "/", body=delivery.body, headers=delivery.headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            idle[target] = time.monotonic()
        except (OSError, http.client.HTTPException):
            with contextlib.suppress(Exception):
                conns.pop(target).close()
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            sent.attempts += 1
            if job.retry == 0:
                self.lag_ms.append(lag)
            self.statuses[status] += 1
            ok = 200 <= status < 300
            if ok:
                self.latencies_ms.append(elapsed)
                if sent.accepted_ms is None:
                    sent.accepted_ms = wall
            else:
                self.last_refused = time.monotonic()
            resend = ok and not job.resend and self._rng.random() < self.duplicates
        if ok:
            if resend:
                with self._lock:
                    self.resends += 1
                self._push(
                    time.monotonic() + self._rng.uniform(0.2, 3.0),
                    _Job(job.message_id, job.retry + 1, resend=True),
                )
            return
        if job.retry >= len(RETRY_DELAYS):
            with self._lock:
                sent.gave_up = sent.accepted_ms is None
            return
        with self._lock:
            self.retries += 1
        self._push(
            time.monotonic() + RETRY_DELAYS[job.retry],
            _Job(job.message_id, job.retry + 1, job.resend),
        )

    def close(self, timeout: float = 600) -> None:
        """Let every scheduled attempt, resend and retry happen (bounded), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            self._heap.clear()  # past the bound: what is left counts as unresolved

    def answers(self) -> Counter[int]:
        """Attempts so far by HTTP status (0: no answer)."""
        with self._lock:
            return self.statuses.copy()

    def snapshot(self) -> dict[str, Sent]:
        """The ledger as it is now (the senders keep adding to it)."""
        with self._lock:
            return dict(self.ledger)

    def accepted(self) -> int:
        with self._lock:
            return sum(1 for s in self.ledger.values() if s.accepted_ms is not None)


_GIFTS = "channel.subscription.gift"


def drive(
    twitch: Twitch,
    agency: Agency,
    *,
    rate: float,
    seconds: float,
    burst: int = 0,
    burst_seconds: float = 10.0,
    burst_at: float = 0.4,
    seed: int = 1,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Schedule the stream's mix at `rate` for `seconds`, plus a burst of gifts on one
    creator two companies watch (a hype train), as the clock reaches each due time."""
    rng = random.Random(seed)
    types, weights = list(twitchsim.TRAFFIC_MIX), list(twitchsim.TRAFFIC_MIX.values())
    shared = [b for b in agency.broadcasters if len(agency.watchers[b.user_id]) > 1]
    hype = shared[0] if shared else agency.broadcasters[0]
    plan: list[tuple[float, str, twitchsim.Broadcaster, bool]] = [
        (i / rate, rng.choices(types, weights)[0], rng.choice(agency.broadcasters), False)
        for i in range(int(rate * seconds))
    ]
    start_burst = seconds * burst_at
    plan += [(start_burst + j * burst_seconds / burst, _GIFTS, hype, True) for j in range(burst)]
    plan.sort(key=lambda item: item[0])
    start = time.monotonic()
    next_report = 10.0
    for offset, sub_type, broadcaster, in_burst in plan:
        due = start + offset
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body = twitchsim.notification_body(sub_type, broadcaster, rng)
        twitch.schedule(due, body, broadcaster.user_id, burst=in_burst)
        if progress is not None and offset >= next_report:
            progress(offset)
            next_report += 10.0


# --- measuring: memory of every process, rows in PostgreSQL --------------------------------
class MemoryWatch:
    """Samples each process tree's proportional set size (shared pages split fairly)."""

    def __init__(self, processes: Callable[[], dict[str, int]], every: float = 2.0) -> None:
        self.processes = processes
        self.every = every
        self.peak_mib: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _tree_mib(pid: int) -> float:
        try:
            root = psutil.Process(pid)
            # the harness's children are the stack itself: it counts alone
            tree = [root] if pid == os.getpid() else [root, *root.children(recursive=True)]
            total = 0
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    info = proc.memory_full_info()
                    total += getattr(info, "pss", info.rss)
            return total / 2**20
        except psutil.Error:
            return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in self.processes().items():
                mib = self._tree_mib(pid)
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(10)
        return dict(self.peak_mib)


def stack_pids(stack: LocalStack, extra: dict[str, int] | None = None) -> dict[str, int]:
    pids = {"harness (Twitch + checks)": os.getpid(), **(extra or {})}
    for stand_in in stack.processes():
        if stand_in.process is not None and stand_in.process.pid is not None:
            pids[stand_in.name] = stand_in.process.pid
    return pids


def ingest_latency(admin_url: str, companies: list[uuid.UUID]) -> tuple[float, float]:
    """p50 and p99 (ms) from the webhook receiving a delivery to persist writing its row."""
    with psycopg.connect(dbadmin.with_database(admin_url, DATABASE)) as conn:
        row = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
            "extract(epoch FROM stored_at - received_at) * 1000) FROM events "
            "WHERE company_id = ANY(%s)",
            (companies,),
        ).fetchone()
    p50, p99 = row[0] if row and row[0] else (float("nan"), float("nan"))
    return float(p50), float(p99)


def stored_rows(admin_url: str, companies: list[uuid.UUID]) -> list[tuple[uuid.UUID, int, str]]:
    with psycopg.connect(dbadmin.with_database(admin_url, DATABASE)) as conn:
        rows = conn.execute(
            "SELECT company_id, seq, twitch_message_id FROM events WHERE company_id = ANY(%s)",
            (companies,),
        ).fetchall()
    return [(r[0], int(r[1]), str(r[2])) for r in rows]


# --- the clients -----------------------------------------------------------------------------
class Dashboards:
    """The Node process holding every dashboard client."""

    def __init__(
        self,
        workdir: Path,
        relays: list[RelayServer],
        agency: Agency,
        n: int,
        max_seconds: float = 3600,
    ) -> None:
        specs = [
            {
                "company": str(agency.companies[i % len(agency.companies)]),
                "token": agency.tokens[agency.companies[i % len(agency.companies)]],
                "relay": (i // len(agency.companies)) % len(relays),
            }
            for i in range(n)
        ]
        self.config = workdir / "clients.json"
        # the clients exit by themselves if the harness never comes back for them
        config = {"urls": [r.url for r in relays], "clients": specs, "max_seconds": max_seconds}
        self.config.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "soak_clients.mjs"), str(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=NODE_DIR,
        )
        self._lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError), self._cond:
                self._lines.append(json.loads(line))
                self._cond.notify_all()

    def _expect(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, msg in enumerate(self._lines):
                    if key in msg:
                        del self._lines[i]
                        return msg
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"the dashboard clients did not report {key!r}")
                self._cond.wait(left)

    def _send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait_ready(self, timeout: float = 180) -> None:
        self._expect("ready", timeout)

    def status(self) -> dict[str, Any]:
        self._send({"cmd": "status"})
        return self._expect("status", 30)["status"]  # type: ignore[no-any-return]

    def check(
        self,
        heads: dict[str, int],
        sent_file: Path | None,
        timeout: float,
        *,
        final: bool,
        reset: bool = False,
    ) -> dict[str, Any]:
        """Wait (up to `timeout`) until every client has every seq up to `heads`; the summary.
        `sent_file` maps seqs to send times for latencies; `final` ends the clients."""
        sent = str(sent_file) if sent_file is not None else None
        cmd = {"cmd": "finish", "heads": heads, "sent": sent, "timeout": timeout}
        self._send({**cmd, "exit": final, "reset": reset})
        return self._expect("summary", timeout + 120)["summary"]  # type: ignore[no-any-return]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- the ledger check ----------------------------------------------------------------------
@dataclass
class Reconciliation:
    accepted: int
    gave_up: int
    unresolved: int  # neither accepted nor given up: the harness ran out of time for it
    stored: dict[str, int]
    lost: int
    stored_twice: int
    unexpected: int
    seq_gaps: int
    heads: dict[str, int]
    sent_by_seq: dict[str, list[tuple[int, float, bool]]]  # seq, sent (epoch ms), in burst

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.stored_twice or self.unexpected or self.seq_gaps or self.unresolved
        )


def reconcile(
    admin_url: str, agency: Agency, ledger: dict[str, Sent], messages: set[str] | None = None
) -> Reconciliation:
    """Everything Twitch saw accepted, per company that watches its creator, against the rows."""
    return check_rows(stored_rows(admin_url, agency.companies), agency, ledger, messages)


def check_rows(
    rows: list[tuple[uuid.UUID, int, str]],
    agency: Agency,
    ledger: dict[str, Sent],
    messages: set[str] | None = None,
) -> Reconciliation:
    """The ledger check on stored (company, seq, message id) rows; `messages` narrows it to
    one scenario's deliveries."""
    expected: dict[uuid.UUID, set[str]] = {c: set() for c in agency.companies}
    accepted = gave_up = unresolved = 0
    for message_id, sent in ledger.items():
        if messages is not None and message_id not in messages:
            continue
        if sent.accepted_ms is None:
            gave_up += sent.gave_up
            unresolved += not sent.gave_up
            continue
        accepted += 1
        for company in agency.watchers[sent.broadcaster]:
            expected[company].add(message_id)
    counts: Counter[tuple[uuid.UUID, str]] = Counter((c, m) for c, _, m in rows)
    scope = {(c, m) for c, ids in expected.items() for m in ids}
    lost = sum(1 for key in scope if counts[key] == 0)
    twice = sum(n - 1 for key, n in counts.items() if n > 1)
    # a row nobody sent, or for a company that does not watch the creator (a row for a
    # delivery Twitch saw refused but that was queued anyway is at-least-once, not an error)
    watching = {m: agency.watchers[sent.broadcaster] for m, sent in ledger.items()}
    unexpected = sum(
        1
        for c, m in counts
        if (m not in watching or c not in watching[m])
        and (messages is None or m in messages or m not in ledger)
    )
    heads: dict[str, int] = {}
    gaps = 0
    sent_by_seq: dict[str, list[tuple[int, float, bool]]] = {}
    for company in agency.companies:
        seqs = sorted(s for c, s, _ in rows if c == company)
        heads[str(company)] = seqs[-1] if seqs else 0
        gaps += (seqs[-1] - len(seqs)) if seqs else 0
        sent_by_seq[str(company)] = [
            (s, ledger[m].accepted_ms or 0.0, ledger[m].burst)
            for c, s, m in rows
            if c == company and m in ledger
        ]
    stored = {str(c): sum(1 for r in rows if r[0] == c) for c in agency.companies}
    return Reconciliation(
        accepted, gave_up, unresolved, stored, lost, twice, unexpected, gaps, heads, sent_by_seq
    )


def wait_stored(
    admin_url: str,
    agency: Agency,
    twitch: Twitch,
    timeout: float,
    *,
    messages: set[str] | None = None,
) -> Reconciliation:
    """Poll until every accepted delivery is stored (or the time is up), then reconcile."""
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        result = reconcile(admin_url, agency, twitch.snapshot(), messages)
        if result.lost == 0 or time.monotonic() > deadline:
            return result
        if result.lost != last:
            say(f"  waiting for {result.lost} accepted deliveries to be stored ...")
            last = result.lost
        time.sleep(1.0)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def soak_stack(root: Path, plan: Plan) -> Iterator[tuple[LocalStack, Topology]]:
    stack = LocalStack(root, progress=lambda m: say(f"  {m}"))
    stack.start()
    try:
        yield stack, start_topology(stack, plan)
    finally:
        say("stopping the stack ...")
        stack.stop()


# --- the run -------------------------------------------------------------------------------
def run(plan: Plan) -> int:
    say(
        f"soak: {plan.companies} companies, {plan.creators} creators ({plan.shared} per company "
        f"shared), {plan.rate:.0f} deliveries/s for {plan.seconds:.0f} s, "
        f"{plan.duplicates:.0%} resent, a burst of {plan.burst} gifts in {plan.burst_seconds:.0f}"
        f" s, {plan.clients} dashboard clients on {plan.relays} relays, webhook and persist "
        f"{plan.workers} workers x {plan.threads} threads"
    )
    with (
        tempfile.TemporaryDirectory(prefix="controlroom-soak-") as tmp,
        soak_stack(Path(tmp), plan) as (stack, topo),
    ):
        assert stack.endpoints is not None
        agency = create_agency(stack, plan, "s")
        say(f"connecting {plan.clients} dashboard clients ...")
        bound = plan.seconds * 2 + 1800  # the run, its drain and the checks
        clients = Dashboards(Path(tmp), topo.relays, agency, plan.clients, bound)
        try:
            clients.wait_ready()
            watch = MemoryWatch(
                lambda: stack_pids(stack, {"dashboard clients (Node)": clients.proc.pid})
            )
            twitch = Twitch(
                [w.url for w in topo.webhooks],
                stack.endpoints.eventsub_secret,
                plan.senders,
                plan.duplicates,
                plan.seed,
            )
            began = time.monotonic()

            def progress(offset: float) -> None:
                status = clients.status()
                say(
                    f"  {offset:4.0f} s: {len(twitch.ledger)} scheduled, "
                    f"{twitch.accepted()} accepted, {twitch.pending()} in flight, "
                    f"{status['received']} client deliveries, {status['live']} live"
                )

            say("sending ...")
            drive(
                twitch,
                agency,
                rate=plan.rate,
                seconds=plan.seconds,
                burst=plan.burst,
                burst_seconds=plan.burst_seconds,
                seed=plan.seed,
                progress=progress,
            )
            driven = time.monotonic() - began
            say("all scheduled; waiting for Twitch's resends and retries to finish ...")
            twitch.close()
            send_seconds = (driven, time.monotonic() - began)
            say("waiting for every accepted delivery to be stored ...")
            result = wait_stored(stack.endpoints.admin_url, agency, twitch, 300)
            sent_file = Path(tmp) / "sent.json"
            sent_file.write_text(json.dumps(result.sent_by_seq))
            say("waiting for every client to have every event ...")
            seen = clients.check(result.heads, sent_file, 120, final=True)
            seen["ingest_ms"] = ingest_latency(stack.endpoints.admin_url, agency.companies)
            peaks = watch.stop()
        finally:
            clients.close()
    return report(
        plan, twitch=twitch, result=result, seen=seen, peaks=peaks, send_seconds=send_seconds
    )


def report(
    plan: Plan,
    *,
    twitch: Twitch,
    result: Reconciliation,
    seen: dict[str, Any],
    peaks: dict[str, float],
    send_seconds: tuple[float, float],
) -> int:
    lat = twitch.latencies_ms
    statuses = ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(twitch.statuses.items()))
    say("\n=== soak summary ===")
    driven, answered = send_seconds
    say(
        f"deliveries scheduled          {len(twitch.ledger)} in {driven:.0f} s; the last "
        f"attempt answered at {answered:.0f} s"
    )
    say(f"attempts by status            {statuses}")
    say(f"resent (duplicates)           {twitch.resends}")
    say(f"retried after a non-2xx       {twitch.retries}")
    say(f"deliveries accepted           {result.accepted}")
    say(f"Twitch gave up on             {result.gave_up}")
    say(f"unresolved at the end         {result.unresolved}")
    for company, n in result.stored.items():
        say(f"stored rows, company {company[:8]}  {n}")
    say(f"lost (accepted, not stored)   {result.lost}")
    say(f"stored twice                  {result.stored_twice}")
    say(f"stored but never sent         {result.unexpected}")
    say(f"gaps in seq                   {result.seq_gaps}")
    say(f"client deliveries             {seen['received']} to {seen['clients']} clients")
    say(f"client events missing         {seen['missing']}")
    say(f"client events duplicated      {seen['duplicates']}")
    say(f"client resyncs / reconnects   {seen['resyncs']} / {seen['reconnects']}")
    lag = twitch.lag_ms
    say(
        f"sent after their due time      p50 {pct(lag, 0.5):.1f} ms, p99 {pct(lag, 0.99):.1f} ms "
        f"(the load generator's own lag, over {len(lag)} first attempts)"
    )
    say(f"webhook time to 2xx           p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms")
    p50, p99 = seen["ingest_ms"]
    say(f"webhook received to stored    p50 {p50:.0f} ms, p99 {p99:.0f} ms (from the rows)")
    for label, key in (("all events", "all"), ("the burst's gifts", "burst"), ("the rest", "rest")):
        got = seen["latency"][key]
        if got["samples"]:
            say(
                f"webhook to client, {label:<18}p50 {got['p50']:.0f} ms, p99 {got['p99']:.0f} ms,"
                f" max {got['max']:.0f} ms ({got['samples']} client deliveries)"
            )
    say("peak memory (PSS of the process tree):")
    for name, mib in sorted(peaks.items()):
        say(f"  {name:<32}{mib:8.1f} MiB")
    ok = result.clean and not seen["missing"] and not seen["duplicates"] and not result.gave_up
    say("RESULT: " + ("PASS, nothing lost or doubled" if ok else "FAIL"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    defaults = Plan()
    for name in ("rate", "seconds", "duplicates", "burst_seconds", "queue_rate"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    ints = ("companies", "creators", "burst", "clients", "relays", "workers", "threads", "senders")
    for name in ints:
        parser.add_argument(f"--{name}", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a short run to try the harness")
    args = parser.parse_args(argv)
    base = Plan.quick() if args.quick else defaults
    given = {k: v for k, v in vars(args).items() if v is not None and k != "quick"}
    plan = Plan(**{**base.__dict__, **given})
    return run(plan)


if __name__ == "__main__":
    sys.exit(main())
