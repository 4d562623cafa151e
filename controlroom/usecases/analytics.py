"""Analytics for short lookbacks, read from the exact rollups under RLS.

Counted metrics come from `analytics_buckets` (kept by a trigger in the transaction that
stores each event, migrations/0010), the audience from `analytics_viewers`, and live time
from the creators' stream.online/stream.offline events (a handful per creator per day; the
archive's prune keeps them in the hot store). Ranges come resolved from
`controlroom.core.analytics` and lie on bucket boundaries, so every figure is an exact sum.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from controlroom.adapters.db import tenant_transaction, tenant_transaction_async
from controlroom.core import analytics as a
from controlroom.core.roles import Caller
from controlroom.errors import InvalidError, NotFoundError

STREAM_TYPES = a.STREAM_TYPES
# counted metrics (a column expression of analytics_buckets) and the audience's two
COUNTED = {name: m for name, m in a.METRICS.items() if m.column is not None}
VIEWERS = ("viewers_peak", "viewers_avg")


def _agg(name: str, where: str) -> str:
    m = COUNTED[name]
    fn = "max" if m.kind == "max" else "sum"
    return f"coalesce({fn}({m.column}) FILTER (WHERE {where}), 0)"


def _pieces_sql(pieces: list[tuple[int, datetime, datetime]]) -> tuple[str, dict[str, Any]]:
    """`(width = w AND bucket >= lo AND bucket < hi) OR ...`: a few index ranges."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    for i, (width, lo, hi) in enumerate(pieces):
        parts.append(f"(width = %(w{i})s AND bucket >= %(lo{i})s AND bucket < %(hi{i})s)")
        params |= {f"w{i}": width, f"lo{i}": lo, f"hi{i}": hi}
    return "(" + " OR ".join(parts or ["false"]) + ")", params


def _both_periods(rng: a.Range) -> tuple[str, dict[str, Any]]:
    """The rollup rows of the range and of the previous one (`bucket >= start` tells apart)."""
    return _pieces_sql(a.pieces(rng.previous_start, rng.start) + a.pieces(rng.start, rng.end))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    f = float(value)
    return int(f) if f.is_integer() else f


async def company_zone(conn: psycopg.AsyncConnection[Any], caller: Caller) -> str:
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.cursor(row_factory=dict_row).execute("SELECT time_zone FROM companies")
        row = await cur.fetchone()
    return str(row["time_zone"]) if row else "UTC"


async def _creator_exists(conn: psycopg.AsyncConnection[Any], creator_id: uuid.UUID) -> None:
    cur = await conn.execute("SELECT 1 FROM creators WHERE id = %s", (creator_id,))
    if await cur.fetchone() is None:
        raise NotFoundError("no such creator")


# A company's stream events inside [lo, hi), and each creator's last online and last offline
# before lo (a session can have begun before the range): (creator_id, type, occurred_at).
_STREAM_EVENTS = (
    "SELECT creator_id, type, occurred_at FROM events "
    "WHERE company_id = %(c)s AND creator_id IS NOT NULL AND type = ANY(%(types)s) "
    "AND occurred_at >= %(lo)s AND occurred_at < %(hi)s "
    "AND (%(creator)s::uuid IS NULL OR creator_id = %(creator)s) "
    "UNION ALL "
    "SELECT c.id, t.type, l.occurred_at FROM creators c "
    "CROSS JOIN unnest(%(types)s::text[]) AS t(type) "
    "CROSS JOIN LATERAL (SELECT e.occurred_at FROM events e WHERE e.company_id = %(c)s "
    " AND e.creator_id = c.id AND e.type = t.type AND e.occurred_at < %(lo)s "
    " ORDER BY e.occurred_at DESC LIMIT 1) AS l "
    "WHERE (%(creator)s::uuid IS NULL OR c.id = %(creator)s)"
)


