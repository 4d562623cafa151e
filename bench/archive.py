"""Archive export of one tenant-day of a million events: rows per second and peak memory.

A company gets 1,000,000 events on one day (inserted in bulk as the superuser, so the
setup is quick); the export then runs in a child process exactly as the archive function
does (the day's rows streamed under the tenant's RLS context, NDJSON.gz and Parquet written,
uploaded to moto's S3 with SHA-256 checksums, verified, manifest recorded), and the child's
peak RSS is read from the kernel. The baseline is DuckDB writing the same rows to Parquet
(zstd) from the exported NDJSON.gz on local disk: what this hardware allows for the
encoding alone.

With BENCH_ARCHIVE_BEFORE set to a checkout of earlier code (a `git worktree` of the commit
before a change), that code's export runs first on the same rows in the same run (its
manifest and objects are then removed), so before, after and baseline come side by side.
"""

from __future__ import annotations

import json
import os
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


# The child's peak is its own address space's high-water mark (VmHWM). getrusage's ru_maxrss
# is not: Linux carries the high-water mark of the address space an exec replaces into it, and
# subprocess starts the child with vfork, so a child started after DuckDB ran here reported
# this process's peak (570-640 MiB where the export's own was 313).
_CHILD = (
    "import json, re, sys; from bench.archive import _child; "
    "_child(sys.argv[1], sys.argv[2]); "
    "status = open('/proc/self/status').read(); "
    "print(json.dumps({'peak_kib': int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))}))"
)


def _export(env: dict[str, str], company: uuid.UUID, tree: str | None) -> dict[str, Any]:
    """One export in a child process, from `tree` (a checkout) or this code; its result and
    its own peak RSS."""
    child_env = dict(os.environ)
    if tree:
        child_env["PYTHONPATH"] = tree
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(env), str(company)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        cwd=tree or None,
        env=child_env,
    )
    if child.returncode:
        raise RuntimeError(f"the export ({tree or 'this tree'}) failed:\n{child.stderr[-4000:]}")
    *_, line, peak = child.stdout.strip().splitlines()
    return {**json.loads(line), "peak_mib": json.loads(peak)["peak_kib"] / 1024}


def _forget(
    admin_db: str, client: Any, bucket: str, company: uuid.UUID, keys: dict[str, str]
) -> None:
    """Undo an export (manifest row and objects), so the next one writes the day afresh."""
    with psycopg.connect(admin_db, autocommit=True) as su:
        su.execute("DELETE FROM archive_manifests WHERE company_id = %s", (company,))
    for key in keys.values():
        client.delete_object(Bucket=bucket, Key=key)


def _duckdb(ndjson: Path, out: Path) -> float:
    started = time.perf_counter()
    duckdb.sql(
        f"COPY (SELECT * FROM read_json('{ndjson}', format = 'newline_delimited')) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
    )
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    rows = 100_000 if quick else 1_000_000
    before_tree = os.environ.get("BENCH_ARCHIVE_BEFORE") or None
    results: dict[str, dict[str, Any]] = {}
    duck: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True)
        endpoints = stack.start()
        env = endpoints.env()
        bucket = env["ARCHIVE_BUCKET"]
        client = s3.client(endpoints.s3_endpoint_url, credentials=("local", "local"))
        try:
            admin_db = endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
            company = fill(admin_db, settings.DatabaseSettings.from_env(env), rows)
            runs = (("before", before_tree), ("after", None)) if before_tree else (("after", None),)
            for label, tree in runs:
                result = _export(env, company, tree)
                local = Path(tmp) / f"{label}.ndjson.gz"
                client.download_file(bucket, result["keys"]["ndjson"], str(local))
                if label == "before":
                    _forget(admin_db, client, bucket, company, result["keys"])
                results[label] = result
                duck[label] = _duckdb(local, Path(tmp) / f"{label}.parquet")
        finally:
            stack.stop()
    baseline = rows / duck["after"]
    print(f"one tenant-day of {rows:,} events")
    print(f"{'':<62}{'rows/s':>10}{'seconds':>9}{'peak RSS':>10}{'ratio':>7}")
    for label, result in results.items():
        rate = result["rows"] / result["seconds"]
        name = f"archive export, {label} (PostgreSQL -> NDJSON.gz + Parquet -> S3)"
        print(
            f"{name:<62}{rate:>10,.0f}{result['seconds']:>9.1f}"
            f"{result['peak_mib']:>6.0f} MiB{rate / baseline:>7.2f}"
        )
    for label, seconds in duck.items():
        name = f"DuckDB: the {label} NDJSON.gz -> Parquet" + (
            " (baseline)" if label == "after" else ""
        )
        print(f"{name:<62}{rows / seconds:>10,.0f}{seconds:>9.1f}")
    after = results["after"]
    print(
        "objects: "
        + ", ".join(f"{label} {r['bytes'] / 2**20:.1f} MiB" for label, r in results.items())
    )
    return {
        "rows_per_s": after["rows"] / after["seconds"],
        "duckdb_rows_per_s": baseline,
        "peak_mib": after["peak_mib"],
        **(
            {"before_rows_per_s": results["before"]["rows"] / results["before"]["seconds"]}
            if "before" in results
            else {}
        ),
    }
