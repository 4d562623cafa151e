"""The archive against the real PostgreSQL and moto's S3 server.

Parquet lies under events/parquet/company_id=<id>/date=<day>/ (the only tree Athena's table
reads) and NDJSON under events/ndjson/company_id=<id>/date=<day>/."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg.types.json import Jsonb

from controlroom import settings
from controlroom.adapters import db, eventstore, s3
from controlroom.core import events as events_core
from controlroom.core import tenants
from controlroom.dev.stack import Endpoints
from controlroom.usecases import archive, companies
from tests import samples
from tests.integration.conftest import new_company
from tests.integration.tenant_data import sample_event

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
TODAY = date(2026, 3, 10)


@pytest.fixture
def bucket(endpoints: Endpoints) -> tuple[Any, str]:
    client = s3.client(endpoints.s3_endpoint_url, credentials=("local", "local"))
    name = f"archive-test-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return client, name


def company_with_events(db_settings: settings.DatabaseSettings, per_day: int) -> uuid.UUID:
    with db.connect(db_settings) as conn:
        company = new_company(conn, "Archived")
        events = []
        for day in (DAY1, DAY2):
            for i in range(per_day):
                at = datetime(day.year, day.month, day.day, 1, tzinfo=UTC) + timedelta(minutes=i)
                events.append(
                    sample_event(
                        f"{day}-{i}-{uuid.uuid4().hex[:6]}",
                        "1",
                        None,
                        occurred_at=at,
                        summary={"actor_login": f"fan{i}", "amount": i, "level": i % 5},
                        payload={"event": {"i": i, "emoji": "🎉", "nested": {"k": [1, 2]}}},
                    )
                )
        with db.tenant_transaction(conn, company):
            eventstore.append(conn, company, events)
    return company


def rows_of(
    db_settings: settings.DatabaseSettings, company: uuid.UUID, day: date
) -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        return conn.execute(
            "SELECT * FROM events WHERE occurred_at >= %s AND occurred_at < %s ORDER BY seq",
            (start, start + timedelta(days=1)),
        ).fetchall()


def run(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str], **kw: Any
) -> archive.Summary:
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        return archive.run(conn, client, name, today=TODAY, **kw)


def objects(bucket: tuple[Any, str], company: uuid.UUID) -> dict[str, str]:
    """Every archived object of the company (both formats), key -> ETag."""
    client, name = bucket
    found = {}
    for prefix in tenants.archive_prefixes(company):
        listing = client.list_objects_v2(Bucket=name, Prefix=prefix)
        found.update({o["Key"]: o["ETag"] for o in listing.get("Contents", [])})
    return found


def all_objects(bucket: tuple[Any, str]) -> set[str]:
    client, name = bucket
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_a_company_day_is_exported_exactly_and_a_rerun_changes_nothing(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    company = company_with_events(db_settings, 40)
    summary = run(db_settings, bucket)
    mine = [r for r in summary.exported if r.company_id == company]
    assert sorted(r.day for r in mine) == [DAY1, DAY2]
    assert all(r.rows == 40 for r in mine)
    client, name = bucket
    day1 = next(r for r in mine if r.day == DAY1)
    # each format under its own prefix: Athena's table reads the Parquet tree only
    for fmt, suffix in (("parquet", ".parquet"), ("ndjson", ".ndjson.gz")):
        assert day1.keys[fmt].startswith(f"events/{fmt}/company_id={company}/date={DAY1}/part-")
        assert day1.keys[fmt].endswith(suffix)
    expected = rows_of(db_settings, company, DAY1)
    # NDJSON: every column of every row, in seq order
    raw = client.get_object(Bucket=name, Key=day1.keys["ndjson"])["Body"].read()
    lines = [json.loads(line) for line in gzip.decompress(raw).splitlines()]
    assert [line["seq"] for line in lines] == [r["seq"] for r in expected]
    for line, row in zip(lines, expected, strict=True):
        assert line["payload"] == row["payload"]
        assert line["occurred_at"] == row["occurred_at"].isoformat()
        for column in ("twitch_message_id", "type", "topic", "actor_login", "amount", "level"):
            assert line[column] == row[column]
    # Parquet: typed columns, the payload as JSON text
    local_file = tmp_path / "day1.parquet"
    local_file.write_bytes(client.get_object(Bucket=name, Key=day1.keys["parquet"])["Body"].read())
    table = pq.read_table(local_file)
    assert table.schema.equals(archive.PARQUET_SCHEMA)
    assert table.column("seq").to_pylist() == [r["seq"] for r in expected]
    assert [json.loads(p) for p in table.column("payload").to_pylist()] == [
        r["payload"] for r in expected
    ]
    assert table.column("occurred_at").to_pylist() == [r["occurred_at"] for r in expected]
    assert pq.ParquetFile(local_file).metadata.row_group(0).column(0).compression == "ZSTD"
    # the manifest
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        manifest = conn.execute(
            "SELECT * FROM archive_manifests WHERE day = %s", (DAY1,)
        ).fetchone()
    assert (manifest["row_count"], manifest["first_seq"], manifest["last_seq"]) == (
        40,
        expected[0]["seq"],
        expected[-1]["seq"],
    )
    assert manifest["verified_at"] is not None and manifest["covered_seq"] >= expected[-1]["seq"]
    [part] = manifest["object_keys"]
    assert {k: part[k] for k in ("ndjson", "parquet")} == day1.keys
    assert (part["rows"], part["first_seq"], part["last_seq"], part["after_seq"]) == (
        40,
        expected[0]["seq"],
        expected[-1]["seq"],
        0,
    )
    assert manifest["checksums"][0]["ndjson"][:16] == day1.keys["ndjson"].split("part-")[1][:16]
    # a second run exports nothing and the objects are the same
    before = objects(bucket, company)
    again = run(db_settings, bucket)
    assert [r for r in again.exported if r.company_id == company] == []
    assert objects(bucket, company) == before


def test_a_run_killed_before_its_manifest_converges(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str], superuser_conn: Any
) -> None:
    company = company_with_events(db_settings, 10)
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        first = archive.export_day(conn, client, name, company, DAY1)
    # as if it had died after the upload, before recording the manifest
    superuser_conn.execute(
        "DELETE FROM archive_manifests WHERE company_id = %s AND day = %s", (company, DAY1)
    )
    summary = run(db_settings, bucket)
    again = next(r for r in summary.exported if r.company_id == company and r.day == DAY1)
    assert again.keys == first.keys  # same rows, same bytes, same keys
    assert len([k for k in objects(bucket, company) if f"date={DAY1}" in k]) == 2


def test_exports_hold_only_their_own_company(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    a = company_with_events(db_settings, 5)
    b = company_with_events(db_settings, 7)
    run(db_settings, bucket)
    client, name = bucket
    for company, count in ((a, 5), (b, 7)):
        for key in objects(bucket, company):
            fmt = "parquet" if key.endswith(".parquet") else "ndjson"
            assert key.startswith(f"events/{fmt}/company_id={company}/date=")
            if key.endswith(".ndjson.gz"):
                lines = gzip.decompress(
                    client.get_object(Bucket=name, Key=key)["Body"].read()
                ).splitlines()
                assert len(lines) == count
                assert {json.loads(line)["company_id"] for line in lines} == {str(company)}


def test_a_company_s_archive_prefixes_reach_every_object_it_has_and_no_other_s(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    # what the purge of a deleted company removes: every object under its archive prefixes
    doomed = company_with_events(db_settings, 3)
    kept = company_with_events(db_settings, 2)
    run(db_settings, bucket)
    client, name = bucket
    mine = set(objects(bucket, doomed))
    assert {k.split("/")[1] for k in mine} == {"parquet", "ndjson"}
    assert {k for k in all_objects(bucket) if str(doomed) in k} == mine
    removed = sum(
        companies.delete_prefix(client, name, prefix) for prefix in tenants.archive_prefixes(doomed)
    )
    assert removed == len(mine) == 4  # two days, two formats
    assert not any(str(doomed) in key for key in all_objects(bucket))
    assert len(objects(bucket, kept)) == 4


def test_prune_deletes_exactly_the_verified_expired_days(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    company = company_with_events(db_settings, 6)
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        archive.export_day(conn, client, name, company, DAY1)  # DAY2 is never exported
        days, rows = archive.prune(conn, company, TODAY)
    assert (days, rows) == (1, 6)
    assert rows_of(db_settings, company, DAY1) == []
    assert len(rows_of(db_settings, company, DAY2)) == 6  # never exported: never deleted
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        pruned = conn.execute("SELECT day, pruned_at FROM archive_manifests").fetchall()
    assert [(p["day"], p["pruned_at"] is not None) for p in pruned] == [(DAY1, True)]
    # retention through run(): DAY2 gets exported, and pruned only once it is old enough
    summary = run(db_settings, bucket, retention_days=30)
    assert DAY2 in {r.day for r in summary.exported if r.company_id == company}
    assert len(rows_of(db_settings, company, DAY2)) == 6  # exported, but not yet 30 days old


def test_prune_keeps_the_stream_lifecycle_that_live_time_is_computed_from(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    company = company_with_events(db_settings, 3)
    at = datetime(DAY1.year, DAY1.month, DAY1.day, 5, tzinfo=UTC)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        eventstore.append(
            conn,
            company,
            [
                sample_event("online-1", "1", None, type="stream.online", occurred_at=at),
                sample_event(
                    "offline-1",
                    "1",
                    None,
                    type="stream.offline",
                    occurred_at=at + timedelta(hours=2),
                ),
            ],
        )
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        archive.export_day(conn, client, name, company, DAY1)
        assert archive.prune(conn, company, TODAY) == (1, 3)
    assert sorted(r["type"] for r in rows_of(db_settings, company, DAY1)) == [
        "stream.offline",
        "stream.online",
    ]
    # kept rows are covered already: the next run exports nothing more for the day
    summary = run(db_settings, bucket, retention_days=30)
    assert DAY1 not in {r.day for r in summary.exported if r.company_id == company}


def test_s3_down_fails_the_day_cleanly_and_the_next_run_completes(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    company = company_with_events(db_settings, 4)
    _, name = bucket
    broken = s3.client(
        "http://127.0.0.1:9", credentials=("local", "local")
    )  # nothing listens there
    with db.connect(db_settings, autocommit=True) as conn:
        summary = archive.run(conn, broken, name, today=TODAY, retention_days=0)
    assert any(str(company) in f for f in summary.failed)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        assert conn.execute("SELECT count(*) AS n FROM archive_manifests").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"] == 8
    done = run(db_settings, bucket)
    assert {r.day for r in done.exported if r.company_id == company} == {DAY1, DAY2}


def test_duckdb_reads_the_tree_with_hive_partitions(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    company = company_with_events(db_settings, 9)
    run(db_settings, bucket)
    client, name = bucket
    for key in objects(bucket, company):
        target = tmp_path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.get_object(Bucket=name, Key=key)["Body"].read())
    # Athena's table reads events/parquet/ only: every file there is Parquet, and only there
    assert {p.name.split(".", 1)[1] for p in (tmp_path / "events" / "parquet").rglob("*.*")} == {
        "parquet"
    }
    assert {p.name.split(".", 1)[1] for p in (tmp_path / "events" / "ndjson").rglob("*.*")} == {
        "ndjson.gz"
    }
    counts = duckdb.sql(
        "SELECT company_id, date, count(*) AS n "
        f"FROM read_parquet('{tmp_path}/events/parquet/*/*/*', hive_partitioning = true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert [(str(c), str(d), n) for c, d, n in counts] == [
        (str(company), str(DAY1), 9),
        (str(company), str(DAY2), 9),
    ]
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        assert conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"] == 18


def test_archive_command_and_function(
    endpoints: Endpoints,
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from functions_framework import create_app

    from controlroom.dev import cli

    company_with_events(db_settings, 3)
    _, name = bucket
    for key, value in endpoints.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ARCHIVE_BUCKET", name)
    settings.archive.cache_clear()
    try:
        assert cli.main(["archive"]) == 0
        out = capsys.readouterr().out
        assert "company-days exported:" in out and "failed: 0" in out
        function = Path(__file__).resolve().parents[2] / "functions" / "archive" / "main.py"
        response = create_app("archive", str(function)).test_client().post("/")
        assert response.status_code == 200
        assert response.get_json()["exported"] == 0  # nothing left to do
        monkeypatch.setenv("ARCHIVE_RETENTION_DAYS", "soon")
        settings.archive.cache_clear()
        assert cli.main(["archive"]) == 2
    finally:
        settings.archive.cache_clear()


# --- late events: stored after their day was archived -----------------------------------


def add_late(
    db_settings: settings.DatabaseSettings, company: uuid.UUID, day: date, n: int
) -> set[int]:
    """n events that occurred late on `day`, stored now (a redelivery across midnight)."""
    at = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        before = conn.execute("SELECT last_seq FROM event_sequences").fetchone()["last_seq"]
        eventstore.append(
            conn,
            company,
            [sample_event(f"late-{uuid.uuid4().hex}", "1", None, occurred_at=at) for _ in range(n)],
        )
        rows = conn.execute("SELECT seq FROM events WHERE seq > %s", (before,)).fetchall()
    assert len(rows) == n
    return {r["seq"] for r in rows}


def hot_seqs(db_settings: settings.DatabaseSettings, company: uuid.UUID) -> set[int]:
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        return {r["seq"] for r in conn.execute("SELECT seq FROM events").fetchall()}


def archived(bucket: tuple[Any, str], company: uuid.UUID) -> tuple[Counter[int], Counter[int]]:
    """The seq multisets of every NDJSON and every Parquet object of the company."""
    client, name = bucket
    ndjson: Counter[int] = Counter()
    parquet: Counter[int] = Counter()
    for key in objects(bucket, company):
        body = client.get_object(Bucket=name, Key=key)["Body"].read()
        if key.endswith(".ndjson.gz"):
            ndjson.update(json.loads(line)["seq"] for line in gzip.decompress(body).splitlines())
        else:
            parquet.update(pq.read_table(pa.BufferReader(body)).column("seq").to_pylist())
    return ndjson, parquet


def manifests(db_settings: settings.DatabaseSettings, company: uuid.UUID) -> dict[date, Any]:
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        rows = conn.execute("SELECT * FROM archive_manifests ORDER BY day").fetchall()
    return {r["day"]: r for r in rows}


def assert_exactly_once(
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    company: uuid.UUID,
    ever: set[int],
) -> None:
    """Every row ever stored is in S3 once in each format, the objects are exactly the
    manifests' parts, and every row gone from PostgreSQL is one a manifest covers."""
    ndjson, parquet = archived(bucket, company)
    assert ndjson == parquet == Counter(ever)
    listed = set(objects(bucket, company))
    recorded = manifests(db_settings, company)
    assert listed == {
        p[kind]
        for m in recorded.values()
        for p in m["object_keys"]
        for kind in ("ndjson", "parquet")
    }
    for m in recorded.values():
        assert m["row_count"] == sum(p["rows"] for p in m["object_keys"])
        assert m["covered_seq"] == m["object_keys"][-1]["covered_seq"]
        for earlier, later in zip(m["object_keys"], m["object_keys"][1:], strict=False):
            assert earlier["covered_seq"] == later["after_seq"]  # the parts' ranges abut
    covered = {s for s in ndjson}
    assert ever - hot_seqs(db_settings, company) <= covered