async def _sessions(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    lo: datetime,
    hi: datetime,
    *,
    creator_id: uuid.UUID | None,
    now: datetime,
) -> list[a.Session]:
    """Live sessions overlapping [lo, hi), for a series (cut into its buckets in Python)."""
    cur = await conn.cursor(row_factory=tuple_row).execute(
        f"SELECT creator_id::text, type, occurred_at FROM ({_STREAM_EVENTS}) AS x",  # noqa: S608
        {"c": company, "types": STREAM_TYPES, "lo": lo, "hi": hi, "creator": creator_id},
    )
    rows = await cur.fetchall()
    # by creator, then time; at one instant an offline comes before an online
    ordered = sorted(
        ((r[0], r[1], r[2]) for r in rows), key=lambda r: (r[0], r[2], r[1] == "stream.online")
    )
    return a.sessions(ordered, now)


async def _live(
    conn: psycopg.AsyncConnection[Any],
    company: uuid.UUID,
    rng: a.Range,
    *,
    creator_id: uuid.UUID | None,
    now: datetime,
    group_by_creator: bool = False,
) -> list[dict[str, Any]]:
    """Minutes live in the range and in the previous one, summed in SQL (a 30-day summary of
    200 creators has about 6,000 sessions): each online lasts until the creator's next stream
    event (at one instant an offline comes first), or until now while none has come."""
    group = "creator_id" if group_by_creator else "NULL::uuid"
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"WITH x AS ({_STREAM_EVENTS}), s AS ("  # noqa: S608 - fixed text
        " SELECT creator_id, type, occurred_at AS since, coalesce(lead(occurred_at) OVER ("
        "  PARTITION BY creator_id ORDER BY occurred_at, type = 'stream.online'),"
        "  greatest(%(now)s, occurred_at)) AS until FROM x) "
        f"SELECT {group} AS creator_id, "
        " coalesce(sum(greatest(0, extract(epoch FROM"
        "  least(until, %(end)s) - greatest(since, %(start)s)))), 0) AS value, "
        " coalesce(sum(greatest(0, extract(epoch FROM"
        "  least(until, %(start)s) - greatest(since, %(lo)s)))), 0) AS previous "
        f"FROM s WHERE type = 'stream.online' GROUP BY {group}",
        {
            "c": company,
            "types": STREAM_TYPES,
            "lo": rng.previous_start,
            "hi": rng.end,
            "start": rng.start,
            "end": rng.end,
            "creator": creator_id,
            "now": now,
        },
    )
    return [
        {**r, "value": float(r["value"]) / 60.0, "previous": float(r["previous"]) / 60.0}
        for r in await cur.fetchall()
    ]


async def _counted(
    conn: psycopg.AsyncConnection[Any],
    rng: a.Range,
    names: Sequence[str],
    creator_id: uuid.UUID | None,
    group_by_creator: bool = False,
) -> list[dict[str, Any]]:
    where, params = _both_periods(rng)
    cur_s = [f"{_agg(n, 'bucket >= %(start)s')} AS {n}" for n in names]
    prev_s = [f"{_agg(n, 'bucket < %(start)s')} AS previous_{n}" for n in names]
    group = "creator_id" if group_by_creator else "NULL::uuid"
    sql = (
        f"SELECT {group} AS creator_id, {', '.join(cur_s + prev_s)} "  # noqa: S608 - names from METRICS
        f"FROM analytics_buckets WHERE {where} "
        "AND (%(creator)s::uuid IS NULL OR creator_id = %(creator)s) "
        f"GROUP BY {group}"
    )
    cur = await conn.cursor(row_factory=dict_row).execute(
        sql, {**params, "start": rng.start, "creator": creator_id}
    )
    return await cur.fetchall()


