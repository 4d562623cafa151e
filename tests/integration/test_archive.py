"""The archive against the real PostgreSQL and moto's S3 server."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from controlroom import archive, db, eventstore, s3, settings
from controlroom.stack import Endpoints
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
    client, name = bucket
    listing = client.list_objects_v2(Bucket=name, Prefix=f"events/company_id={company}/")
    return {o["Key"]: o["ETag"] for o in listing.get("Contents", [])}


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
    assert manifest["verified_at"] is not None and manifest["object_keys"] == day1.keys
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
            assert key.startswith(f"events/company_id={company}/")
            if key.endswith(".ndjson.gz"):
                lines = gzip.decompress(
                    client.get_object(Bucket=name, Key=key)["Body"].read()
                ).splitlines()
                assert len(lines) == count
                assert {json.loads(line)["company_id"] for line in lines} == {str(company)}


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
        if key.endswith(".parquet"):
            target = tmp_path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.get_object(Bucket=name, Key=key)["Body"].read())
    counts = duckdb.sql(
        f"SELECT date, count(*) AS n FROM read_parquet('{tmp_path}/events/*/*/*.parquet', "
        "hive_partitioning = true) GROUP BY date ORDER BY date"
    ).fetchall()
    assert [(str(d), n) for d, n in counts] == [(str(DAY1), 9), (str(DAY2), 9)]
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

    from controlroom import cli

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
