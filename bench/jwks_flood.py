"""A flood of tokens with unknown `kid`s against the realtime service, while valid users keep
calling an authenticated REST route.

The relay runs under uvicorn as in production, verifying tokens from a JWKS URL (the path a
service takes when an outside identity provider signs its tokens): a real HTTP endpoint on
127.0.0.1 here, which counts its fetches. Rate limits are off, so every bad token reaches the
verifier (with them on, the flood's one address would be throttled long before).

Three phases of the same length: valid users alone (the baseline), valid users during the
flood, and the flood alone. Reported: JWKS fetches (at most one per JWT_JWKS_REFETCH_SECONDS
interval), the valid users' p50/p99 side by side, and whether any of the runtime role's
database connections was used while only bad tokens arrived (pg_stat_activity's
`state_change`: a connection taken for a query changes state).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import dbadmin
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from controlroom.dev.stack.process import free_port

REFETCH_SECONDS = 3  # JWT_JWKS_REFETCH_SECONDS for the run: several intervals per phase
USERS = 4  # valid users, each calling GET /api/me every USER_PAUSE seconds
USER_PAUSE = 0.05
FLOOD_WORKERS = 6  # concurrent connections sending bad tokens as fast as they are answered
ROUTE = "/api/me"


class CountingJwks:
    """The identity provider's JWKS over HTTP on loopback; remembers when it was fetched."""

    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        fetches: list[float] = []
        self.fetches = fetches

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fetches.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def start(self) -> CountingJwks:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def between(self, start: float, end: float) -> list[float]:
        return [t for t in self.fetches if start <= t < end]


@dataclass
class Calls:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, ms: float) -> None:
        with self.lock:
            self.latencies_ms.append(ms)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def _caller(port: int, tokens: list[str], until: float, calls: Calls, pause: float) -> None:
    """GET the route with each token in turn until `until`, one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < until:
        token = tokens[i % len(tokens)]
        i += 1
        started = time.perf_counter()
        conn.request("GET", ROUTE, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        calls.add(response.status, (time.perf_counter() - started) * 1000)
        if pause:
            time.sleep(max(0.0, pause - (time.perf_counter() - started)))
    conn.close()


def _run_phase(
    port: int, seconds: float, users: list[str] | None, bad: list[str] | None
) -> tuple[Calls, Calls]:
    """Valid users and/or the flood for `seconds`; both stop by themselves."""
    valid, flood = Calls(), Calls()
    until = time.monotonic() + seconds
    threads = []
    for token in users or []:
        threads.append(
            threading.Thread(target=_caller, args=(port, [token], until, valid, USER_PAUSE))
        )
    if bad:
        share = len(bad) // FLOOD_WORKERS
        for w in range(FLOOD_WORKERS):
            chunk = bad[w * share : (w + 1) * share]
            threads.append(threading.Thread(target=_caller, args=(port, chunk, until, flood, 0.0)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return valid, flood


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unknown_kids(template: str, count: int) -> list[str]:
    """A valid token's claims and signature under headers naming made-up keys: what an
    attacker can make without any key (verification stops at the unknown `kid`)."""
    _, payload, signature = template.split(".")
    out = []
    for _ in range(count):
        header = {"alg": "RS256", "typ": "JWT", "kid": secrets.token_urlsafe(16)}
        out.append(f"{_b64(json.dumps(header).encode())}.{payload}.{signature}")
    return out


def _company(cfg: settings.DatabaseSettings, subjects: list[str]) -> uuid.UUID:
    company = uuid.uuid4()
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, %s, %s)",
            (company, "Flood", f"flood-{company.hex[:8]}"),
        )
        for subject in subjects:
            row = conn.execute(
                "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                (company, subject),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
                (company, row["id"]),
            )
    return company


def _app_connections_used_since(admin_url: str, since: Any) -> int:
    """How many of the runtime role's connections changed state (ran anything) since."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state_change >= %s",
            (dbadmin.APP_ROLE, since),
        ).fetchone()
    return int(row[0]) if row else 0


def _now(admin_url: str) -> Any:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def _relay_env(base: dict[str, str], jwks_url: str) -> dict[str, str]:
    env = {**os.environ, **base}
    # verify from the JWKS URL alone: no in-process signing keys, so no sign-in either
    for name in ("TOKEN_SIGNING_KEYS", "OIDC_ISSUER", "JWT_PUBLIC_KEY_PEM"):
        env.pop(name, None)
    env.update(
        {
            "JWT_JWKS_URL": jwks_url,
            "JWT_JWKS_REFETCH_SECONDS": str(REFETCH_SECONDS),
            "RATE_LIMITS": "off",
            "RELAY_RECONCILE_SECONDS": "3600",
        }
    )
    return env


