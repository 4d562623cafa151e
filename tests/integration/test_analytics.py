"""Analytics rollups against the test's own recount, on the real PostgreSQL as the runtime role.

Events go in the product's way (`eventstore.append` in a tenant transaction; the trigger
keeps the rollups), with duplicates, redeliveries, replays under new message ids and
out-of-order batches; every figure the use case returns (summary, series, leaderboard) must
equal what `analytics_streams.Oracle` recounts in plain Python from the distinct facts
stored. Then isolation between two companies watching one broadcaster, `check` and
`rebuild` (pruned days included), writers racing a rebuild, and two transactions racing to
store one message id.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from controlroom import settings as app_settings
from controlroom.adapters import db, eventstore
from controlroom.core import analytics as core
from controlroom.core.roles import Caller
from controlroom.errors import NotFoundError
from controlroom.usecases import analytics
from tests.integration.analytics_streams import (
    FIVE_MINUTES,
    SUMMARIES,
    ZONES,
    Fact,
    Oracle,
    Sample,
    Scenario,
    Zone,
    boundaries,
    floor5,
    local_midnight,
    new_event,
    same,
    scenarios,
)
from tests.integration.conftest import new_company

EXAMPLES_PER_ZONE = 5  # x 7 zones and DST days: 35 examples
_CFG: list[app_settings.DatabaseSettings] = []

_INSERT_SAMPLE = (  # the audience pulse's statement (controlroom/usecases/pulse.py)
    "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers, stream_id) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


@pytest.fixture(autouse=True)
def _database(db_settings: app_settings.DatabaseSettings) -> Iterator[None]:
    _CFG.append(db_settings)
    yield
    _CFG.clear()


@pytest.fixture
def conn(db_settings: app_settings.DatabaseSettings) -> Iterator[psycopg.Connection[Any]]:
    with db.connect(db_settings, autocommit=True) as c:
        yield c


@dataclass(frozen=True)
class Company:
    id: uuid.UUID
    creators: list[uuid.UUID]
    broadcasters: list[str]
    caller: Caller


def make_company(
    conn: psycopg.Connection[Any],
    zone: str,
    n_creators: int,
    broadcasters: Sequence[str] | None = None,
) -> Company:
    """A company in `zone` with creators named so that name order is unambiguous."""
    company = new_company(conn, "Analytics")
    subs = list(broadcasters or [str(uuid.uuid4().int % 10**12) for _ in range(n_creators)])
    creators: list[uuid.UUID] = []
    with db.tenant_transaction(conn, company):
        conn.execute("UPDATE companies SET time_zone = %s WHERE id = %s", (zone, company))
        for i, b in enumerate(subs):
            creators.append(
                conn.execute(
                    "INSERT INTO creators (company_id, twitch_user_id, twitch_login, "
                    "display_name) VALUES (%s, %s, %s, %s) RETURNING id",
                    (company, b, f"login{i}_{b}", f"Creator {chr(65 + i)}"),
                ).fetchone()["id"]
            )
    return Company(company, creators, subs, Caller(company, uuid.uuid4(), "viewer@test", "viewer"))


def store(
    conn: psycopg.Connection[Any],
    company: Company,
    deliveries: Sequence[Fact],
    batches: Sequence[int],
) -> None:
    """Deliveries in consecutive batches, one tenant transaction each, as ingestion does."""
    i = 0
    for size in batches:
        batch = deliveries[i : i + size]
        i += size
        with db.tenant_transaction(conn, company.id):
            events = [
                new_event(
                    f,
                    company.creators,
                    company.broadcasters[f.creator] if f.creator is not None else "",
                )
                for f in batch
            ]
            eventstore.append(conn, company.id, events)
    assert i == len(deliveries)


def store_samples(
    conn: psycopg.Connection[Any], company: Company, samples: Sequence[Sample]
) -> None:
    for chunk in (samples[k : k + 4] for k in range(0, len(samples), 4)):
        with db.tenant_transaction(conn, company.id):
            for s in chunk:
                conn.execute(
                    _INSERT_SAMPLE,
                    (
                        company.id,
                        company.creators[s.creator],
                        s.sampled_at,
                        s.live,
                        s.viewers,
                        "stream-1" if s.live else None,
                    ),
                )


def run_async(work: Any) -> Any:
    async def go() -> Any:
        async with await db.connect_async(_CFG[0], autocommit=True) as aconn:
            return await work(aconn)

    return asyncio.run(go())


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- comparing what the use case says with the oracle -------------------------------------


class Verifier:
    """Asks the use case, as the API does (zone from the company), and compares every figure."""

    def __init__(
        self,
        aconn: psycopg.AsyncConnection[Any],
        company: Company,
        oracle: Oracle,
        now: datetime | None = None,  # the use case's clock; None: its own, as the API
    ) -> None:
        self.aconn, self.company, self.oracle, self.now = aconn, company, oracle, now
        self.zone = ""
        self.compared = 0

    async def start(self) -> None:
        self.zone = await analytics.company_zone(self.aconn, self.company.caller)

    def creator_index(self, creator_id: uuid.UUID | None) -> int | None:
        return None if creator_id is None else self.company.creators.index(creator_id)

    def expect(self, label: str, got: Any, want: Any) -> None:
        assert same(got, want), f"{label}: use case says {got!r}, recount says {want!r}"
        self.compared += 1

    async def summary(self, rng: core.Range, creator_id: uuid.UUID | None = None) -> None:
        out = await analytics.summary(
            self.aconn, self.company.caller, rng, creator_id, zone=self.zone, now=self.now
        )
        idx = self.creator_index(creator_id)
        now_fig = self.oracle.figures(rng.start, rng.end, idx)
        prev_fig = self.oracle.figures(rng.previous_start, rng.previous_end, idx)
        assert at(out["start"]) == rng.start and at(out["end"]) == rng.end
        assert at(out["previous_start"]) == rng.previous_start
        assert at(out["previous_end"]) == rng.previous_end
        assert out["time_zone"] == self.zone
        assert out["creator_id"] == (str(creator_id) if creator_id else None)
        assert list(out["metrics"]) == core.ORDER
        assert set(core.ORDER) == set(now_fig)
        where = f"summary {rng.start.isoformat()}..{rng.end.isoformat()} creator={idx}"
        for name in core.ORDER:
            self.expect(f"{where} {name} value", out["metrics"][name]["value"], now_fig[name])
            self.expect(
                f"{where} {name} previous", out["metrics"][name]["previous"], prev_fig[name]
            )

    async def series(
        self, rng: core.Range, interval: str, creator_id: uuid.UUID | None = None
    ) -> list[datetime]:
        out = await analytics.series(
            self.aconn,
            self.company.caller,
            rng,
            core.ORDER,
            interval,
            creator_id=creator_id,
            zone=self.zone,
            now=self.now,
        )
        idx = self.creator_index(creator_id)
        starts = [at(b) for b in out["buckets"]]
        where = f"series {interval} {rng.start.isoformat()}..{rng.end.isoformat()} creator={idx}"
        assert starts == boundaries(self.zone, rng.start, rng.end, interval), where
        assert set(out["series"]) == set(core.ORDER)
        edges = [*starts, rng.end]
        for i, b in enumerate(starts):
            want = self.oracle.figures(edges[i], edges[i + 1], idx)
            for name in core.ORDER:
                values = out["series"][name]
                assert len(values) == len(starts)
                self.expect(f"{where} {name} @ {b.isoformat()}", values[i], want[name])
        return starts

    async def leaderboard(self, rng: core.Range, metric: str) -> None:
        out = await analytics.leaderboard(
            self.aconn, self.company.caller, rng, metric, 200, zone=self.zone, now=self.now
        )
        rows = out["rows"]
        assert out["metric"] == metric
        assert sorted(r["creator_id"] for r in rows) == sorted(map(str, self.company.creators))
        where = f"leaderboard {metric} {rng.start.isoformat()}..{rng.end.isoformat()}"
        for r in rows:
            idx = self.company.creators.index(uuid.UUID(r["creator_id"]))
            want = self.oracle.figures(rng.start, rng.end, idx)[metric]
            before = self.oracle.figures(rng.previous_start, rng.previous_end, idx)[metric]
            self.expect(f"{where} creator={idx} value", r["value"], want)
            self.expect(f"{where} creator={idx} previous", r["previous"], before)
            assert r["display_name"] == f"Creator {chr(65 + idx)}"
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        ranked = [r for r in rows if r["value"] is not None]
        # highest first, ties by name; creators without a value (no audience sample) last
        assert ranked == sorted(ranked, key=lambda r: (-r["value"], r["display_name"]))
        assert rows[: len(ranked)] == ranked


def wall_days_back(instant: datetime, zone: str, days: int) -> datetime | None:
    """The same local wall time `days` days earlier, when that wall time exists once."""
    tz = ZoneInfo(zone)
    wall = instant.astimezone(tz).replace(tzinfo=None) - timedelta(days=days)
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        return None
    return first.astimezone(UTC)


def ranges_for(zone: Zone, now_offset: timedelta) -> dict[str, core.Range]:
    """The ranges each example is read over, each checked against its definition first."""
    z, d = zone.name, zone.day
    iso = lambda x: x.isoformat()  # noqa: E731
    out: dict[str, core.Range] = {}

    three_days = core.resolve(None, iso(d - timedelta(days=1)), iso(d + timedelta(days=2)), z, _NOW)
    assert three_days.start == local_midnight(z, d - timedelta(days=1))
    assert three_days.end == local_midnight(z, d + timedelta(days=2))
    assert three_days.previous_end == three_days.start
    assert three_days.previous_start == three_days.start - (three_days.end - three_days.start)
    out["3 local days"] = three_days

    one_day = core.resolve(None, iso(d), iso(d + timedelta(days=1)), z, _NOW)
    assert (one_day.start, one_day.end) == (
        local_midnight(z, d),
        local_midnight(z, d + timedelta(days=1)),
    )
    out["the DST day"] = one_day

    pivot = zone.change or local_midnight(z, d)
    now = pivot + now_offset
    day = core.resolve("24h", None, None, z, now)
    assert day.end == floor5(now) + FIVE_MINUTES
    assert day.start == day.end - timedelta(hours=24)
    assert (day.previous_start, day.previous_end) == (day.start - timedelta(hours=24), day.start)
    out["24h"] = day

    later = local_midnight(z, d + timedelta(days=2)) + now_offset
    for period, n in (("7d", 7), ("30d", 30)):
        rng = core.resolve(period, None, None, z, later)
        assert rng.end == floor5(later) + FIVE_MINUTES
        for lo, hi in ((rng.start, rng.end), (rng.previous_start, rng.previous_end)):
            expected = wall_days_back(hi, z, n)
            if expected is not None:
                assert lo == floor5(expected), (period, lo, hi)
        assert rng.previous_end == rng.start
        out[period] = rng

    # a week whose first day is the DST day: its start can fall in the skipped hour
    week = core.resolve("7d", None, None, z, pivot + timedelta(days=7) + now_offset)
    expected = wall_days_back(week.end, z, 7)
    if expected is not None:
        assert week.start == floor5(expected)
    assert week.previous_end == week.start < week.end
    out["the week after the change"] = week

    tz = ZoneInfo(z)
    lo = floor5(pivot) - timedelta(minutes=90)
    hi = lo + timedelta(minutes=245)
    custom = core.resolve(
        None, lo.astimezone(tz).isoformat(), hi.astimezone(tz).isoformat(), z, _NOW
    )
    assert (custom.start, custom.end) == (lo, hi)
    assert (custom.previous_start, custom.previous_end) == (lo - (hi - lo), lo)
    out["around the change"] = custom
    return out


_NOW = datetime(2026, 12, 1, tzinfo=UTC)  # a custom range does not depend on now
LEADERBOARD = (
    "follows",
    "bits",
    "hype_train_level",
    "live_minutes",
    "viewers_peak",
    "viewers_avg",
    "ad_break_minutes",
    "subs",
)


async def verify_all(
    aconn: psycopg.AsyncConnection[Any], company: Company, oracle: Oracle, sc: Scenario
) -> int:
    v = Verifier(aconn, company, oracle)
    await v.start()
    assert v.zone == sc.zone.name
    rngs = ranges_for(sc.zone, sc.now_offset)
    three, dst_day = rngs["3 local days"], rngs["the DST day"]

    for creator in (None, *company.creators):
        await v.summary(three, creator)
    for name in (
        "the DST day",
        "24h",
        "7d",
        "30d",
        "around the change",
        "the week after the change",
    ):
        await v.summary(rngs[name])
    await v.summary(rngs["24h"], company.creators[0])

    await v.series(three, "1d")
    await v.series(three, "1h")
    hours = await v.series(dst_day, "1h")
    local_hours = sum(1 for b in hours if b.astimezone(ZoneInfo(sc.zone.name)).minute == 0)
    span = dst_day.end - dst_day.start
    # 23 or 25 points on a whole-hour change; Lord Howe's 24.5 h day has 24 and its
    # 23.5 h day 23 (one local hour of 90 minutes each); 24 elsewhere
    assert len(hours) == local_hours
    assert len(hours) == round(span / timedelta(hours=1) - 0.01)
    await v.series(dst_day, "1h", company.creators[1])
    await v.series(rngs["24h"], "5m")
    await v.series(rngs["24h"], "1h")
    await v.series(rngs["7d"], "1d", company.creators[0])
    await v.series(rngs["around the change"], "5m", company.creators[1])

    for metric in LEADERBOARD:
        await v.leaderboard(three, metric)
    await v.leaderboard(rngs["7d"], "chat_messages")
    await v.series(rngs["the week after the change"], "1h")
    return v.compared


def utc_day(at: datetime) -> datetime:
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


@pytest.mark.parametrize("zone", ZONES, ids=lambda z: f"{z.name}-{z.day}")
@settings(
    max_examples=EXAMPLES_PER_ZONE,
    deadline=None,
    derandomize=False,
    database=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
@given(data=st.data())
def test_every_figure_equals_the_recount(zone: Zone, data: st.DataObject) -> None:
    sc = data.draw(scenarios(zone), label="scenario")
    with db.connect(_CFG[0], autocommit=True) as conn:
        company = make_company(conn, sc.zone.name, sc.creators)
        store(conn, company, sc.deliveries, sc.batches)
        store_samples(conn, company, sc.sample_deliveries)
        with db.tenant_transaction(conn, company.id):
            stored = conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"]
            samples = conn.execute("SELECT count(*) AS n FROM viewer_samples").fetchone()["n"]
        assert stored == len(sc.facts)  # a redelivery or a replay stored nothing
        assert samples == len(sc.samples)
        now = datetime.now(UTC)
        oracle = Oracle(sc.facts, sc.samples, now)

        compared = run_async(lambda aconn: verify_all(aconn, company, oracle, sc))
        assert compared > 0

        # the rollups equal a recount, and a rebuild changes no figure
        since = utc_day(local_midnight(sc.zone.name, sc.zone.day - timedelta(days=5)))
        until = utc_day(local_midnight(sc.zone.name, sc.zone.day + timedelta(days=5)))
        first_fact = min(f.occurred_at for f in sc.facts)
        since = min(since, utc_day(first_fact))
        assert analytics.check(conn, company.id, since, until) == []
        before = rollups(conn, company.id)
        rebuilt = analytics.rebuild(conn, company.id, since, until)
        assert rebuilt.skipped_days == []
        assert rebuilt.rows == expected_rows(sc.facts)
        assert rollups(conn, company.id) == before
        assert analytics.check(conn, company.id, since, until) == []


def rollups(conn: psycopg.Connection[Any], company: uuid.UUID) -> list[dict[str, Any]]:
    with db.tenant_transaction(conn, company):
        return conn.execute(
            "SELECT * FROM analytics_buckets ORDER BY width, bucket, creator_id"
        ).fetchall()


def expected_rows(facts: Sequence[Fact]) -> int:
    """Rollup rows of the facts: one per creator and bucket, at each of the three widths."""
    keys: set[tuple[int, int, datetime]] = set()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for f in facts:
        if f.creator is None:
            continue
        for width in (300, 3600, 86400):
            step = timedelta(seconds=width)
            keys.add((width, f.creator, epoch + ((f.occurred_at - epoch) // step) * step))
    return len(keys)


# --- isolation -----------------------------------------------------------------------------


def simple_facts(
    rnd: random.Random, n: int, n_creators: int, lo: datetime, hi: datetime, tag: str
) -> list[Fact]:
    """n random facts of every kind in [lo, hi), message ids unique to `tag`."""
    out: list[Fact] = []
    span = int((hi - lo).total_seconds())
    types = sorted(SUMMARIES)
    for i in range(n):
        type_ = rnd.choice(types)
        when = lo + timedelta(seconds=rnd.randrange(span), microseconds=rnd.randrange(10**6))
        summary = _summary(rnd, type_)
        out.append(Fact(f"{tag}-{i}", type_, rnd.randrange(n_creators), when, summary))
    # a few live sessions at distinct instants
    for c in range(n_creators):
        starts = sorted(rnd.sample(range(span), 6))
        for k, s in enumerate(starts):
            type_ = "stream.online" if k % 2 == 0 else "stream.offline"
            out.append(
                Fact(
                    f"{tag}-s{c}-{k}",
                    type_,
                    c,
                    lo + timedelta(seconds=s),
                    {},
                    dedup_key=f"{type_}:{tag}-{c}-{k}",
                )
            )
    return out


def _summary(rnd: random.Random, type_: str) -> dict[str, Any]:
    amount = rnd.choice([None, 1, 5, 100, 2500])
    return {
        "channel.subscribe": {
            "tier": rnd.choice(["1000", "2000", "3000", None]),
            "outcome": rnd.choice([None, "gift"]),
        },
        "channel.subscription.gift": {"amount": amount, "tier": "1000"},
        "channel.cheer": {"amount": amount},
        "channel.raid": {"amount": amount, "outcome": rnd.choice(["incoming", "outgoing"])},
        "channel.hype_train.begin": {"level": rnd.randint(1, 5)},
        "channel.hype_train.progress": {"level": rnd.randint(1, 9)},
        "channel.hype_train.end": {"level": rnd.randint(1, 9)},
        "channel.ban": {"outcome": rnd.choice(["permanent", "timeout"])},
        "channel.ad_break.begin": {"duration_seconds": rnd.choice([30, 60, 90, None])},
    }.get(type_, {})


def sizes(n: int, rnd: random.Random) -> list[int]:
    out: list[int] = []
    while n:
        out.append(min(n, rnd.choice([1, 2, 3, 5])))
        n -= out[-1]
    return out


def deliveries_of(facts: Sequence[Fact], rnd: random.Random) -> list[Fact]:
    out: list[Fact] = []
    for f in facts:
        out += [f] * rnd.choice([1, 1, 2, 3])
        if f.dedup_key and rnd.random() < 0.5:
            out.append(replace(f, message_id=f"{f.message_id}-replay"))
    rnd.shuffle(out)
    return out


def test_a_broadcaster_two_companies_watch_is_counted_for_each_alone(
    conn: psycopg.Connection[Any],
) -> None:
    rnd = random.Random(18)
    shared = str(uuid.uuid4().int % 10**12)
    a = make_company(conn, "Europe/Berlin", 2, [shared, str(uuid.uuid4().int % 10**12)])
    b = make_company(conn, "Europe/Berlin", 1, [shared])
    lo = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    hi = lo + timedelta(days=2)
    facts_a = simple_facts(rnd, 60, 2, lo, hi, "a")
    facts_b = simple_facts(rnd, 90, 1, lo, hi, "b")
    # the same Twitch message reaches both companies (one delivery per subscription each)
    both = Fact("both-1", "channel.cheer", 0, lo + timedelta(hours=3), {"amount": 777})
    facts_a.append(both)
    facts_b.append(both)
    for company, facts in ((a, facts_a), (b, facts_b)):
        deliveries = deliveries_of(facts, rnd)
        store(conn, company, deliveries, sizes(len(deliveries), rnd))
    store_samples(conn, a, [Sample(0, lo + timedelta(hours=1), True, 10)])
    store_samples(conn, b, [Sample(0, lo + timedelta(hours=1), True, 9000)])

    now = datetime.now(UTC)
    rng = core.resolve(None, "2026-03-28", "2026-03-31", "Europe/Berlin", now)

    async def check(aconn: psycopg.AsyncConnection[Any]) -> None:
        for company, facts, samples in (
            (a, facts_a, [Sample(0, lo + timedelta(hours=1), True, 10)]),
            (b, facts_b, [Sample(0, lo + timedelta(hours=1), True, 9000)]),
        ):
            v = Verifier(aconn, company, Oracle(facts, samples, now))
            await v.start()
            for creator in (None, *company.creators):
                await v.summary(rng, creator)
            await v.series(rng, "1h")
            await v.series(rng, "1d", company.creators[0])
            for metric in ("bits", "follows", "live_minutes", "viewers_peak"):
                await v.leaderboard(rng, metric)
        # B's creator of the shared broadcaster is not A's: 404 for each read naming it
        with pytest.raises(NotFoundError):
            await analytics.summary(aconn, a.caller, rng, b.creators[0], zone="Europe/Berlin")
        with pytest.raises(NotFoundError):
            await analytics.series(
                aconn,
                a.caller,
                rng,
                ["follows"],
                "1h",
                creator_id=b.creators[0],
                zone="Europe/Berlin",
            )
        with pytest.raises(NotFoundError):
            await analytics.summary(aconn, b.caller, rng, a.creators[1], zone="Europe/Berlin")
        board = await analytics.leaderboard(aconn, a.caller, rng, "bits", 200, zone="Europe/Berlin")
        assert {r["creator_id"] for r in board["rows"]} == set(map(str, a.creators))
        top = await analytics.leaderboard(aconn, a.caller, rng, "bits", 1, zone="Europe/Berlin")
        assert top["rows"] == board["rows"][:1]

    run_async(check)
    # the shared message was stored once per company, and each company's rollups say so
    for company in (a, b):
        with db.tenant_transaction(conn, company.id):
            row = conn.execute(
                "SELECT bits FROM analytics_buckets WHERE width = 300 AND bucket = %s "
                "AND creator_id = %s",
                (lo + timedelta(hours=3), company.creators[0]),
            ).fetchone()
        bits = sum(
            max(f.summary.get("amount") or 0, 0)
            for f in (facts_a if company is a else facts_b)
            if f.type == "channel.cheer"
            and f.creator == 0
            and floor5(f.occurred_at) == lo + timedelta(hours=3)
        )
        assert bits >= 777
        assert row == {"bits": bits}


def test_a_stream_still_live_counts_until_now_not_to_the_end_of_the_bucket(
    conn: psycopg.Connection[Any],
) -> None:
    c = make_company(conn, "America/New_York", 2)
    now = datetime(2026, 5, 1, 12, 2, 30, tzinfo=UTC)
    facts = [
        Fact("on-0", "stream.online", 0, now - timedelta(minutes=32, seconds=30), {}),
        Fact("on-1", "stream.online", 1, now - timedelta(hours=2, minutes=2, seconds=30), {}),
        Fact("off-1", "stream.offline", 1, now - timedelta(hours=1, minutes=2, seconds=30), {}),
        Fact("on-1b", "stream.online", 1, now - timedelta(minutes=3, seconds=30), {}),
    ]
    store(conn, c, facts, [1, 3])
    oracle = Oracle(facts, [], now)
    rng = core.resolve("24h", None, None, "America/New_York", now)
    assert rng.end == datetime(2026, 5, 1, 12, 5, tzinfo=UTC)
    assert oracle.figures(rng.start, rng.end)["live_minutes"] == 32.5 + 60 + 3.5

    async def check(aconn: psycopg.AsyncConnection[Any]) -> None:
        v = Verifier(aconn, c, oracle, now)
        await v.start()
        for creator in (None, *c.creators):
            await v.summary(rng, creator)
        await v.series(rng, "5m")
        await v.series(rng, "1h", c.creators[1])
        await v.leaderboard(rng, "live_minutes")

    run_async(check)


# --- check and rebuild ---------------------------------------------------------------------


def superuser_update(superuser: psycopg.Connection[Any], sql: str, *params: Any) -> None:
    cur = superuser.execute(sql, params)
    assert cur.rowcount == 1, sql


def test_check_reports_exactly_the_corrupted_cells_and_rebuild_restores_them(
    conn: psycopg.Connection[Any], superuser_conn: psycopg.Connection[Any]
) -> None:
    rnd = random.Random(7)
    c = make_company(conn, "Asia/Kolkata", 2)
    d1 = datetime(2026, 6, 1, tzinfo=UTC)
    facts = simple_facts(rnd, 200, 2, d1, d1 + timedelta(days=3), "k")
    facts.append(Fact("k-follow", "channel.follow", 0, d1 + timedelta(hours=5, minutes=2), {}))
    deliveries = deliveries_of(facts, rnd)
    store(conn, c, deliveries, sizes(len(deliveries), rnd))
    until = d1 + timedelta(days=3)
    assert analytics.check(conn, c.id, d1, until) == []
    clean = rollups(conn, c.id)

    five = d1 + timedelta(hours=5)  # the bucket of k-follow
    follows = next(
        r["follows"]
        for r in clean
        if r["width"] == 300 and r["bucket"] == five and r["creator_id"] == c.creators[0]
    )
    day2 = d1 + timedelta(days=1)
    level = next(
        r["hype_train_level"]
        for r in clean
        if r["width"] == 86400 and r["bucket"] == day2 and r["creator_id"] == c.creators[1]
    )
    phantom = d1 + timedelta(days=2, hours=23, minutes=55)
    assert not any(
        r["bucket"] == phantom and r["width"] == 300 and r["creator_id"] == c.creators[1]
        for r in clean
    )
    superuser_update(
        superuser_conn,
        "UPDATE analytics_buckets SET follows = follows + 5 WHERE company_id = %s "
        "AND width = 300 AND bucket = %s AND creator_id = %s",
        c.id,
        five,
        c.creators[0],
    )
    superuser_update(
        superuser_conn,
        "UPDATE analytics_buckets SET hype_train_level = 99 WHERE company_id = %s "
        "AND width = 86400 AND bucket = %s AND creator_id = %s",
        c.id,
        day2,
        c.creators[1],
    )
    superuser_update(
        superuser_conn,
        "INSERT INTO analytics_buckets (company_id, creator_id, width, bucket, chat_messages) "
        "VALUES (%s, %s, 300, %s, 3)",
        c.id,
        c.creators[1],
        phantom,
    )
    found = analytics.check(conn, c.id, d1, until)
    expected = [
        (300, five, str(c.creators[0]), "follows", follows + 5, follows),
        (86400, day2, str(c.creators[1]), "hype_train_level", 99, level),
        (300, phantom, str(c.creators[1]), "chat_messages", 3, 0),
    ]
    got = [(m.width, m.bucket, str(m.creator_id), m.column, m.stored, m.recounted) for m in found]
    assert sorted(got, key=str) == sorted(expected, key=str)
    # a check of one day sees only that day's
    only = analytics.check(conn, c.id, day2, day2 + timedelta(days=1))
    assert [(m.width, m.column) for m in only] == [(86400, "hype_train_level")]

    rebuilt = analytics.rebuild(conn, c.id, d1, until)
    assert (rebuilt.days, rebuilt.skipped_days) == (3, [])
    assert rebuilt.rows == expected_rows(facts)
    assert rollups(conn, c.id) == clean
    assert analytics.check(conn, c.id, d1, until) == []

    # the archive pruned day 2: its rollups are all that is left, a rebuild leaves them be
    with db.tenant_transaction(conn, c.id):
        conn.execute(
            "INSERT INTO archive_manifests (company_id, day, object_keys, row_count, checksums, "
            "schema_version, exported_at, verified_at, pruned_at) "
            "VALUES (%s, %s, '[]', 0, '{}', 1, now(), now(), now())",
            (c.id, day2.date()),
        )
    superuser_update(
        superuser_conn,
        "UPDATE analytics_buckets SET follows = follows + 5 WHERE company_id = %s "
        "AND width = 300 AND bucket = %s AND creator_id = %s",
        c.id,
        five,
        c.creators[0],
    )
    superuser_update(
        superuser_conn,
        "UPDATE analytics_buckets SET hype_train_level = 99 WHERE company_id = %s "
        "AND width = 86400 AND bucket = %s AND creator_id = %s",
        c.id,
        day2,
        c.creators[1],
    )
    notes: list[str] = []
    rebuilt = analytics.rebuild(conn, c.id, d1, until, progress=notes.append)
    assert rebuilt.skipped_days == [day2.date()]
    assert rebuilt.days == 2
    after = rollups(conn, c.id)
    changed = [(b, a_) for b, a_ in zip(clean, after, strict=True) if b != a_]
    assert changed == [
        (
            next(
                r
                for r in clean
                if r["width"] == 86400 and r["bucket"] == day2 and r["creator_id"] == c.creators[1]
            ),
            next(
                r
                for r in after
                if r["width"] == 86400 and r["bucket"] == day2 and r["creator_id"] == c.creators[1]
            ),
        )
    ]
    assert changed[0][1]["hype_train_level"] == 99  # as it was: not recounted
    assert any(str(day2.date()) in n and "skipped" in n for n in notes)


# --- races ---------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(5))
def test_writers_racing_a_rebuild_leave_exact_rollups(
    db_settings: app_settings.DatabaseSettings, round_: int
) -> None:
    rnd = random.Random(1000 + round_)
    writers = 3
    d1 = datetime(2026, 10, 24, tzinfo=UTC)  # Berlin's 25-hour day is in the middle
    with db.connect(db_settings, autocommit=True) as conn:
        c = make_company(conn, "Europe/Berlin", 2)
    facts = simple_facts(rnd, 240, 2, d1, d1 + timedelta(days=3), f"race{round_}")
    deliveries = deliveries_of(facts, rnd)
    # every writer gets a share, and redeliveries of others' messages on top
    shares = [deliveries[w::writers] + rnd.sample(deliveries, 30) for w in range(writers)]
    for share in shares:
        rnd.shuffle(share)
    batches = [sizes(len(share), rnd) for share in shares]
    errors: list[BaseException] = []
    done = threading.Event()
    rebuilds = [0]
    barrier = threading.Barrier(writers + 1)

    def write(share: list[Fact], batch_sizes: list[int]) -> None:
        try:
            with db.connect(db_settings, autocommit=True) as wc:
                barrier.wait()
                store(wc, c, share, batch_sizes)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def rebuild() -> None:
        try:
            with db.connect(db_settings, autocommit=True) as rc:
                barrier.wait()
                while not done.is_set() or rebuilds[0] == 0:
                    analytics.rebuild(rc, c.id, d1, d1 + timedelta(days=3))
                    rebuilds[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=sb) for sb in zip(shares, batches, strict=True)]
    rebuilder = threading.Thread(target=rebuild)
    for t in [rebuilder, *threads]:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    rebuilder.join(120)
    assert errors == []
    assert rebuilds[0] >= 1

    with db.connect(db_settings, autocommit=True) as conn:
        assert analytics.check(conn, c.id, d1, d1 + timedelta(days=3)) == []
        assert len(rollups(conn, c.id)) == expected_rows(facts)
    now = datetime.now(UTC)
    rng = core.resolve(None, "2026-10-24", "2026-10-27", "Europe/Berlin", now)

    async def check(aconn: psycopg.AsyncConnection[Any]) -> None:
        v = Verifier(aconn, c, Oracle(facts, [], now))
        await v.start()
        await v.summary(rng)
        await v.series(rng, "1h")
        await v.leaderboard(rng, "follows")

    run_async(check)


def test_two_transactions_storing_one_message_id_count_it_once(
    db_settings: app_settings.DatabaseSettings, superuser_conn: psycopg.Connection[Any]
) -> None:
    when = datetime(2026, 7, 1, 12, 1, tzinfo=UTC)
    with db.connect(db_settings, autocommit=True) as conn:
        c = make_company(conn, "UTC", 1)
    cheer = Fact("dup-cheer", "channel.cheer", 0, when, {"amount": 100})
    first_batch = [Fact("only-first", "channel.follow", 0, when, {}), cheer]
    second_batch = [cheer, Fact("only-second", "channel.follow", 0, when, {})]
    results: dict[str, list[eventstore.Appended]] = {}
    errors: list[BaseException] = []
    second_pid: list[int] = []

    def append(wc: psycopg.Connection[Any], batch: list[Fact]) -> list[eventstore.Appended]:
        return eventstore.append(
            wc, c.id, [new_event(f, c.creators, c.broadcasters[0]) for f in batch]
        )

    def second() -> None:
        try:
            with db.connect(db_settings, autocommit=True) as wc:
                second_pid.append(wc.info.backend_pid)
                with db.tenant_transaction(wc, c.id):
                    results["second"] = append(wc, second_batch)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with db.connect(db_settings, autocommit=True) as fc:
        with db.tenant_transaction(fc, c.id):
            results["first"] = append(fc, first_batch)
            t = threading.Thread(target=second)
            t.start()
            # the second writer is blocked on the counter row the first holds
            waiting = False
            for _ in range(400):
                if second_pid:
                    row = superuser_conn.execute(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                        (second_pid[0],),
                    ).fetchone()
                    if row and row["wait_event_type"] == "Lock":
                        waiting = True
                        break
                threading.Event().wait(0.025)
            assert waiting, "the second transaction never waited for the first"
        t.join(30)
    assert errors == []
    assert [r.created for r in results["first"]] == [True, True]
    assert [r.created for r in results["second"]] == [False, True]
    assert results["second"][0].seq == results["first"][1].seq
    with db.connect(db_settings, autocommit=True) as conn:
        with db.tenant_transaction(conn, c.id):
            events = conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"]
            rows = conn.execute(
                "SELECT width, events, follows, bits FROM analytics_buckets ORDER BY width"
            ).fetchall()
        assert events == 3
        assert rows == [
            {"width": w, "events": 3, "follows": 2, "bits": 100} for w in (300, 3600, 86400)
        ]
        assert (
            analytics.check(
                conn, c.id, datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC)
            )
            == []
        )
