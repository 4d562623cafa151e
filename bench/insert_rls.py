"""Events stored per second under RLS with seq allocation, beside plain inserts of the same rows.

The RLS path is the product's: `eventstore.append` as the runtime role inside a tenant
transaction (counter row lock, dedup lookup, INSERT ... SELECT FROM unnest). The baseline
is the same rows, the same INSERT shape, into a copy of `events` with the same indexes and
no RLS, no counter and no dedup lookup, written by the superuser. Both run against the same
embedded PostgreSQL (durable settings: fsync on), one after the other, interleaved in
rounds so that neither gets a warmer cache.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.core.events import COLUMN_TYPES
from controlroom.dev.stack import LocalStack

PLAIN_TABLE = "bench_plain_events"


def _events(n: int, tag: str) -> list[eventstore.NewEvent]:
    now = datetime.now(UTC)
    return [
        eventstore.NewEvent(
            twitch_message_id=f"{tag}-{i}",
            type="channel.subscription.gift",
            version="1",
            topic="monetization",
            occurred_at=now,
            received_at=now,
            broadcaster_user_id="1337",
            payload={"event": {"user_login": f"gifter{i}", "total": 5, "tier": "1000"}},
            summary={"actor_login": f"gifter{i}", "amount": 5, "tier": "1000"},
        )
        for i in range(n)
    ]


def _plain_insert(
    conn: psycopg.Connection[Any], company: uuid.UUID, events: list[eventstore.NewEvent]
) -> None:
    columns = ", ".join(eventstore.COLUMNS)
    arrays = ", ".join(f"%s::{COLUMN_TYPES.get(c, 'text')}[]" for c in eventstore.COLUMNS)
    sql = (
        f"INSERT INTO {PLAIN_TABLE} (company_id, seq, {columns}, payload) "
        f"SELECT %s, nextval('bench_plain_seq'), {columns}, payload::jsonb "
        f"FROM unnest({arrays}, %s::text[]) AS u({columns}, payload)"
    )
    with conn.transaction():
        conn.execute(sql, [company, *eventstore.column_arrays(events)])


def _measure(batches: list[list[eventstore.NewEvent]], write: Any) -> float:
    started = time.perf_counter()
    for batch in batches:
        write(batch)
    elapsed = time.perf_counter() - started
    return sum(len(b) for b in batches) / elapsed


def run(quick: bool = False) -> dict[str, float]:
    total = 4_000 if quick else 40_000
    rounds = 3
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        try:
            admin_db = endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
            with psycopg.connect(admin_db, autocommit=True) as su:
                su.execute(
                    f"CREATE TABLE {PLAIN_TABLE} (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)"
                )
                su.execute("CREATE SEQUENCE bench_plain_seq")
            cfg = settings.DatabaseSettings.from_env(endpoints.env())
            with db.connect(cfg) as app, psycopg.connect(admin_db) as plain:
                company = uuid.uuid4()
                with db.tenant_transaction(app, company):
                    app.execute(
                        "INSERT INTO companies (id, name, slug) VALUES (%s, 'Bench', 'bench')",
                        (company,),
                    )
                for batch_size in (1, 100):
                    n = total // (20 if batch_size == 1 else 1)
                    for r in range(rounds):
                        tag = f"b{batch_size}-r{r}"
                        rls_rows = _events(n, f"rls-{tag}")
                        plain_rows = _events(n, f"plain-{tag}")

                        def rls_write(batch: list[eventstore.NewEvent]) -> None:
                            with db.tenant_transaction(app, company):
                                eventstore.append(app, company, batch)

                        split = [rls_rows[i : i + batch_size] for i in range(0, n, batch_size)]
                        results.setdefault(f"rls_b{batch_size}", []).append(
                            _measure(split, rls_write)
                        )
                        split = [plain_rows[i : i + batch_size] for i in range(0, n, batch_size)]
                        results.setdefault(f"plain_b{batch_size}", []).append(
                            _measure(split, lambda b: _plain_insert(plain, company, b))
                        )
        finally:
            stack.stop()
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'mode':<44}{'events/s (median of 3)':>24}")
    for batch_size in (1, 100):
        rls, plain = medians[f"rls_b{batch_size}"], medians[f"plain_b{batch_size}"]
        label = "one event per transaction" if batch_size == 1 else "100 events per transaction"
        print(f"{'RLS + seq + dedup, ' + label:<44}{rls:>24,.0f}")
        print(f"{'plain insert (baseline), ' + label:<44}{plain:>24,.0f}")
        print(f"{'ratio RLS / plain':<44}{rls / plain:>24.2f}")
    return medians