def test_late_events_before_and_after_a_run_are_each_exported_once(
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    company = company_with_events(db_settings, 5)
    # stored after DAY2's rows but before any run: part of DAY1's first export
    ever = hot_seqs(db_settings, company) | add_late(db_settings, company, DAY1, 1)
    first = [r for r in run(db_settings, bucket).exported if r.company_id == company]
    assert sorted((r.day, r.part, r.rows) for r in first) == [(DAY1, 1, 6), (DAY2, 1, 5)]
    assert_exactly_once(db_settings, bucket, company, ever)

    # stored after DAY1 was archived: the next run writes a delta part with only those rows
    late = add_late(db_settings, company, DAY1, 2)
    ever |= late
    with db.connect(db_settings, autocommit=True) as conn:
        assert archive.pending_days(conn, company, TODAY) == [DAY1]
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        summary = archive.run(conn, client, name, today=TODAY, progress=print)
    [delta] = [r for r in summary.exported if r.company_id == company]
    assert (delta.day, delta.part, delta.rows) == (DAY1, 2, 2)
    assert (delta.first_seq, delta.last_seq) == (min(late), max(late))
    assert f"exported {company} {DAY1}: 2 rows" in capsys.readouterr().out
    m = manifests(db_settings, company)[DAY1]
    assert (m["row_count"], m["last_seq"], len(m["object_keys"])) == (8, max(late), 2)
    assert m["object_keys"][1]["after_seq"] == next(r for r in first if r.day == DAY1).covered_seq
    assert_exactly_once(db_settings, bucket, company, ever)

    # nothing new: a re-run writes nothing and the objects stay as they are
    before = objects(bucket, company)
    again = run(db_settings, bucket)
    assert [r for r in again.exported if r.company_id == company] == []
    assert objects(bucket, company) == before
    assert_exactly_once(db_settings, bucket, company, ever)


def test_prune_deletes_only_covered_rows_around_the_retention_boundary(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str]
) -> None:
    company = company_with_events(db_settings, 4)
    ever = hot_seqs(db_settings, company)
    # retention 8 days from TODAY: DAY1 is past it, DAY2 is the first day kept
    run(db_settings, bucket, retention_days=8)
    assert {r["seq"] for r in rows_of(db_settings, company, DAY1)} == set()
    assert len(rows_of(db_settings, company, DAY2)) == 4

    # late rows for a pruned day and for the boundary day; a prune before any export
    # leaves them, since no manifest covers them
    late1 = add_late(db_settings, company, DAY1, 2)
    late2 = add_late(db_settings, company, DAY2, 1)
    ever |= late1 | late2
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        assert archive.prune(conn, company, DAY2) == (0, 0)  # DAY1 is marked pruned already
    assert {r["seq"] for r in rows_of(db_settings, company, DAY1)} == late1

    # the next run exports each as a delta, then prunes DAY1's (now covered), not DAY2's
    summary = run(db_settings, bucket, retention_days=8)
    mine = sorted((r.day, r.part, r.rows) for r in summary.exported if r.company_id == company)
    assert mine == [(DAY1, 2, 2), (DAY2, 2, 1)]
    assert summary.pruned_rows == 2
    assert rows_of(db_settings, company, DAY1) == []
    assert len(rows_of(db_settings, company, DAY2)) == 5
    assert manifests(db_settings, company)[DAY1]["pruned_at"] is not None
    assert manifests(db_settings, company)[DAY2]["pruned_at"] is None
    assert_exactly_once(db_settings, bucket, company, ever)

    # a row stored between an export and the prune is not deleted with the covered ones
    late1b = add_late(db_settings, company, DAY1, 1)
    with db.connect(db_settings, autocommit=True) as conn:
        result = archive.export_day(conn, client, name, company, DAY1)
        assert result.part == 3
        racing = add_late(db_settings, company, DAY1, 1)
        assert archive.prune(conn, company, DAY2) == (1, 1)
    ever |= late1b | racing
    assert {r["seq"] for r in rows_of(db_settings, company, DAY1)} == racing
    assert_exactly_once(db_settings, bucket, company, ever - racing)

    # the boundary moves on a day: DAY2 goes, and the racing row is exported and pruned
    summary = run(db_settings, bucket, retention_days=7)
    assert hot_seqs(db_settings, company) == set()
    assert_exactly_once(db_settings, bucket, company, ever)


