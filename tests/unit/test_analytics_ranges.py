"""What a requested analytics range means (controlroom/core/analytics.py): periods ending with
the current bucket, local calendar days across DST, custom ranges, series buckets in local
hours and days, and the rollup rows a range is summed from."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controlroom.core import analytics as a
from controlroom.errors import InvalidError

BERLIN = "Europe/Berlin"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_a_period_ends_with_the_current_bucket_and_the_previous_one_touches_it() -> None:
    rng = a.resolve("24h", None, None, "UTC", utc(2026, 12, 3, 7, 41, 59))
    assert (rng.start, rng.end) == (utc(2026, 12, 2, 7, 45), utc(2026, 12, 3, 7, 45))
    assert (rng.previous_start, rng.previous_end) == (utc(2026, 12, 1, 7, 45), rng.start)


def test_a_week_across_the_spring_change_is_seven_local_days_of_167_hours() -> None:
    rng = a.resolve("7d", None, None, BERLIN, utc(2026, 3, 29, 0, 58, 30))
    assert rng.end == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, just after the change
    assert rng.end - rng.start == timedelta(hours=167)
    local = rng.start.astimezone(ZoneInfo(BERLIN))
    assert (local.day, local.hour, local.minute) == (22, 3, 0)
    assert rng.start - rng.previous_start == timedelta(days=7)  # no change in that week


def test_custom_dates_are_local_midnights() -> None:
    rng = a.resolve(None, "2026-10-25", "2026-10-26", BERLIN, utc(2026, 12, 1))
    assert (rng.start, rng.end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert rng.end - rng.start == timedelta(hours=25)  # the autumn change
    assert rng.previous_start == rng.start - timedelta(hours=25)
    kolkata = a.resolve(None, "2026-03-01", "2026-03-02", "Asia/Kolkata", utc(2026, 12, 1))
    assert kolkata.start == utc(2026, 2, 28, 18, 30)


@pytest.mark.parametrize(
    ("period", "start", "end", "says"),
    [
        ("1y", None, None, "period must be one of"),
        (None, "2026-01-01", None, "needs both"),
        (None, "2026-01-02", "2026-01-01", "later than"),
        (None, "2026-01-01T00:02:00Z", "2026-01-02", "5-minute boundary"),
        (None, "2026-01-01T00:00:00", "2026-01-02", "offset"),
        (None, "2026-02-30", "2026-03-02", "not a date"),
        (None, "yesterday", "2026-03-02", "give a date"),
        (None, "2024-01-01", "2026-01-01", "400 days"),
        ("7d", "2026-01-01", "2026-01-02", "not both"),
    ],
)
def test_bad_ranges_say_what_is_wrong(
    period: str | None, start: str | None, end: str | None, says: str
) -> None:
    with pytest.raises(InvalidError, match=says):
        a.resolve(period, start, end, BERLIN, utc(2026, 12, 1))


def test_an_unknown_zone_or_metric_is_refused() -> None:
    with pytest.raises(InvalidError, match="time zone"):
        a.resolve("7d", None, None, "Mars/Olympus", utc(2026, 12, 1))
    with pytest.raises(InvalidError, match="unknown metric"):
        a.metric("likes")


def test_hourly_buckets_follow_local_hours_across_dst() -> None:
    rng = a.resolve(None, "2026-10-25", "2026-10-26", BERLIN, utc(2026, 12, 1))
    starts = a.buckets(rng.start, rng.end, "1h", BERLIN)
    assert len(starts) == 25
    local = [s.astimezone(ZoneInfo(BERLIN)).strftime("%H%z") for s in starts]
    assert local[2:4] == ["02+0200", "02+0100"]  # the repeated hour, twice
    spring = a.resolve(None, "2026-03-29", "2026-03-30", BERLIN, utc(2026, 12, 1))
    assert len(a.buckets(spring.start, spring.end, "1h", BERLIN)) == 23


def test_half_hour_zones_keep_their_local_hours() -> None:
    rng = a.resolve(None, "2026-03-01", "2026-03-02", "Asia/Kolkata", utc(2026, 12, 1))
    starts = a.buckets(rng.start, rng.end, "1h", "Asia/Kolkata")
    assert len(starts) == 24
    assert all(s.minute == 30 for s in starts)
    assert a.widest_for(starts) == 300  # hour rows would straddle local hours
    howe = a.resolve(None, "2026-04-05", "2026-04-06", "Australia/Lord_Howe", utc(2026, 12, 1))
    hours = a.buckets(howe.start, howe.end, "1h", "Australia/Lord_Howe")
    # the day Lord Howe moves back half an hour is 24.5 h long: one local hour is 90 minutes
    spans = {b - s for s, b in zip(hours, [*hours[1:], howe.end], strict=True)}
    assert howe.end - howe.start == timedelta(hours=24, minutes=30)
    assert spans == {timedelta(hours=1), timedelta(minutes=90)}


def test_daily_buckets_start_at_local_midnight() -> None:
    rng = a.resolve(None, "2026-10-24", "2026-10-27", BERLIN, utc(2026, 12, 1))
    starts = a.buckets(rng.start, rng.end, "1d", BERLIN)
    assert starts == [utc(2026, 10, 23, 22), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)]
    assert a.widest_for(starts) == 3600
    assert a.widest_for(a.buckets(rng.start, rng.end, "1d", "UTC")) == 86400


def test_too_many_points_is_refused_with_a_hint() -> None:
    rng = a.resolve("30d", None, None, "UTC", utc(2026, 12, 1))
    with pytest.raises(InvalidError, match="longer interval"):
        a.buckets(rng.start, rng.end, "5m", "UTC")


def test_pieces_cover_a_range_exactly_with_the_widest_rows() -> None:
    lo, hi = utc(2026, 10, 3, 18, 30), utc(2026, 11, 2, 18, 25)
    pieces = a.pieces(lo, hi)
    assert [w for w, _, _ in pieces] == [300, 3600, 86400, 3600, 300]
    # contiguous, in order, each on its own width's grid
    assert pieces[0][1] == lo and pieces[-1][2] == hi
    for (_, _, end), (_, start, _) in itertools.pairwise(pieces):
        assert end == start
    assert a.pieces(lo, lo + timedelta(minutes=20)) == [(300, lo, lo + timedelta(minutes=20))]
    assert {w for w, _, _ in a.pieces(lo, hi, widest=3600)} == {300, 3600}
    assert a.pieces(hi, lo) == []


def test_a_session_runs_to_the_next_stream_event_or_now() -> None:
    now = utc(2026, 1, 1, 12)
    events = [
        ("c1", "stream.online", utc(2026, 1, 1, 8)),
        ("c1", "stream.offline", utc(2026, 1, 1, 9)),
        ("c1", "stream.online", utc(2026, 1, 1, 10)),
        ("c1", "stream.online", utc(2026, 1, 1, 11)),  # a new stream ended the old one
        ("c2", "stream.offline", utc(2026, 1, 1, 7)),
        ("c2", "stream.online", utc(2026, 1, 1, 11, 30)),
    ]
    sessions = a.sessions(events, now)
    assert [(s.creator_id, s.start.hour, s.end - s.start) for s in sessions] == [
        ("c1", 8, timedelta(hours=1)),
        ("c1", 10, timedelta(hours=1)),
        ("c1", 11, timedelta(hours=1)),
        ("c2", 11, timedelta(minutes=30)),
    ]
    assert a.overlap_seconds(sessions[0], utc(2026, 1, 1, 8, 30), utc(2026, 1, 1, 10)) == 1800


def test_the_api_lists_exactly_the_metrics_the_core_defines() -> None:
    from typing import get_args

    from realtime.schemas import MetricName

    assert list(get_args(MetricName)) == a.ORDER