async def _audience(
    conn: psycopg.AsyncConnection[Any],
    rng: a.Range,
    creator_id: uuid.UUID | None,
    group_by_creator: bool = False,
) -> list[dict[str, Any]]:
    where, params = _both_periods(rng)
    group = "creator_id" if group_by_creator else "NULL::uuid"
    sql = (
        f"SELECT {group} AS creator_id, "  # noqa: S608 - fixed text
        "max(viewer_peak) FILTER (WHERE bucket >= %(start)s) AS viewers_peak, "
        "max(viewer_peak) FILTER (WHERE bucket < %(start)s) AS previous_viewers_peak, "
        "sum(viewer_sum) FILTER (WHERE bucket >= %(start)s)::float8 "
        " / nullif(sum(samples) FILTER (WHERE bucket >= %(start)s), 0) AS viewers_avg, "
        "sum(viewer_sum) FILTER (WHERE bucket < %(start)s)::float8 "
        " / nullif(sum(samples) FILTER (WHERE bucket < %(start)s), 0) AS previous_viewers_avg "
        f"FROM analytics_viewers WHERE {where} "
        "AND (%(creator)s::uuid IS NULL OR creator_id = %(creator)s) "
        f"GROUP BY {group}"
    )
    cur = await conn.cursor(row_factory=dict_row).execute(
        sql, {**params, "start": rng.start, "creator": creator_id}
    )
    return await cur.fetchall()


def _range_out(rng: a.Range, zone: str) -> dict[str, Any]:
    return {
        "start": _iso(rng.start),
        "end": _iso(rng.end),
        "previous_start": _iso(rng.previous_start),
        "previous_end": _iso(rng.previous_end),
        "time_zone": zone,
    }


