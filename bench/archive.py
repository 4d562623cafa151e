"""Archive export of one tenant-day of a million events: rows per second and peak memory.

A company gets 1,000,000 events on one day (inserted in bulk as the superuser, so the
setup is quick); the export then runs in a child process exactly as the archive function
does (server-side cursor under the tenant's RLS context, NDJSON.gz and Parquet written,
uploaded to moto's S3 with SHA-256 checksums, verified, manifest recorded), and the child's
peak RSS is read from the kernel. The baseline is DuckDB writing the same rows to Parquet
(zstd) from the exported NDJSON.gz on local disk: what this hardware allows for the
encoding alone.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from controlroom import settings
from controlroom.adapters import db, s3
from controlroom.dev.stack import LocalStack
from controlroom.usecases import archive

DAY = date(2026, 1, 15)


def fill(admin_db: str, cfg: settings.DatabaseSettings, rows: int) -> uuid.UUID:
    company = uuid.uuid4()
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, 'Big Day', 'big')", (company,)
        )
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    with psycopg.connect(admin_db, autocommit=True) as su:
        su.execute(
            """
            INSERT INTO events (company_id, seq, twitch_message_id, dedup_key, type, version,
                topic, occurred_at, received_at, broadcaster_user_id, actor_login, amount,
                message_text, payload)
            SELECT %(c)s, g, 'm-' || g, 'm-' || g, 'channel.chat.message', '1', 'engagement',
                   %(s)s + (g * interval '80 milliseconds'),
                   %(s)s + (g * interval '80 milliseconds'),
                   '1337', 'viewer' || (g %% 5000), g %% 1000, 'PogChamp message number ' || g,
                   jsonb_build_object('message', jsonb_build_object('text', 'PogChamp ' || g),
                                      'chatter_user_login', 'viewer' || (g %% 5000))
            FROM generate_series(1, %(n)s) AS g
            """,
            {"c": company, "s": start, "n": rows},
        )
        su.execute(
            "INSERT INTO event_sequences (company_id, last_seq) VALUES (%s, %s)", (company, rows)
        )
    return company


def _child(env_json: str, company: str) -> None:
    """Runs in the child process: one export, timed; prints its result as JSON."""
    env = json.loads(env_json)
    cfg = settings.DatabaseSettings.from_env(env)
    client = s3.client(env["AWS_ENDPOINT_URL_S3"], credentials=("local", "local"))
    started = time.perf_counter()
    with db.connect(cfg, autocommit=True) as conn:
        result = archive.export_day(conn, client, env["ARCHIVE_BUCKET"], uuid.UUID(company), DAY)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "rows": result.rows,
                "bytes": result.bytes,
                "keys": result.keys,
            }
        )
    )


def run(quick: bool = False) -> dict[str, Any]:
    rows = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        env = endpoints.env()
        try:
            admin_db = endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
            company = fill(admin_db, settings.DatabaseSettings.from_env(env), rows)
            child = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from bench.archive import _child; "
                    "_child(sys.argv[1], sys.argv[2])",
                    json.dumps(env),
                    str(company),
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
            )
            peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            result = json.loads(child.stdout.strip().splitlines()[-1])
            local = Path(tmp) / "day.ndjson.gz"
            client = s3.client(endpoints.s3_endpoint_url, credentials=("local", "local"))
            client.download_file(env["ARCHIVE_BUCKET"], result["keys"]["ndjson"], str(local))
            started = time.perf_counter()
            duckdb.sql(
                f"COPY (SELECT * FROM read_json('{local}', format = 'newline_delimited')) "
                f"TO '{Path(tmp) / 'duck.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
            )
            duck_seconds = time.perf_counter() - started
        finally:
            stack.stop()
    ours = result["rows"] / result["seconds"]
    duck = rows / duck_seconds
    print(f"one tenant-day of {rows:,} events")
    print(f"{'':<58}{'rows/s':>10}{'seconds':>9}")
    for label, rate, seconds in (
        ("archive export (PostgreSQL -> NDJSON.gz + Parquet -> S3)", ours, result["seconds"]),
        ("DuckDB: NDJSON.gz on local disk -> Parquet (baseline)", duck, duck_seconds),
    ):
        print(f"{label:<58}{rate:>10,.0f}{seconds:>9.1f}")
    print(
        f"ratio archive / DuckDB: {ours / duck:.2f}; objects {result['bytes'] / 2**20:.1f} MiB; "
        f"peak memory of the export process {peak_mib:.0f} MiB"
    )
    return {"rows_per_s": ours, "duckdb_rows_per_s": duck, "peak_mib": peak_mib}
