"""The analytics API on the live local app: the company's time zone, summaries beside the
previous period, series, the leaderboard and CSV, each refused clearly when asked wrongly
and never reaching another company's creators."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.dev import cli
from controlroom.dev.stack import LocalStack
from tests.integration.conftest import services_stack
from tests.integration.tenant_data import sample_event
from tests.integration.test_api import Agency, Api, make_agency


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "analytics") as running:
        yield running


@pytest.fixture(scope="module")
def cfg(stack: LocalStack) -> settings.DatabaseSettings:
    assert stack.endpoints is not None
    return settings.DatabaseSettings.from_env(stack.endpoints.env())


@pytest.fixture(scope="module")
def agencies(cfg: settings.DatabaseSettings) -> tuple[Agency, Agency]:
    return make_agency(cfg, "ana_alpha", 0), make_agency(cfg, "ana_bravo", 0)


def store(cfg: settings.DatabaseSettings, agency: Agency, events: list[tuple[Any, ...]]) -> None:
    """(creator index, type, minutes ago, summary) as persist stores them."""
    now = datetime.now(UTC)
    batch = [
        sample_event(
            f"ana-{uuid.uuid4()}",
            "1",
            agency.creators[index],
            type=kind,
            occurred_at=now - timedelta(minutes=ago),
            summary=summary,
        )
        for index, kind, ago, summary in events
    ]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, agency.company):
        eventstore.append(conn, agency.company, batch)


def test_time_zone_is_an_admin_setting_and_must_be_known(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    status, me = Api(stack, a, "viewer")("GET", "/api/me")
    assert (status, me["company"]["time_zone"]) == (200, "UTC")
    status, _answer = Api(stack, a, "operator")(
        "PATCH", "/api/company", {"time_zone": "Asia/Tokyo"}
    )
    assert status == 403
    status, answer = Api(stack, a, "admin")("PATCH", "/api/company", {"time_zone": "Mars/Olympus"})
    assert status == 422 and "time zone" in str(answer).lower()
    status, answer = Api(stack, a, "admin")("PATCH", "/api/company", {"time_zone": "Asia/Kolkata"})
    assert (status, answer["time_zone"]) == (200, "Asia/Kolkata")
    status, summary = Api(stack, a, "viewer")("GET", "/api/analytics/summary?period=24h")
    assert (status, summary["time_zone"]) == (200, "Asia/Kolkata")
    status, _answer = Api(stack, a, "admin")("PATCH", "/api/company", {"time_zone": "UTC"})
    assert status == 200


def test_summary_series_leaderboard_and_csv_count_exactly(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    store(
        cfg,
        a,
        [
            (0, "channel.follow", 10, {}),
            (0, "channel.follow", 70, {}),
            (1, "channel.follow", 20, {}),
            (0, "channel.cheer", 30, {"amount": 500}),
            (1, "channel.subscribe", 40, {"tier": "3000"}),
            (1, "channel.subscribe", 41, {"tier": "1000", "outcome": "gift"}),
            (1, "channel.subscription.gift", 41, {"amount": 5, "tier": "1000"}),
            (0, "channel.follow", 60 * 30, {}),  # yesterday: the previous period
        ],
    )
    store(cfg, b, [(0, "channel.follow", 5, {}) for _ in range(9)])  # B's, never A's
    viewer = Api(stack, a, "viewer")
    status, summary = viewer("GET", "/api/analytics/summary?period=24h")
    assert status == 200, summary
    m = summary["metrics"]
    assert m["follows"] == {"value": 3, "previous": 1}
    assert m["bits"] == {"value": 500, "previous": 0}
    assert m["subs"]["value"] == 1 and m["subs_tier3"]["value"] == 1
    assert m["gifted_subs"]["value"] == 5
    assert m["viewers_peak"] == {"value": None, "previous": None}  # no pulse sample
    status, one = viewer("GET", f"/api/analytics/summary?period=24h&creator_id={a.creators[1]}")
    assert (status, one["metrics"]["follows"]["value"]) == (200, 1)

    status, series = viewer("GET", "/api/analytics/series?period=24h&metric=follows&interval=1h")
    assert status == 200
    assert len(series["buckets"]) == len(series["series"]["follows"])
    assert sum(series["series"]["follows"]) == 3

    status, board = viewer("GET", "/api/analytics/leaderboard?period=24h&metric=follows")
    assert status == 200
    assert [(r["rank"], r["creator_id"], r["value"]) for r in board["rows"]] == [
        (1, str(a.creators[0]), 2),
        (2, str(a.creators[1]), 1),
    ]

    status, text = viewer("GET", "/api/analytics/leaderboard.csv?period=24h&metric=follows")
    assert status == 200
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["rank", "creator", "login", "follows", "previous"]
    assert rows[1][:4] == ["1", "ana_alpha creator 0", "ana_alpha_c0", "2"]
    status, text = viewer("GET", "/api/analytics/summary.csv?period=24h")
    assert status == 200 and ["follows", "3", "1"] in list(csv.reader(io.StringIO(text)))
    status, text = viewer(
        "GET", "/api/analytics/series.csv?period=24h&metric=follows&metric=bits&interval=1h"
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["bucket", "follows", "bits"]
    assert sum(int(r[1]) for r in rows[1:]) == 3 and sum(int(r[2]) for r in rows[1:]) == 500


def test_a_creator_named_like_a_formula_is_quoted_in_csv(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
        conn.execute(
            "UPDATE creators SET display_name = '=HYPERLINK(\"x\")' WHERE id = %s",
            (a.creators[1],),
        )
    try:
        status, text = Api(stack, a, "viewer")("GET", "/api/analytics/leaderboard.csv?period=7d")
        assert status == 200
        names = [r[1] for r in csv.reader(io.StringIO(text))]
        assert '\'=HYPERLINK("x")' in names
        assert not any(n.startswith("=") for n in names)
    finally:
        with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
            conn.execute(
                "UPDATE creators SET display_name = 'ana_alpha creator 1' WHERE id = %s",
                (a.creators[1],),
            )


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("summary?period=90d", "period"),
        ("summary?from=2026-01-01", "both"),
        ("summary?from=2026-01-02&to=2026-01-01", "later"),
        ("summary?from=2026-01-01T00:03:00Z&to=2026-01-02", "5-minute"),
        ("summary?from=2026-01-01T00:00:00&to=2026-01-02", "offset"),
        ("summary?from=2020-01-01&to=2026-01-01", "400 days"),
        ("summary?period=7d&from=2026-01-01&to=2026-01-02", "either"),
        ("series?period=30d&metric=follows&interval=5m", "points"),
        ("series?period=7d&metric=nonsense", "live_minutes"),
        ("leaderboard?period=7d&metric=nonsense", "live_minutes"),
        ("leaderboard?period=7d&limit=0", "limit"),
        ("series?period=7d&metric=follows&interval=1w", "interval"),
    ],
)
def test_bad_ranges_and_metrics_are_clear_422s(
    stack: LocalStack, agencies: tuple[Agency, Agency], query: str, says: str
) -> None:
    a, _ = agencies
    status, answer = Api(stack, a, "viewer")("GET", f"/api/analytics/{query}")
    assert status == 422, answer
    assert says in str(answer), answer
    assert "Traceback" not in str(answer)


def test_another_company_creator_is_not_found(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    for path in (
        f"/api/analytics/summary?period=7d&creator_id={b.creators[0]}",
        f"/api/analytics/series?period=7d&metric=follows&creator_id={b.creators[0]}",
        f"/api/analytics/summary.csv?period=7d&creator_id={b.creators[0]}",
    ):
        status, answer = Api(stack, a, "owner")("GET", path)
        assert status == 404, (path, answer)
        assert str(b.creators[0]) not in str(answer)


def test_check_finds_a_corrupted_rollup_and_rebuild_repairs_it(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    agencies: tuple[Agency, Agency],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, _ = agencies
    assert stack.endpoints is not None
    for key, value in stack.endpoints.env().items():
        monkeypatch.setenv(key, value)
    store(cfg, a, [(0, "channel.chat.message", 3, {}) for _ in range(4)])
    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    args = ["--company", str(a.company), "--since", since]
    assert cli.main(["analytics", "check", *args]) == 0
    assert "equal a recount" in capsys.readouterr().out
    url = stack.endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
    with psycopg.connect(url, autocommit=True) as su:
        su.execute(
            "UPDATE analytics_buckets SET chat_messages = chat_messages + 7 "
            "WHERE company_id = %s AND width = 3600 AND chat_messages > 0",
            (a.company,),
        )
    assert cli.main(["analytics", "check", *args]) == 1
    out = capsys.readouterr().out
    assert "width 3600s" in out and "chat_messages: stored 11, recounted 4" in out
    assert cli.main(["analytics", "rebuild", *args]) == 0
    assert "rebuilt 3 day(s)" in capsys.readouterr().out
    assert cli.main(["analytics", "check", *args]) == 0
    status, summary = Api(stack, a, "viewer")("GET", "/api/analytics/summary?period=24h")
    assert (status, summary["metrics"]["chat_messages"]["value"]) == (200, 4)
    assert cli.main(["analytics", "check", "--company", "acme", "--since", since]) == 1
    assert "must be a UUID" in capsys.readouterr().err