async def summary(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    rng: a.Range,
    creator_id: uuid.UUID | None = None,
    *,
    zone: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every metric over the range and over the previous one, company-wide or one creator."""
    now = now or datetime.now(UTC)
    zone = zone or await company_zone(conn, caller)
    async with tenant_transaction_async(conn, caller.company):
        if creator_id is not None:
            await _creator_exists(conn, creator_id)
        counted = await _counted(conn, rng, list(COUNTED), creator_id)
        audience = await _audience(conn, rng, creator_id)
        live = await _live(conn, caller.company, rng, creator_id=creator_id, now=now)
    row = counted[0] if counted else {}
    seen = audience[0] if audience else {}
    metrics: dict[str, dict[str, Any]] = {}
    for name in a.ORDER:
        value: Any
        previous: Any
        if name == "live_minutes":
            value = live[0]["value"] if live else 0
            previous = live[0]["previous"] if live else 0
        elif name in VIEWERS:
            value, previous = seen.get(name), seen.get(f"previous_{name}")
        else:
            value, previous = row.get(name, 0), row.get(f"previous_{name}", 0)
        metrics[name] = {"value": _number(value), "previous": _number(previous)}
    return {
        **_range_out(rng, zone),
        "creator_id": str(creator_id) if creator_id else None,
        "metrics": metrics,
    }


async def series(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    rng: a.Range,
    metrics: Sequence[str],
    interval: str,
    *,
    creator_id: uuid.UUID | None = None,
    zone: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Each metric per bucket of the interval (local hours and days of the company's zone);
    every bucket is present: 0 where nothing was counted, null where no audience sample."""
    now = now or datetime.now(UTC)
    zone = zone or await company_zone(conn, caller)
    names = list(dict.fromkeys(metrics)) or ["follows"]
    for name in names:
        a.metric(name)
    starts = a.buckets(rng.start, rng.end, interval, zone)
    widest = a.widest_for(starts)
    counted = [n for n in names if n in COUNTED]
    out: dict[str, list[Any]] = {}
    async with tenant_transaction_async(conn, caller.company):
        if creator_id is not None:
            await _creator_exists(conn, creator_id)
        where, params = _pieces_sql(a.pieces(rng.start, rng.end, widest))
        base = {**params, "starts": starts, "creator": creator_id}
        if counted:
            aggs = ", ".join(
                f"{'max' if COUNTED[n].kind == 'max' else 'sum'}({COUNTED[n].column}) AS {n}"
                for n in counted
            )
            sql = (
                f"SELECT width_bucket(bucket, %(starts)s::timestamptz[]) AS i, {aggs} "  # noqa: S608
                f"FROM analytics_buckets WHERE {where} "
                "AND (%(creator)s::uuid IS NULL OR creator_id = %(creator)s) GROUP BY 1"
            )
            cur = await conn.cursor(row_factory=dict_row).execute(sql, base)
            rows = {r["i"]: r for r in await cur.fetchall()}
            for n in counted:
                out[n] = [
                    _number(rows[i][n]) if i in rows else 0 for i in range(1, len(starts) + 1)
                ]
        if any(n in VIEWERS for n in names):
            sql = (
                "SELECT width_bucket(bucket, %(starts)s::timestamptz[]) AS i, "  # noqa: S608
                "max(viewer_peak) AS viewers_peak, "
                "sum(viewer_sum)::float8 / nullif(sum(samples), 0) AS viewers_avg "
                f"FROM analytics_viewers WHERE {where} "
                "AND (%(creator)s::uuid IS NULL OR creator_id = %(creator)s) GROUP BY 1"
            )
            cur = await conn.cursor(row_factory=dict_row).execute(sql, base)
            seen = {r["i"]: r for r in await cur.fetchall()}
            for n in names:
                if n in VIEWERS:
                    out[n] = [
                        _number(seen[i][n]) if i in seen else None
                        for i in range(1, len(starts) + 1)
                    ]
        if "live_minutes" in names:
            sessions = await _sessions(
                conn, caller.company, rng.start, rng.end, creator_id=creator_id, now=now
            )
            out["live_minutes"] = _distribute(sessions, starts, rng.end)
    return {
        "start": _iso(rng.start),
        "end": _iso(rng.end),
        "time_zone": zone,
        "interval": interval,
        "creator_id": str(creator_id) if creator_id else None,
        "buckets": [_iso(s) for s in starts],
        "series": {n: out[n] for n in names},
    }


def _distribute(sessions: list[a.Session], starts: list[datetime], end: datetime) -> list[Any]:
    edges = [*starts, end]
    minutes = [0.0] * len(starts)
    for s in sessions:
        first = max(0, bisect.bisect_right(edges, s.start) - 1)
        for i in range(first, len(starts)):
            if edges[i] >= s.end:
                break
            minutes[i] += a.overlap_seconds(s, edges[i], edges[i + 1]) / 60.0
    return [_number(m) for m in minutes]


async def leaderboard(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    rng: a.Range,
    metric: str,
    limit: int = 10,
    *,
    zone: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every creator of the company ranked by one metric (highest first; ties by name)."""
    a.metric(metric)
    if not 1 <= limit <= 200:
        raise InvalidError("limit must be between 1 and 200")
    now = now or datetime.now(UTC)
    zone = zone or await company_zone(conn, caller)
    values: dict[str, tuple[Any, Any]] = {}
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT id::text AS id, display_name, twitch_login FROM creators"
        )
        creators = await cur.fetchall()
        if metric in COUNTED:
            for r in await _counted(conn, rng, [metric], None, group_by_creator=True):
                values[str(r["creator_id"])] = (r[metric], r[f"previous_{metric}"])
        elif metric in VIEWERS:
            for r in await _audience(conn, rng, None, group_by_creator=True):
                values[str(r["creator_id"])] = (r[metric], r[f"previous_{metric}"])
        else:
            for r in await _live(
                conn, caller.company, rng, creator_id=None, now=now, group_by_creator=True
            ):
                values[str(r["creator_id"])] = (r["value"], r["previous"])
    empty = (None, None) if metric in VIEWERS else (0, 0)
    rows = []
    for c in creators:
        value, previous = values.get(c["id"], empty)
        rows.append(
            {
                "creator_id": c["id"],
                "display_name": c["display_name"],
                "twitch_login": c["twitch_login"],
                "value": _number(value),
                "previous": _number(previous),
            }
        )
    rows.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0), r["display_name"].lower()))
    ranked = [{"rank": i + 1, **r} for i, r in enumerate(rows[:limit])]
    return {"metric": metric, **_range_out(rng, zone), "rows": ranked}


# --- rebuild and check (the CLI's; sync, like the functions) ------------------------------


@dataclass(frozen=True)
class Rebuilt:
    days: int
    rows: int
    skipped_days: list[date]


@dataclass(frozen=True)
class Mismatch:
    width: int
    bucket: datetime
    creator_id: str
    column: str
    stored: Any
    recounted: Any


def _days(since: datetime, until: datetime | None) -> list[datetime]:
    since = since.astimezone(UTC)
    first = datetime(since.year, since.month, since.day, tzinfo=UTC)
    today = datetime.now(UTC).date()
    last = until or datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    out, day = [], first
    while day < last:
        out.append(day)
        day += timedelta(days=1)
    return out


def _pruned(conn: psycopg.Connection[Any]) -> set[date]:
    return {
        r["day"]
        for r in conn.execute("SELECT day FROM archive_manifests WHERE pruned_at IS NOT NULL")
    }


def rebuild(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    since: datetime,
    until: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> Rebuilt:
    """Replace the company's rollups from `since` (whole UTC days) with a recount of its
    events, one day per transaction. Each holds the company's counter row, which every
    writer of an event takes first, so no event lands in a day while it is recounted and
    ingestion waits for one day at most. Days the archive pruned from the hot store are
    skipped: their rollups are all that is left of them. `conn` is autocommit."""
    days = _days(since, until)
    with tenant_transaction(conn, company):
        pruned = _pruned(conn)
    rows, done, skipped = 0, 0, []
    for day in days:
        if day.date() in pruned:
            skipped.append(day.date())
            if progress:
                progress(f"{day.date()}: skipped, pruned from the hot store (archived)")
            continue
        with tenant_transaction(conn, company):
            conn.execute(
                "SELECT 1 FROM event_sequences WHERE company_id = %s FOR UPDATE", (company,)
            )
            row = conn.execute(
                "SELECT analytics_rebuild(%s, %s) AS n", (day, day + timedelta(days=1))
            ).fetchone()
        written = int(row["n"]) if row else 0
        rows += written
        done += 1
        if progress:
            progress(f"{day.date()}: {written} rollup rows ({done}/{len(days)} days)")
    return Rebuilt(done, rows, skipped)


def check(
    conn: psycopg.Connection[Any],
    company: uuid.UUID,
    since: datetime,
    until: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Mismatch]:
    """Compare the company's rollups with a recount of its events, day by day; an empty
    list means every stored figure equals the recount. Pruned days are not compared."""
    out: list[Mismatch] = []
    days = _days(since, until)
    with tenant_transaction(conn, company):
        pruned = _pruned(conn)
    cols = ", ".join(a.ROLLUP_COLUMNS)
    for day in days:
        if day.date() in pruned:
            continue
        lo, hi = day, day + timedelta(days=1)
        with tenant_transaction(conn, company):
            stored = {
                (r["width"], r["bucket"], str(r["creator_id"])): r
                for r in conn.execute(
                    f"SELECT width, bucket, creator_id, {cols} FROM analytics_buckets "  # noqa: S608
                    "WHERE bucket >= %s AND bucket < %s",
                    (lo, hi),
                )
            }
            recount = {
                (r["width"], r["bucket"], str(r["creator_id"])): r
                for r in conn.execute(
                    f"SELECT width, bucket, creator_id, {cols} "  # noqa: S608
                    "FROM analytics_recount(%s, %s)",
                    (lo, hi),
                )
            }
        for key in sorted(set(stored) | set(recount), key=lambda k: (k[1], k[0], k[2])):
            s, r = stored.get(key), recount.get(key)
            for col in a.ROLLUP_COLUMNS:
                sv = s[col] if s else 0
                rv = r[col] if r else 0
                if sv != rv:
                    out.append(Mismatch(key[0], key[1], key[2], col, sv, rv))
        if progress:
            progress(f"{day.date()}: {len(recount)} rows recounted, {len(out)} differences so far")
    return out
