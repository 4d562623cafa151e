"""Exporting closed days to S3 (NDJSON.gz and Parquet per company-day), and a safe prune.

Parquet goes under `events/parquet/company_id=<id>/date=<day>/` (the only tree Athena's
table reads) and NDJSON under `events/ndjson/company_id=<id>/date=<day>/` (which the
lifecycle may move to Glacier); a company's objects are under `tenants.archive_prefixes`.

A company-day is streamed out of PostgreSQL under the company's RLS context with a
server-side cursor, written to two files whose bytes depend only on the rows (so a re-run
writes the same objects under the same keys), uploaded with SHA-256 checksums, verified by
reading the objects' metadata back, and only then recorded in `archive_manifests`.

seq is per company, gap-free and allocated in commit order, so an export that reads the
company's `last_seq` (K) and the day's rows in one snapshot holds every row of the day with
seq <= K; the manifest records K as `covered_seq`. A row stored later for that day (a
redelivery across midnight, say) has a higher seq: the day is pending again, and the next
run writes a delta part holding only the rows after `covered_seq`, so no row is in two
objects. Prune deletes only rows a verified manifest covers (by seq, never by date alone),
in the transaction that marks the day pruned.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from isal import igzip
from psycopg.types.json import Jsonb

from controlroom.adapters.db import tenant_transaction
from controlroom.core import analytics
from controlroom.core.tenants import archive_prefix, tenant_id
from controlroom.errors import ArchiveError
from controlroom.logs import fields

log = logging.getLogger(__name__)

# 2: the NDJSON lines and the Parquet payload text are PostgreSQL's JSON (docs/archive.md,
# "Formats"); 1 was Python's json.dumps
SCHEMA_VERSION = 2
# ISA-L's levels run 0 to 3; its 1 packs the NDJSON as tightly as zlib's 3 at about six times
# the speed (zlib at 3 took a third of the export's CPU; schema 1's 9 took half its time)
GZIP_LEVEL = 1
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
# Dictionary pages only for columns of few distinct values per row group (what Athena filters
# on): for ids, keys, texts and payloads a dictionary is built and then abandoned, which took
# half of Parquet's time and left the file larger than plain pages under zstd
DICTIONARY_COLUMNS = [
    "company_id",
    "creator_id",
    "type",
    "version",
    "topic",
    "broadcaster_user_id",
    "tier",
    "outcome",
]


Conn = psycopg.Connection[dict[str, Any]]  # a runtime-role connection with dict rows


@dataclass
class DayResult:
    """One part written for a company-day (part 0 and no keys: nothing new to export)."""

    company_id: uuid.UUID
    day: date
    rows: int
    bytes: int
    keys: dict[str, str]
    first_seq: int | None
    last_seq: int | None
    part: int = 0
    covered_seq: int = 0
    orphans_removed: int = 0


@dataclass(frozen=True)
class Manifest:
    """What a verified manifest says of a company-day: its parts and the seq it covers."""

    parts: list[dict[str, Any]]
    checksums: list[dict[str, str]]
    row_count: int
    covered_seq: int

    @property
    def keys(self) -> set[str]:
        return {part[kind] for part in self.parts for kind in ("ndjson", "parquet")}


EMPTY = Manifest([], [], 0, 0)


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


# the two formats of a part, each under its own top-level prefix (see core.tenants)
Format = Literal["ndjson", "parquet"]
FORMATS: tuple[Format, ...] = ("ndjson", "parquet")
SUFFIX: dict[Format, str] = {"ndjson": "ndjson.gz", "parquet": "parquet"}


def prefix(company: uuid.UUID, day: date, fmt: Format) -> str:
    """`events/<format>/company_id=<id>/date=<YYYY-MM-DD>/`: Athena's table reads only the
    Parquet tree, and the lifecycle keeps it in a class Athena can read."""
    return f"{archive_prefix(company, fmt)}date={day.isoformat()}/"


def object_key(company: uuid.UUID, day: date, fmt: Format, digest: str) -> str:
    """A part's object key: named by its content, so a re-run writes the same key."""
    return f"{prefix(company, day, fmt)}part-{digest[:16]}.{SUFFIX[fmt]}"