def test_an_orphan_left_by_a_crash_is_removed_before_the_next_delta(
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    superuser_conn: Any,
) -> None:
    company = company_with_events(db_settings, 3)
    ever = hot_seqs(db_settings, company)
    run(db_settings, bucket)
    saved = manifests(db_settings, company)[DAY1]
    ever |= add_late(db_settings, company, DAY1, 2)
    client, name = bucket
    with db.connect(db_settings, autocommit=True) as conn:
        crashed = archive.export_day(conn, client, name, company, DAY1)
    # as if the run had died after its uploads, before the manifest committed
    superuser_conn.execute(
        "UPDATE archive_manifests SET object_keys = %s, checksums = %s, row_count = %s, "
        "first_seq = %s, last_seq = %s, covered_seq = %s WHERE company_id = %s AND day = %s",
        (
            Jsonb(saved["object_keys"]),
            Jsonb(saved["checksums"]),
            saved["row_count"],
            saved["first_seq"],
            saved["last_seq"],
            saved["covered_seq"],
            company,
            DAY1,
        ),
    )
    # another late row: the next delta differs from the orphan and overlaps it
    ever |= add_late(db_settings, company, DAY1, 1)
    orphans = set(crashed.keys.values())
    assert orphans <= set(objects(bucket, company))
    summary = run(db_settings, bucket)
    [delta] = [r for r in summary.exported if r.company_id == company]
    assert (delta.day, delta.part, delta.rows, delta.orphans_removed) == (DAY1, 2, 3, 2)
    assert not orphans & set(objects(bucket, company))
    assert_exactly_once(db_settings, bucket, company, ever)


