"""Exporting closed days to S3 (NDJSON.gz and Parquet per company-day), and a safe prune.

A company-day is streamed out of PostgreSQL under the company's RLS context with a
server-side cursor, written to two files whose bytes depend only on the rows (so a re-run
writes the same objects under the same keys), uploaded with SHA-256 checksums, verified by
reading the objects' metadata back, and only then recorded in `archive_manifests`. Prune
deletes only days whose manifest is verified, in the transaction that marks them pruned.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from controlroom.db import tenant_id, tenant_transaction
from controlroom.logs import fields

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FETCH_ROWS = 10_000  # rows per round trip from the server-side cursor
ROW_GROUP_ROWS = 128_000  # Athena reads row groups of a few tens of MB well
MULTIPART_BYTES = 64 * 1024 * 1024

_TS = pa.timestamp("us", tz="UTC")
PARQUET_SCHEMA = pa.schema(
    [
        ("company_id", pa.string()),
        ("seq", pa.int64()),
        ("creator_id", pa.string()),
        ("twitch_message_id", pa.string()),
        ("dedup_key", pa.string()),
        ("type", pa.string()),
        ("version", pa.string()),
        ("topic", pa.string()),
        ("occurred_at", _TS),
        ("received_at", _TS),
        ("broadcaster_user_id", pa.string()),
        ("actor_user_id", pa.string()),
        ("actor_login", pa.string()),
        ("actor_name", pa.string()),
        ("target_user_id", pa.string()),
        ("target_login", pa.string()),
        ("target_name", pa.string()),
        ("amount", pa.int64()),
        ("tier", pa.string()),
        ("title", pa.string()),
        ("category_name", pa.string()),
        ("duration_seconds", pa.int32()),
        ("message_text", pa.string()),
        ("outcome", pa.string()),
        ("level", pa.int32()),
        ("payload", pa.string()),  # the raw event as JSON text
    ]
)
COLUMNS = [f.name for f in PARQUET_SCHEMA]


Conn = psycopg.Connection[dict[str, Any]]  # a runtime-role connection with dict rows


class ArchiveError(Exception):
    """A company-day could not be exported or verified; it is retried on the next run."""


@dataclass
class DayResult:
    company_id: uuid.UUID
    day: date
    rows: int
    bytes: int
    keys: dict[str, str]
    first_seq: int | None
    last_seq: int | None


@dataclass
class Summary:
    exported: list[DayResult] = field(default_factory=list)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    pruned_days: int = 0
    pruned_rows: int = 0

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.exported)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.exported)


def prefix(company: uuid.UUID, day: date) -> str:
    return f"events/company_id={company}/date={day.isoformat()}/"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = row.get(name)
        if isinstance(value, uuid.UUID):
            value = str(value)
        out[name] = value
    return out


def _rows(
    conn: psycopg.Connection[Any], company: uuid.UUID, day: date
) -> Iterator[list[dict[str, Any]]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    cursor = conn.cursor(name=f"archive_{uuid.uuid4().hex}", row_factory=dict_row)
    cursor.itersize = FETCH_ROWS
    cursor.execute(
        "SELECT * FROM events WHERE company_id = %s AND occurred_at >= %s AND occurred_at < %s "
        "ORDER BY seq",
        (company, start, start + timedelta(days=1)),
    )
    while batch := cursor.fetchmany(FETCH_ROWS):
        yield batch
    cursor.close()


def _write(
    conn: psycopg.Connection[Any], company: uuid.UUID, day: date, folder: Path
) -> tuple[Path, Path, int, int | None, int | None]:
    """Both files for one company-day; memory holds one row group at most."""
    ndjson_path, parquet_path = folder / "part.ndjson.gz", folder / "part.parquet"
    count, first, last = 0, None, None
    # rows become columnar Arrow batches as they arrive; a row group is written once enough
    # batches are held, so memory stays at about one row group of columnar data
    batches: list[pa.RecordBatch] = []
    held = 0
    # mtime=0 and no file name: the gzip bytes depend only on the rows
    with (
        open(ndjson_path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as ndjson,
        pq.ParquetWriter(parquet_path, PARQUET_SCHEMA, compression="zstd") as parquet,  # type: ignore[no-untyped-call,unused-ignore]
    ):

        def flush() -> None:
            nonlocal held
            if batches:
                table = pa.Table.from_batches(batches, schema=PARQUET_SCHEMA)
                parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
                batches.clear()
                held = 0

        with tenant_transaction(conn, company):
            for batch in _rows(conn, company, day):
                pending: list[dict[str, Any]] = []
                for row in batch:
                    plain = _plain(row)
                    payload = plain["payload"]
                    line = {
                        **plain,
                        "occurred_at": row["occurred_at"].isoformat(),
                        "received_at": row["received_at"].isoformat(),
                    }
                    ndjson.write(
                        json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                    )
                    plain["payload"] = json.dumps(payload, sort_keys=True, separators=(",", ":"))
                    pending.append(plain)
                    count += 1
                    first = row["seq"] if first is None else first
                    last = row["seq"]
                batches.append(pa.RecordBatch.from_pylist(pending, schema=PARQUET_SCHEMA))
                held += len(pending)
                if held >= ROW_GROUP_ROWS:
                    flush()
        flush()
    return ndjson_path, parquet_path, count, first, last


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _upload(s3: Any, bucket: str, path: Path, key: str, digest: str) -> None:
    """Upload with an S3 SHA-256 checksum, then read the object back and check it."""
    config = TransferConfig(
        multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES
    )
    try:
        s3.upload_file(
            str(path), bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=config
        )
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"upload of {key} failed: {type(exc).__name__}") from exc
    if int(head["ContentLength"]) != path.stat().st_size:
        raise ArchiveError(f"{key}: stored size differs")
    stored = head.get("ChecksumSHA256")
    expected = base64.b64encode(bytes.fromhex(digest)).decode()
    if stored and "-" not in stored and stored != expected:  # multipart checksums are composite
        raise ArchiveError(f"{key}: stored checksum differs")


def export_day(
    conn: psycopg.Connection[Any], s3: Any, bucket: str, company: uuid.UUID, day: date
) -> DayResult:
    with tempfile.TemporaryDirectory(prefix="archive-") as tmp:
        ndjson_path, parquet_path, count, first, last = _write(conn, company, day, Path(tmp))
        keys, checksums, total = {}, {}, 0
        for kind, path in (("ndjson", ndjson_path), ("parquet", parquet_path)):
            digest = _sha256(path)
            suffix = "ndjson.gz" if kind == "ndjson" else "parquet"
            key = f"{prefix(company, day)}part-{digest[:16]}.{suffix}"
            _upload(s3, bucket, path, key, digest)
            keys[kind], checksums[kind], total = key, digest, total + path.stat().st_size
    with tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO archive_manifests (company_id, day, object_keys, row_count, first_seq, "
            "last_seq, checksums, schema_version, exported_at, verified_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), now()) "
            "ON CONFLICT (company_id, day) DO UPDATE SET object_keys = EXCLUDED.object_keys, "
            "row_count = EXCLUDED.row_count, first_seq = EXCLUDED.first_seq, "
            "last_seq = EXCLUDED.last_seq, checksums = EXCLUDED.checksums, "
            "schema_version = EXCLUDED.schema_version, exported_at = EXCLUDED.exported_at, "
            "verified_at = EXCLUDED.verified_at",
            (company, day, Jsonb(keys), count, first, last, Jsonb(checksums), SCHEMA_VERSION),
        )
    return DayResult(company, day, count, total, keys, first, last)


def pending_days(conn: Conn, company: uuid.UUID, today: date) -> list[date]:
    """Closed days (UTC) with events and no verified manifest."""
    start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    with tenant_transaction(conn, company):
        rows = conn.execute(
            "SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day FROM events "
            "WHERE company_id = %s AND occurred_at < %s "
            "EXCEPT SELECT day FROM archive_manifests WHERE verified_at IS NOT NULL ORDER BY 1",
            (company, start),
        ).fetchall()
    return [r["day"] for r in rows]


def _locked(conn: Conn, company: uuid.UUID, day: date) -> bool:
    key = f"archive:{tenant_id(company)}:{day.isoformat()}"
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS ok", (key,)
    ).fetchone()
    return row is not None and bool(row["ok"])


def _unlock(conn: psycopg.Connection[Any], company: uuid.UUID, day: date) -> None:
    key = f"archive:{tenant_id(company)}:{day.isoformat()}"
    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def prune(conn: Conn, company: uuid.UUID, before: date) -> tuple[int, int]:
    """Delete the hot rows of verified, unpruned days before `before`; returns (days, rows)."""
    with tenant_transaction(conn, company):
        days = [
            r["day"]
            for r in conn.execute(
                "SELECT day FROM archive_manifests WHERE verified_at IS NOT NULL "
                "AND pruned_at IS NULL AND day < %s FOR UPDATE",
                (before,),
            ).fetchall()
        ]
        if not days:
            return 0, 0
        deleted = conn.execute(
            "DELETE FROM events WHERE company_id = %s "
            "AND (occurred_at AT TIME ZONE 'UTC')::date = ANY(%s)",
            (company, days),
        ).rowcount
        conn.execute("UPDATE archive_manifests SET pruned_at = now() WHERE day = ANY(%s)", (days,))
    return len(days), deleted


def run(
    conn: Conn,
    s3: Any,
    bucket: str,
    *,
    today: date | None = None,
    retention_days: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Export every pending company-day, then prune past the retention (if one is set).

    `conn` must be an autocommit connection as the runtime role with dict rows
    (`db.connect(..., autocommit=True)`).
    """
    today = today or datetime.now(UTC).date()
    say = progress or (lambda _line: None)
    summary = Summary()
    companies = [
        r["company_id"]
        for r in conn.execute("SELECT company_id FROM archive_companies()").fetchall()
    ]
    for company in companies:
        for day in pending_days(conn, company, today):
            if not _locked(conn, company, day):
                summary.skipped += 1
                say(f"skipped {company} {day}: another run holds it")
                continue
            try:
                result = export_day(conn, s3, bucket, company, day)
            except ArchiveError as exc:
                summary.failed.append(f"{company} {day}: {exc}")
                log.warning(
                    "archive day failed",
                    extra=fields(company_id=str(company), day=str(day), error=str(exc)),
                )
                say(f"FAILED {company} {day}: {exc}")
                continue
            finally:
                _unlock(conn, company, day)
            summary.exported.append(result)
            log.info(
                "archive day exported",
                extra=fields(
                    company_id=str(company), day=str(day), rows=result.rows, bytes=result.bytes
                ),
            )
            say(f"exported {company} {day}: {result.rows} rows, {result.bytes} bytes")
        if retention_days is not None:
            days, rows = prune(conn, company, today - timedelta(days=retention_days))
            summary.pruned_days += days
            summary.pruned_rows += rows
            if days:
                say(f"pruned {company}: {days} day(s), {rows} rows")
    log.info(
        "archive run finished",
        extra=fields(
            exported=len(summary.exported),
            rows=summary.rows,
            bytes=summary.bytes,
            skipped=summary.skipped,
            failed=len(summary.failed),
            pruned_rows=summary.pruned_rows,
        ),
    )
    return summary