# Every row's work is done natively. PostgreSQL hands the day's rows over in blocks of
# CHUNK_ROWS, each block one value: every row as its record's text, `(,v1,...,v26,)`, one
# row per line (a field is quoted when it needs to be, a quote or backslash inside it is
# doubled, a NULL is empty and unquoted, an empty string `""`; the payload is its jsonb text,
# the timestamps ISO text in UTC). COPY sends one message per block instead of one per row:
# reading a million rows one message each cost Python 1.5 s. Arrow's CSV reader (C++)
# turns each block into columns, which go to Parquet as they are, and Arrow compute kernels
# write the NDJSON lines from the same columns, a whole column per call. Python touches
# blocks and columns, never a row's values.
CHUNK_ROWS = 8192
_TIMESTAMPS = ("occurred_at", "received_at")
# the empty first and last fields come out as `(` and `)`, two columns the reader drops
_ROW_TEXT = "ROW(NULL::int, " + ", ".join(f"e.{name}" for name in COLUMNS) + ", NULL::int)::text"
# the session's settings the timestamps' text depends on, for the export's transaction only
_TEXT_SETTINGS = "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO', true)"
# One COPY streams the blocks (the server runs ahead while Arrow encodes), each block the rows
# of one range of CHUNK_ROWS seqs (`lo < seq <= lo + CHUNK_ROWS`; a range with none of the
# day's rows gives no block), in binary: a block is a bytea and its row count.
EXPORT_SQL = (
    "COPY (SELECT b.block, b.rows FROM generate_series(%s::bigint, %s::bigint - 1, %s::bigint) "  # noqa: S608 (fixed column names)
    f"AS g(lo) CROSS JOIN LATERAL (SELECT convert_to(string_agg({_ROW_TEXT}, E'\\n' "
    "ORDER BY e.seq) || E'\\n', 'UTF8') AS block, count(*) AS rows FROM events e "
    "WHERE e.company_id = %s AND e.occurred_at >= %s AND e.occurred_at < %s "
    "AND e.seq > g.lo AND e.seq <= least(g.lo + %s, %s)) b WHERE b.rows > 0) "
    "TO STDOUT (FORMAT binary)"
)
_CSV_TYPES = {name: PARQUET_SCHEMA.field(name).type for name in COLUMNS}
# one block, one thread: a chunk is small, and Arrow's pool threads cost more than they save
_CSV_READ = pacsv.ReadOptions(
    column_names=["(", *COLUMNS, ")"], block_size=4 * 1024 * 1024, use_threads=False
)
# a record's text: a quote in a quoted field doubled, a backslash escaped by another; a
# message text may hold a newline (quoted)
_CSV_PARSE = pacsv.ParseOptions(newlines_in_values=True, double_quote=True, escape_char="\\")
_CSV_CONVERT = pacsv.ConvertOptions(
    column_types=_CSV_TYPES,
    include_columns=COLUMNS,
    null_values=[""],
    strings_can_be_null=True,
    quoted_strings_can_be_null=False,
)

# JSON string escapes as Python's json module writes them: the two that must be escaped, the
# five control characters with a short form, the other control characters as \u00XX
_SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = {chr(c): _SHORT.get(chr(c), f"\\u{c:04x}") for c in range(0x20)}
# and the three characters other than \n and \r that str.splitlines() (and JavaScript
# before ES2019) take for a line break, so a line is a line to every reader
_BREAKS = {c: f"\\u{ord(c):04x}" for c in ("\u0085", "\u2028", "\u2029")}


# what a string needs escaped, as bytes: each is looked for with memchr/memmem, which is two
# orders of magnitude faster than a regular expression over the same bytes
_SPECIAL = (b'"', b"\\", *(bytes([c]) for c in range(0x20)))
_BREAK_BYTES = tuple(c.encode() for c in _BREAKS)


def _needles(raw: bytes, rows: int) -> tuple[bytes, ...]:
    """Which of the bytes that need escaping some value of a chunk holds, from the chunk's
    CSV (a newline also ends each row): most chunks hold only `"`."""
    candidates = _SPECIAL if raw.isascii() else _SPECIAL + _BREAK_BYTES
    found = tuple(n for n in candidates if n != b"\n" and n in raw)
    return (*found, b"\n") if raw.count(b"\n") != rows else found