def _intervals(fetches: list[float], start: float, end: float) -> list[int]:
    """Fetches in each REFETCH_SECONDS window from `start`."""
    count = max(1, int((end - start) // REFETCH_SECONDS))
    windows = [0] * count
    for t in fetches:
        windows[min(count - 1, int((t - start) // REFETCH_SECONDS))] += 1
    return windows


@dataclass
class Measured:
    seconds: float
    baseline: Calls  # valid users alone
    during: Calls  # valid users during the flood
    flood: Calls  # bad tokens, both flood phases
    fetches: dict[str, list[float]]  # JWKS fetch times by phase
    windows: list[int]  # fetches per REFETCH_SECONDS window, both flood phases
    used_by_users: int
    used_by_flood: int


def measure(seconds: float) -> Measured:
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp))
        endpoints = stack.start()
        jwks = CountingJwks({"keys": [stack.keys.public_jwk()]}).start()
        env = _relay_env(endpoints.env(), jwks.url)
        relay = RelayServer("bench-jwks-relay", Path(tmp) / "logs", free_port(), env)
        relay.start()
        admin, port = endpoints.admin_url, relay.port
        try:
            subjects = [f"flood-user-{i}" for i in range(USERS)]
            company = _company(settings.DatabaseSettings.from_env(endpoints.env()), subjects)
            users = [stack.keys.token(s, company, "viewer") for s in subjects]
            bad = _unknown_kids(users[0], 20_000)
            warm, _ = _run_phase(port, 1.0, users, None)  # fetches the keys once
            assert set(warm.statuses) == {200}, warm.statuses
            marks = [time.monotonic()]
            since = _now(admin)
            baseline, _ = _run_phase(port, seconds, users, None)
            used_by_users = _app_connections_used_since(admin, since)
            marks.append(time.monotonic())
            during, flood = _run_phase(port, seconds, users, bad)
            marks.append(time.monotonic())
            since = _now(admin)
            marks.append(time.monotonic())
            _, alone = _run_phase(port, seconds, None, bad)
            marks.append(time.monotonic())
            used_by_flood = _app_connections_used_since(admin, since)
        finally:
            relay.stop()
            jwks.stop()
            stack.stop()
    fetches = {
        "baseline": jwks.between(marks[0], marks[1]),
        "during": jwks.between(marks[1], marks[2]),
        "alone": jwks.between(marks[3], marks[4]),
    }
    windows = _intervals(fetches["during"], marks[1], marks[2])
    windows += _intervals(fetches["alone"], marks[3], marks[4])
    flood.latencies_ms += alone.latencies_ms
    for status, n in alone.statuses.items():
        flood.statuses[status] = flood.statuses.get(status, 0) + n
    return Measured(
        seconds, baseline, during, flood, fetches, windows, used_by_users, used_by_flood
    )


def run(quick: bool = False) -> dict[str, float]:
    m = measure(6.0 if quick else 15.0)
    assert set(m.baseline.statuses) == {200} and set(m.during.statuses) == {200}, (
        m.baseline.statuses,
        m.during.statuses,
    )
    assert set(m.flood.statuses) == {401}, m.flood.statuses
    fetches = sorted(m.fetches["during"] + m.fetches["alone"])
    gaps = [b - a for a, b in itertools.pairwise(fetches)]
    rate = len(m.flood.latencies_ms) / (2 * m.seconds)
    print(
        f"{USERS} valid users (GET {ROUTE} every {USER_PAUSE * 1000:.0f} ms each), "
        f"{FLOOD_WORKERS} flood connections, {m.seconds:.0f} s per phase, "
        f"JWT_JWKS_REFETCH_SECONDS={REFETCH_SECONDS}, rate limits off"
    )
    print(f"{'':<30}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, calls in (
        ("valid users, no flood", m.baseline),
        ("valid users, during flood", m.during),
        ("bad tokens (all 401)", m.flood),
    ):
        count = len(calls.latencies_ms)
        print(f"{label:<30}{count:>10}{calls.p50:>10.1f}{calls.pct(0.99):>10.1f}")
    shortest = min(gaps) if gaps else float("nan")
    print(
        f"bad tokens: {rate:,.0f}/s for {2 * m.seconds:.0f} s; JWKS fetches during the flood: "
        f"{len(fetches)}, at most {max(m.windows)} per {REFETCH_SECONDS} s window (shortest gap "
        f"{shortest:.2f} s); {len(m.fetches['baseline'])} in the baseline"
    )
    print(
        f"runtime-role connections used: {m.used_by_users} while valid users called, "
        f"{m.used_by_flood} while only bad tokens arrived"
    )
    assert max(m.windows) <= 1, m.windows
    assert m.used_by_flood == 0, m.used_by_flood
    return {
        "jwks_fetches": float(len(fetches)),
        "max_fetches_per_interval": float(max(m.windows)),
        "valid_p50_ms": m.baseline.p50,
        "valid_p99_ms": m.baseline.pct(0.99),
        "flood_valid_p50_ms": m.during.p50,
        "flood_valid_p99_ms": m.during.pct(0.99),
        "bad_tokens_per_s": rate,
        "connections_used_by_flood": float(m.used_by_flood),
    }


if __name__ == "__main__":
    run()