def test_manifests_from_before_coverage_are_migrated_safely(
    db_settings: settings.DatabaseSettings, bucket: tuple[Any, str], superuser_conn: Any
) -> None:
    company = company_with_events(db_settings, 3)
    ever = hot_seqs(db_settings, company)
    run(db_settings, bucket, retention_days=8)  # DAY1 exported and pruned, DAY2 exported
    # back to the old shape: one {ndjson, parquet} object, no coverage; DAY2's row count
    # disagrees with its rows (an export that cannot be trusted)
    superuser_conn.execute(
        "UPDATE archive_manifests SET covered_seq = 0, "
        "object_keys = jsonb_build_object('ndjson', object_keys->0->'ndjson', "
        "'parquet', object_keys->0->'parquet'), checksums = checksums->0, "
        "row_count = row_count + (day = %s)::int WHERE company_id = %s",
        (DAY2, company),
    )
    ever |= add_late(db_settings, company, DAY1, 1)  # the old prune would have lost it
    migration = (Path(__file__).resolve().parents[2] / "migrations").glob("0007.*.sql")
    lines = next(migration).read_text().splitlines()
    for statement in "\n".join(x for x in lines if not x.startswith("--")).split(";"):
        if statement.strip().startswith("UPDATE"):  # as the superuser: past RLS, as the owner
            superuser_conn.execute(statement)
    migrated = manifests(db_settings, company)
    assert migrated[DAY1]["covered_seq"] == migrated[DAY1]["last_seq"]
    assert len(migrated[DAY1]["object_keys"]) == 1
    assert (migrated[DAY2]["covered_seq"], migrated[DAY2]["object_keys"]) == (0, [])
    summary = run(db_settings, bucket, retention_days=8)
    mine = sorted(
        (r.day, r.part, r.rows, r.orphans_removed)
        for r in summary.exported
        if r.company_id == company
    )
    assert mine == [(DAY1, 2, 1, 0), (DAY2, 1, 3, 2)]
    assert rows_of(db_settings, company, DAY1) == []
    assert_exactly_once(db_settings, bucket, company, ever)