def _found(needles: tuple[bytes, ...], column: pa.ChunkedArray) -> bool:
    """Whether a string column's bytes hold one of `needles` (a copy of each chunk's values,
    then one fast scan per needle)."""
    for chunk in column.chunks:
        values = chunk.buffers()[2]
        if values is not None:
            data = values.to_pybytes()
            if any(needle in data for needle in needles):
                return True
    return False


def _escaped(column: pa.ChunkedArray, needles: tuple[bytes, ...]) -> pa.ChunkedArray:
    """The strings as the inside of JSON string literals."""
    if not _found(needles, column):
        return column
    text = pc.replace_substring(column, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for char, escape in _CONTROLS.items():
            text = pc.replace_substring(text, char, escape)
    return _without_breaks(text, needles)


def _without_breaks(column: pa.ChunkedArray, needles: tuple[bytes, ...]) -> pa.ChunkedArray:
    """JSON text with U+0085, U+2028 and U+2029 escaped (they are only ever inside its
    strings, where the escape means the same character)."""
    breaks = tuple(n for n in needles if n in _BREAK_BYTES)
    if not breaks or not _found(breaks, column):
        return column
    for char, escape in _BREAKS.items():
        column = pc.replace_substring(column, char, escape)
    return column


def _json_timestamp(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Python's `datetime.isoformat()` of a UTC timestamp, without the quotes: microseconds
    only when there are some, then `+00:00`."""
    # Arrow writes `YYYY-MM-DD HH:MM:SS.ffffff` for a timestamp in microseconds
    text = column.cast(pa.timestamp("us")).cast(pa.string())
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    # a whole second: its first 19 characters (a suffix test, not a regular expression)
    return pc.if_else(pc.ends_with(text, ".000000"), pc.utf8_slice_codeunits(text, 0, 19), text)


def _ndjson(table: pa.Table, needles: tuple[bytes, ...]) -> pa.ChunkedArray:
    """The NDJSON line (with its newline) of every row of a parsed chunk: one object, keys
    in alphabetical order, no spaces outside the payload. Fixed text between the values
    (keys, quotes, a column that is null throughout) is joined once for the whole chunk."""
    pieces: list[Any] = []
    text = ""
    for i, name in enumerate(sorted(COLUMNS)):
        text += ("{" if i == 0 else ",") + f'"{name}":'
        column = table.column(name)
        if column.null_count == len(column):
            text += "null"
            continue
        if name in _TIMESTAMPS:  # NOT NULL
            value, quoted = _json_timestamp(column), True
            suffix = '+00:00"'
        elif name == "payload":  # PostgreSQL's jsonb text, NOT NULL
            value, quoted, suffix = column, False, ""
        elif pa.types.is_integer(column.type):
            value, quoted, suffix = pc.cast(column, pa.string()), False, ""
        else:
            value, quoted, suffix = _escaped(column, needles), True, '"'
        if column.null_count:
            if quoted:
                value = pc.binary_join_element_wise('"', value, suffix, "")
            pieces += [text, pc.fill_null(value, "null")]
            text = ""
        else:
            pieces += [text + ('"' if quoted else ""), value]
            text = suffix
    return pc.binary_join_element_wise(*pieces, text + "}\n", "")


def _stream(
    conn: psycopg.Connection[Any], company: uuid.UUID, day: date, after: int, through: int
) -> Iterator[tuple[pa.Table, tuple[bytes, ...]]]:
    """The day's rows with `after < seq <= through`, in seq order, as Arrow tables of at most
    CHUNK_ROWS rows each (the Parquet columns), each with the bytes needing a JSON escape
    that its values hold. The caller's transaction must be open (its settings change).

    The blocks are read in the caller's thread: a reader thread spent its time taking the
    GIL back and forth with the encoder's native calls, and measured slower."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    params = (after, through, CHUNK_ROWS, company, start, end, CHUNK_ROWS, through)
    conn.execute(_TEXT_SETTINGS)
    previous = after
    with conn.cursor().copy(EXPORT_SQL, params) as copy:
        copy.set_types(["bytea", "int8"])
        while (row := copy.read_row()) is not None:
            block, rows = row
            table, needles = _parse(block, rows)
            # blocks come in the order of their ranges (the query's nested loop); checked,
            # since SQL promises no order without ORDER BY, and one would hold them all
            seqs = table.column("seq")
            if seqs[0].as_py() <= previous:
                raise ArchiveError("the day's blocks arrived out of seq order")
            previous = seqs[-1].as_py()
            yield table, needles


def _parse(chunk: bytes, rows: int) -> tuple[pa.Table, tuple[bytes, ...]]:
    table = pacsv.read_csv(
        pa.BufferReader(chunk),
        read_options=_CSV_READ,
        parse_options=_CSV_PARSE,
        convert_options=_CSV_CONVERT,
    )
    if len(table) != rows:
        raise ArchiveError(f"a block of {rows} rows parsed as {len(table)}")
    needles = _needles(chunk, rows)
    # the payload's text as both files hold it
    payload = COLUMNS.index("payload")
    safe = _without_breaks(table.column(payload), needles)
    return table.set_column(payload, "payload", safe), needles


def _lines(column: pa.ChunkedArray | pa.Array) -> Iterator[pa.Buffer]:
    """The bytes of a string column's values, back to back (the NDJSON lines with their
    newlines): Arrow keeps an array's values contiguous, so this copies nothing."""
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        if len(chunk):
            _, offsets, values = chunk.buffers()
            (first,) = struct.unpack_from("=i", offsets, 4 * chunk.offset)
            (end,) = struct.unpack_from("=i", offsets, 4 * (chunk.offset + len(chunk)))
            yield values[first:end]


def _typed(table: pa.Table) -> pa.Table:
    """The Parquet table of a parsed chunk (the CSV reader typed its columns already)."""
    return pa.Table.from_arrays(table.columns, schema=PARQUET_SCHEMA)


@contextmanager
def _snapshot(conn: psycopg.Connection[Any], company: uuid.UUID) -> Iterator[None]:
    """A REPEATABLE READ, READ ONLY tenant transaction: every statement sees one snapshot."""
    isolation, read_only = conn.isolation_level, conn.read_only
    conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
    try:
        with tenant_transaction(conn, company):
            yield
    finally:
        conn.isolation_level, conn.read_only = isolation, read_only


@dataclass
class _Written:
    ndjson: Path
    parquet: Path
    rows: int
    first_seq: int | None
    last_seq: int | None
    covered_seq: int


def _write(
    conn: psycopg.Connection[Any], company: uuid.UUID, day: date, folder: Path, after: int
) -> _Written:
    """Both files for the day's rows after seq `after`, up to the company's `last_seq` read
    in the same snapshot; memory holds one row group and one chunk of the stream at most."""
    ndjson_path, parquet_path = folder / "part.ndjson.gz", folder / "part.parquet"
    count, first, last = 0, None, None
    # parsed chunks wait until a full row group is held, so every row group but the last
    # has exactly ROW_GROUP_ROWS rows whatever the chunks' sizes (the bytes depend on the
    # rows alone)
    pending: list[pa.Table] = []
    held = 0
    # mtime=0 and no file name: the gzip bytes depend only on the rows
    # isal ships no annotations for IGzipFile
    with (
        open(ndjson_path, "wb") as raw,
        igzip.IGzipFile(  # type: ignore[no-untyped-call]
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL
        ) as ndjson,
        pq.ParquetWriter(  # type: ignore[no-untyped-call,unused-ignore]
            parquet_path, PARQUET_SCHEMA, compression="zstd", use_dictionary=DICTIONARY_COLUMNS
        ) as parquet,
        # ISA-L lets go of the GIL: a chunk's lines are compressed while Parquet encodes it
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-gzip") as gzipper,
    ):
        compressing: Future[None] | None = None

        def compress(lines: list[pa.Buffer]) -> None:
            for buffer in lines:
                ndjson.write(buffer)  # type: ignore[no-untyped-call]

        def flush(final: bool) -> None:
            nonlocal pending, held
            if not pending:
                return
            table = pa.concat_tables(pending)
            whole = len(table) if final else len(table) - len(table) % ROW_GROUP_ROWS
            if whole:
                # one contiguous array per column: the pages then depend on the rows alone,
                # not on how the stream happened to be chunked
                group = table.slice(0, whole).combine_chunks()
                parquet.write_table(group, row_group_size=ROW_GROUP_ROWS)
            rest = table.slice(whole)
            pending, held = ([rest] if len(rest) else []), len(rest)

        with _snapshot(conn, company):
            # read first: every row with seq <= K is committed and visible in this snapshot
            head = conn.execute("SELECT last_seq FROM event_sequences").fetchone()
            covered = int(head["last_seq"]) if head else 0
            for chunk, needles in _stream(conn, company, day, after, covered):
                if not len(chunk):
                    continue
                lines = list(_lines(_ndjson(chunk, needles)))
                if compressing is not None:
                    compressing.result()  # one chunk in flight at most, in order
                compressing = gzipper.submit(compress, lines)
                seqs = chunk.column("seq")
                count += len(chunk)
                first = seqs[0].as_py() if first is None else first
                last = seqs[-1].as_py()
                pending.append(_typed(chunk))
                held += len(chunk)
                if held >= ROW_GROUP_ROWS:
                    flush(final=False)
        flush(final=True)
        if compressing is not None:
            compressing.result()
    return _Written(ndjson_path, parquet_path, count, first, last, covered)


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


def manifest(conn: psycopg.Connection[Any], company: uuid.UUID, day: date) -> Manifest:
    """The company-day's verified manifest, or EMPTY (an unverified one counts for nothing)."""
    with tenant_transaction(conn, company):
        row = conn.execute(
            "SELECT object_keys, checksums, row_count, covered_seq FROM archive_manifests "
            "WHERE day = %s AND verified_at IS NOT NULL",
            (day,),
        ).fetchone()
    if row is None:
        return EMPTY
    return Manifest(row["object_keys"], row["checksums"], row["row_count"], row["covered_seq"])


def remove_orphans(s3: Any, bucket: str, company: uuid.UUID, day: date, keep: set[str]) -> int:
    """Delete the objects under the day's prefixes (both formats) that `keep` (the manifest's
    keys) lacks.

    A run that died after an upload and before its manifest leaves such an object; its rows
    may overlap the next delta, so it goes before anything new is written.
    """
    removed = 0
    try:
        for fmt in FORMATS:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix(company, day, fmt)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"] not in keep:
                        s3.delete_object(Bucket=bucket, Key=obj["Key"])
                        removed += 1
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"orphan cleanup failed: {type(exc).__name__}") from exc
    if removed:
        log.warning(
            "archive orphans removed",
            extra=fields(company_id=str(company), day=str(day), objects=removed),
        )
    return removed


def export_day(
    conn: psycopg.Connection[Any], s3: Any, bucket: str, company: uuid.UUID, day: date
) -> DayResult:
    """Export the day's rows that its verified manifest does not cover, as one new part.

    The caller holds the company-day's advisory lock (`run` does). With nothing uncovered,
    nothing is written and the result has part 0.
    """
    current = manifest(conn, company, day)
    orphans = remove_orphans(s3, bucket, company, day, current.keys)
    with tempfile.TemporaryDirectory(prefix="archive-") as tmp:
        written = _write(conn, company, day, Path(tmp), current.covered_seq)
        if written.rows == 0:
            return DayResult(company, day, 0, 0, {}, None, None, 0, current.covered_seq, orphans)
        keys: dict[str, str] = {}
        checksums: dict[str, str] = {}
        total = 0
        for fmt in FORMATS:
            path = written.ndjson if fmt == "ndjson" else written.parquet
            digest = _sha256(path)
            name = object_key(company, day, fmt, digest)
            _upload(s3, bucket, path, name, digest)
            keys[fmt], checksums[fmt], total = name, digest, total + path.stat().st_size
    part = {
        **keys,
        "rows": written.rows,
        "first_seq": written.first_seq,
        "last_seq": written.last_seq,
        "after_seq": current.covered_seq,
        "covered_seq": written.covered_seq,
        "schema_version": SCHEMA_VERSION,  # a part without it is schema 1
    }
    parts = [*current.parts, part]
    with tenant_transaction(conn, company):
        row = conn.execute(
            "SELECT covered_seq FROM archive_manifests WHERE day = %s AND verified_at IS NOT NULL "
            "FOR UPDATE",
            (day,),
        ).fetchone()
        if (row["covered_seq"] if row else 0) != current.covered_seq:
            raise ArchiveError("the manifest changed during the export")  # another run, unlocked
        # a delta puts unpruned rows back into a pruned day: prune must visit it again
        conn.execute(
            "INSERT INTO archive_manifests (company_id, day, object_keys, row_count, first_seq, "
            "last_seq, checksums, schema_version, covered_seq, exported_at, verified_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now(), now()) "
            "ON CONFLICT (company_id, day) DO UPDATE SET object_keys = EXCLUDED.object_keys, "
            "row_count = EXCLUDED.row_count, "
            "first_seq = CASE WHEN archive_manifests.verified_at IS NULL THEN EXCLUDED.first_seq "
            "ELSE least(archive_manifests.first_seq, EXCLUDED.first_seq) END, "
            "last_seq = CASE WHEN archive_manifests.verified_at IS NULL THEN EXCLUDED.last_seq "
            "ELSE greatest(archive_manifests.last_seq, EXCLUDED.last_seq) END, "
            "checksums = EXCLUDED.checksums, schema_version = EXCLUDED.schema_version, "
            "covered_seq = EXCLUDED.covered_seq, exported_at = EXCLUDED.exported_at, "
            "verified_at = EXCLUDED.verified_at, pruned_at = NULL",
            (
                company,
                day,
                Jsonb(parts),
                current.row_count + written.rows,
                written.first_seq,
                written.last_seq,
                Jsonb([*current.checksums, checksums]),
                SCHEMA_VERSION,
                written.covered_seq,
            ),
        )
    return DayResult(
        company,
        day,
        written.rows,
        total,
        keys,
        written.first_seq,
        written.last_seq,
        len(parts),
        written.covered_seq,
        orphans,
    )


def pending_days(conn: Conn, company: uuid.UUID, today: date) -> list[date]:
    """Closed days (UTC) with a row that no verified manifest covers."""
    start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    with tenant_transaction(conn, company):
        rows = conn.execute(
            "SELECT DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date AS day FROM events e "
            "LEFT JOIN archive_manifests m ON m.day = (e.occurred_at AT TIME ZONE 'UTC')::date "
            "AND m.verified_at IS NOT NULL "
            "WHERE e.company_id = %s AND e.occurred_at < %s "
            "AND (m.day IS NULL OR e.seq > m.covered_seq) ORDER BY 1",
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


# what the prune leaves in PostgreSQL: the stream lifecycle, from which live time is computed
KEPT_HOT = analytics.STREAM_TYPES


def prune(conn: Conn, company: uuid.UUID, before: date) -> tuple[int, int]:
    """Delete the hot rows that verified manifests of days before `before` cover, by seq;
    returns (days, rows). A row of such a day that no manifest covers yet stays, and so do a
    creator's stream.online and stream.offline rows (a handful a day): analytics computes
    time live from them, for any range (docs/analytics.md)."""
    with tenant_transaction(conn, company):
        days = conn.execute(
            "SELECT day, covered_seq FROM archive_manifests WHERE verified_at IS NOT NULL "
            "AND pruned_at IS NULL AND day < %s ORDER BY day FOR UPDATE",
            (before,),
        ).fetchall()
        deleted = 0
        for d in days:
            start = datetime(d["day"].year, d["day"].month, d["day"].day, tzinfo=UTC)
            deleted += conn.execute(
                "DELETE FROM events WHERE company_id = %s AND occurred_at >= %s "
                "AND occurred_at < %s AND seq <= %s AND type <> ALL(%s)",
                (company, start, start + timedelta(days=1), d["covered_seq"], KEPT_HOT),
            ).rowcount
        if days:
            conn.execute(
                "UPDATE archive_manifests SET pruned_at = now() WHERE day = ANY(%s)",
                ([d["day"] for d in days],),
            )
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
            if result.orphans_removed:
                say(f"removed {result.orphans_removed} orphan object(s) of {company} {day}")
            if not result.part:
                continue  # another run exported it between our look and our lock
            summary.exported.append(result)
            log.info(
                "archive day exported",
                extra=fields(
                    company_id=str(company),
                    day=str(day),
                    rows=result.rows,
                    bytes=result.bytes,
                    part=result.part,
                    covered_seq=result.covered_seq,
                ),
            )
            delta = f" (delta part {result.part})" if result.part > 1 else ""
            say(f"exported {company} {day}: {result.rows} rows, {result.bytes} bytes{delta}")
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
