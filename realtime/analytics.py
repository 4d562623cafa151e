"""The analytics API under /api/analytics: a summary beside the previous period, series per
metric in the company's local hours and days, a leaderboard across creators, and each as CSV.

Every role reads. Figures come from the exact rollups under RLS (controlroom/usecases/
analytics.py); a range is a period (24h, 7d, 30d, ending with the current 5-minute bucket)
or from/to (local dates, or date-times on 5-minute boundaries).
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from controlroom.core import analytics as core
from controlroom.core.roles import Caller
from controlroom.usecases import analytics
from realtime.routes import Conn, Who
from realtime.schemas import (
    AnalyticsLeaderboard,
    AnalyticsSeries,
    AnalyticsSummary,
    ErrorOut,
    MetricName,
    MetricOut,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 422, 429, 503)
}
router = APIRouter(prefix="/api/analytics", tags=["analytics"], responses=_ERRORS)

_BOUND = r"^[0-9T:+\-.Z]{10,40}$"
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, one header row"}
}

Period = Annotated[Literal["24h", "7d", "30d"] | None, Query(description="ends now")]
From = Annotated[
    str | None,
    Query(alias="from", pattern=_BOUND, description="YYYY-MM-DD (local) or ISO date-time"),
]
To = Annotated[str | None, Query(alias="to", pattern=_BOUND)]
Interval = Annotated[Literal["5m", "1h", "1d"] | None, Query(description="default by range")]
Metrics = Annotated[list[MetricName], Query(alias="metric", max_length=8)]
Metric = Annotated[MetricName, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]


async def _range(
    conn: Conn, who: Caller, period: str | None, start: str | None, end: str | None
) -> tuple[core.Range, str]:
    zone = await analytics.company_zone(conn, who)
    return core.resolve(period, start, end, zone, datetime.now(UTC)), zone


def _interval(rng: core.Range, interval: str | None) -> str:
    if interval is not None:
        return interval
    span = rng.end - rng.start
    if span <= core.PERIODS["24h"]:
        return "5m" if span <= core.PERIODS["24h"] / 4 else "1h"
    return "1h" if span <= core.PERIODS["7d"] else "1d"


@router.get("/metrics", response_model=list[MetricOut])
async def metrics(who: Who) -> list[dict[str, Any]]:
    """Every metric's name, label, how it combines (sum, max or average) and unit."""
    del who
    return [
        {"name": n, "label": m.label, "kind": m.kind, "unit": m.unit}
        for n, m in core.METRICS.items()
    ]


@router.get("/summary", response_model=AnalyticsSummary)
async def summary(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    period: Period = None,
    start: From = None,
    end: To = None,
    creator_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    rng, zone = await _range(conn, who, period, start, end)
    return await analytics.summary(conn, who, rng, creator_id, zone=zone)


@router.get("/series", response_model=AnalyticsSeries)
async def series(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    metric: Metrics,
    period: Period = None,
    start: From = None,
    end: To = None,
    interval: Interval = None,
    creator_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    rng, zone = await _range(conn, who, period, start, end)
    return await analytics.series(
        conn, who, rng, metric, _interval(rng, interval), creator_id=creator_id, zone=zone
    )


@router.get("/leaderboard", response_model=AnalyticsLeaderboard)
async def leaderboard(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    metric: Metric = "follows",
    period: Period = None,
    start: From = None,
    end: To = None,
    limit: Limit = 10,
) -> dict[str, Any]:
    rng, zone = await _range(conn, who, period, start, end)
    return await analytics.leaderboard(conn, who, rng, metric, limit, zone=zone)


# --- CSV -----------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts with = + - @ as a formula: quote it as text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _stamp(found: dict[str, Any]) -> str:
    return f"{found['start'][:10]}_{found['end'][:10]}"


@router.get("/summary.csv", response_class=Response, responses=_CSV)
async def summary_csv(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    period: Period = None,
    start: From = None,
    end: To = None,
    creator_id: uuid.UUID | None = None,
) -> Response:
    found = await summary(
        conn=conn, who=who, period=period, start=start, end=end, creator_id=creator_id
    )
    rows = [[n, v["value"], v["previous"]] for n, v in found["metrics"].items()]
    return _csv(f"summary_{_stamp(found)}.csv", ["metric", "value", "previous"], rows)


@router.get("/series.csv", response_class=Response, responses=_CSV)
async def series_csv(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    metric: Metrics,
    period: Period = None,
    start: From = None,
    end: To = None,
    interval: Interval = None,
    creator_id: uuid.UUID | None = None,
) -> Response:
    found = await series(
        conn=conn,
        who=who,
        metric=metric,
        period=period,
        start=start,
        end=end,
        interval=interval,
        creator_id=creator_id,
    )
    names = list(found["series"])
    rows = [
        [bucket, *(found["series"][n][i] for n in names)]
        for i, bucket in enumerate(found["buckets"])
    ]
    return _csv(f"series_{_stamp(found)}.csv", ["bucket", *names], rows)


@router.get("/leaderboard.csv", response_class=Response, responses=_CSV)
async def leaderboard_csv(  # keyword-only: each is a query parameter
    *,
    conn: Conn,
    who: Who,
    metric: Metric = "follows",
    period: Period = None,
    start: From = None,
    end: To = None,
    limit: Limit = 200,
) -> Response:
    found = await leaderboard(
        conn=conn, who=who, metric=metric, period=period, start=start, end=end, limit=limit
    )
    rows = [
        [r["rank"], r["display_name"], r["twitch_login"], r["value"], r["previous"]]
        for r in found["rows"]
    ]
    return _csv(
        f"leaderboard_{metric}_{_stamp(found)}.csv",
        ["rank", "creator", "login", metric, "previous"],
        rows,
    )