# The encoder of schema 1 (Python, a dict and two json.dumps per row), kept as the oracle for
# schema 2's native one: the same values, and bytes that differ only where docs/archive.md
# ("Formats") says they do.
def v1_plain(row: dict[str, Any]) -> dict[str, Any]:
    return {c: str(row[c]) if isinstance(row[c], uuid.UUID) else row[c] for c in archive.COLUMNS}


def v1_line(row: dict[str, Any], *, ensure_ascii: bool = True, payload: Any = None) -> str:
    line = {
        **v1_plain(row),
        "occurred_at": row["occurred_at"].isoformat(),
        "received_at": row["received_at"].isoformat(),
    }
    if payload is not None:
        line["payload"] = payload
    return json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)


def escape_breaks(text: str) -> str:
    """Schema 2 escapes the characters str.splitlines() breaks at besides \n and \r."""
    for char in ("\x85", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def v1_parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    plain = v1_plain(row)
    plain["payload"] = json.dumps(row["payload"], sort_keys=True, separators=(",", ":"))
    return plain


def varied_events(day: date) -> list[eventstore.NewEvent]:
    """Every sample delivery Twitch documents, and rows made to be awkward to encode."""
    at = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    events = []
    for i, name in enumerate(samples.sample_names()):
        for j, fact in enumerate(events_core.normalize_notification(samples.load(name), at)):
            events.append(
                eventstore.NewEvent(
                    twitch_message_id=f"sample-{name}-{j}-{uuid.uuid4().hex[:6]}",
                    type=fact.type,
                    version=fact.version,
                    topic=fact.topic,
                    occurred_at=at + timedelta(seconds=i, microseconds=i * 7),
                    received_at=at + timedelta(seconds=i + 1),
                    broadcaster_user_id=fact.broadcaster_user_id,
                    payload=fact.event,
                    summary=fact.summary,
                )
            )
    awkward_texts = [
        "",
        "plain",
        'quote " and backslash \\ and slash /',
        "emoji 🎉🔥 accents éà CJK 漢字 RTL שלום",
        "line\nbreak\ttab\rreturn\x01control\x1fend\x7fdel",
        "separators \u2028\u2029\x85 and \ufffd",
        "\\u0041 is not an escape here",
        '(parens), a comma, \\\\ two backslashes, "" two quotes and a trailing space ',
    ]
    for i, text in enumerate(awkward_texts):
        events.append(
            sample_event(
                f"awkward-{i}-{uuid.uuid4().hex[:6]}",
                "4242",
                None,
                type="channel.chat.message",
                occurred_at=at + timedelta(minutes=10 + i, microseconds=(i % 2) * 123456),
                summary={
                    "actor_login": text,
                    "actor_name": text or None,
                    "message_text": text,
                    "amount": [0, -1, 2**62, -(2**63), 1, None, 7][i % 7],
                    "level": [None, 0, 2**31 - 1, -(2**31), 5, 1, None][i % 7],
                    "duration_seconds": i * 3600 if i % 3 else None,
                },
                payload={
                    "text": text,
                    text or "empty": [text, None, True, False],
                    "numbers": [0, -0.5, 0.1, 2**70, -(2**64), 1e300, 1.5e-7, 12345678901234567.5],
                    "nested": {"b": {"a": [[], {}], "é": "ü"}, "a": None, "aa": 1, "B": 2},
                },
            )
        )
    return events


def test_schema_2_holds_the_values_of_schema_1_and_a_rerun_writes_the_same_bytes(
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    superuser_conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with db.connect(db_settings) as conn:
        company = new_company(conn, "Encodings")
        with db.tenant_transaction(conn, company):
            eventstore.append(conn, company, varied_events(DAY1))
    expected = rows_of(db_settings, company, DAY1)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        payload_text = {
            r["seq"]: escape_breaks(r["payload"])
            for r in conn.execute("SELECT seq, payload::text AS payload FROM events").fetchall()
        }
    assert {r["type"] for r in expected} >= {
        samples.load(name)["subscription"]["type"] for name in samples.sample_names()
    }
    client, name = bucket

    def export() -> tuple[archive.DayResult, dict[str, bytes]]:
        with db.connect(db_settings, autocommit=True) as conn:
            result = archive.export_day(conn, client, name, company, DAY1)
        bodies = {
            fmt: client.get_object(Bucket=name, Key=key)["Body"].read()
            for fmt, key in result.keys.items()
        }
        # as if never exported: the next export writes the day afresh
        superuser_conn.execute("DELETE FROM archive_manifests WHERE company_id = %s", (company,))
        for key in result.keys.values():
            client.delete_object(Bucket=name, Key=key)
        return result, bodies

    first, bodies = export()
    assert first.rows == len(expected)
    # NDJSON: per row, the same values as schema 1's line ...
    # one line a row, ended by "\n" (str.splitlines would also split at U+2028)
    text = gzip.decompress(bodies["ndjson"]).decode()
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert len(lines) == len(expected)
    for line, row in zip(lines, expected, strict=True):
        assert json.loads(line) == json.loads(v1_line(row))
        # ... and the same bytes but for UTF-8 where schema 1 wrote \u escapes (bar three
        # line breaks), and the payload as PostgreSQL's jsonb text
        marker = f"payload-{uuid.uuid4().hex}"
        assert line == escape_breaks(v1_line(row, ensure_ascii=False, payload=marker)).replace(
            json.dumps(marker), payload_text[row["seq"]]
        )
        assert len(line.splitlines()) == 1
    # Parquet: the same schema and the same values as schema 1's, the payload as jsonb text
    local = tmp_path / "day.parquet"
    local.write_bytes(bodies["parquet"])
    table = pq.read_table(local)
    assert table.schema.equals(archive.PARQUET_SCHEMA)
    oracle = pa.Table.from_pylist([v1_parquet_row(r) for r in expected], archive.PARQUET_SCHEMA)
    for column in archive.COLUMNS:
        if column != "payload":
            assert table.column(column).equals(oracle.column(column)), column
    assert table.column("payload").to_pylist() == [payload_text[r["seq"]] for r in expected]
    assert [json.loads(p) for p in table.column("payload").to_pylist()] == [
        r["payload"] for r in expected
    ]
    # a rerun over the same rows writes the same bytes under the same keys, and so does one
    # that reads the rows in blocks of three and cuts tiny row groups where the first cut none
    # (parts differ only in how many row groups they hold)
    again, again_bodies = export()
    assert again.keys == first.keys and again_bodies == bodies
    monkeypatch.setattr(archive, "CHUNK_ROWS", 3)
    chunked, chunked_bodies = export()
    assert chunked.keys == first.keys and chunked_bodies == bodies
    monkeypatch.setattr(archive, "ROW_GROUP_ROWS", 7)
    _, grouped_bodies = export()
    assert grouped_bodies["ndjson"] == bodies["ndjson"]
    local.write_bytes(grouped_bodies["parquet"])
    assert pq.ParquetFile(local).metadata.num_row_groups == -(-len(expected) // 7)
    assert pq.read_table(local).equals(table)
    # the manifest says which encoding wrote the part
    with db.connect(db_settings, autocommit=True) as conn:
        archive.export_day(conn, client, name, company, DAY1)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        manifest = conn.execute("SELECT * FROM archive_manifests").fetchone()
    assert manifest["schema_version"] == archive.SCHEMA_VERSION == 2
    assert [p["schema_version"] for p in manifest["object_keys"]] == [2]


def test_a_failure_while_encoding_stops_the_stream_and_the_next_export_completes(
    db_settings: settings.DatabaseSettings,
    bucket: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    company = company_with_events(db_settings, 60)
    client, name = bucket
    typed = archive._typed
    calls = 0

    def failing(table: pa.Table) -> pa.Table:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("no space left on device")
        return typed(table)

    # many small blocks, so the day is still being read when the encoder fails
    monkeypatch.setattr(archive, "CHUNK_ROWS", 2)
    monkeypatch.setattr(archive, "_typed", failing)
    with db.connect(db_settings, autocommit=True) as conn:
        with pytest.raises(OSError, match="no space"):
            archive.export_day(conn, client, name, company, DAY1)
        assert not objects(bucket, company)
        assert archive.manifest(conn, company, DAY1) == archive.EMPTY
        monkeypatch.setattr(archive, "_typed", typed)
        # the same connection works on: the transaction was ended
        result = archive.export_day(conn, client, name, company, DAY1)
    assert result.rows == 60
