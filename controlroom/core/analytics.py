"""Analytics for short lookbacks: which metrics exist and what a requested range means.

Rollups are kept per 5-minute bucket (UTC, from the epoch). Every modern time zone's offset
is a whole number of quarter hours, so a company's local hours and days are whole buckets,
and any range this module resolves lies on bucket boundaries: figures are exact sums of
buckets, never estimates of partial ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controlroom.errors import InvalidError

BUCKET = timedelta(minutes=5)
MAX_RANGE = timedelta(days=400)
MAX_POINTS = 2000

Kind = Literal["sum", "max", "avg"]


@dataclass(frozen=True)
class Metric:
    label: str
    kind: Kind
    # the rollup expression summed (or maxed) per bucket; None for metrics computed elsewhere
    column: str | None = None
    unit: str = ""


METRICS: dict[str, Metric] = {
    "live_minutes": Metric("Minutes live", "sum", None, "min"),
    "viewers_peak": Metric("Peak viewers", "max", None),
    "viewers_avg": Metric("Average viewers", "avg", None),
    "follows": Metric("Follows", "sum", "follows"),
    "subs": Metric("New subscriptions", "sum", "subs_tier1 + subs_tier2 + subs_tier3"),
    "subs_tier1": Metric("New subscriptions, tier 1", "sum", "subs_tier1"),
    "subs_tier2": Metric("New subscriptions, tier 2", "sum", "subs_tier2"),
    "subs_tier3": Metric("New subscriptions, tier 3", "sum", "subs_tier3"),
    "resubs": Metric("Resubscriptions", "sum", "resubs"),
    "gifted_subs": Metric("Gifted subscriptions", "sum", "gifted_subs"),
    "bits": Metric("Bits", "sum", "bits"),
    "raids_in": Metric("Raids in", "sum", "raids_in"),
    "raids_in_viewers": Metric("Viewers raided in", "sum", "raids_in_viewers"),
    "raids_out": Metric("Raids out", "sum", "raids_out"),
    "raids_out_viewers": Metric("Viewers raided out", "sum", "raids_out_viewers"),
    "hype_trains": Metric("Hype trains", "sum", "hype_trains"),
    "hype_train_level": Metric("Top hype train level", "max", "hype_train_level"),
    "polls": Metric("Polls", "sum", "polls"),
    "predictions": Metric("Predictions", "sum", "predictions"),
    "chat_messages": Metric("Chat messages", "sum", "chat_messages"),
    "bans": Metric("Bans", "sum", "bans"),
    "timeouts": Metric("Timeouts", "sum", "timeouts"),
    "ad_break_minutes": Metric("Ad-break minutes", "sum", "ad_break_seconds / 60.0", "min"),
}
ORDER = list(METRICS)
# the events time live is computed from (the archive's prune keeps them in PostgreSQL)
STREAM_TYPES = ["stream.online", "stream.offline"]
# the columns of analytics_buckets a check compares (the table's counted columns)
ROLLUP_COLUMNS = (
    "events",
    "follows",
    "subs_tier1",
    "subs_tier2",
    "subs_tier3",
    "resubs",
    "gifted_subs",
    "bits",
    "raids_in",
    "raids_in_viewers",
    "raids_out",
    "raids_out_viewers",
    "hype_trains",
    "hype_train_level",
    "polls",
    "predictions",
    "chat_messages",
    "bans",
    "timeouts",
    "ad_break_seconds",
)

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
INTERVALS = {"5m": BUCKET, "1h": timedelta(hours=1), "1d": timedelta(days=1)}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime
    previous_start: datetime
    previous_end: datetime


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidError(f"unknown metric {name!r}; one of: {', '.join(ORDER)}") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidError(f"unknown time zone {name!r}") from None


def bucket_floor(at: datetime) -> datetime:
    return _floor(at, BUCKET)


def _local_days_back(at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The same local wall time `days` calendar days earlier (a DST day is 23 or 25 h)."""
    local = at.astimezone(tz).replace(tzinfo=None) - timedelta(days=days)
    return _from_local(local, tz)


def _from_local(local: datetime, tz: ZoneInfo) -> datetime:
    # a wall time skipped by a DST jump resolves forward, one repeated by it to its first
    # occurrence; then to the bucket grid (no modern zone is off it)
    aware = local.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != local:  # in a gap: fold=1 is the later one
        utc = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return bucket_floor(utc)


def _bound(value: str, tz: ZoneInfo, name: str) -> datetime:
    if _DATE.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidError(f"{name}: {value!r} is not a date") from None
        return _from_local(datetime.combine(day, time()), tz)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidError(
            f"{name}: give a date (YYYY-MM-DD) or an ISO date-time with offset"
        ) from None
    if at.tzinfo is None:
        raise InvalidError(f"{name}: a date-time needs its offset (Z or +hh:mm)")
    at = at.astimezone(UTC)
    if bucket_floor(at) != at:
        raise InvalidError(
            f"{name}: a date-time must fall on a 5-minute boundary (figures are kept per "
            "5 minutes)",
        )
    return at


def resolve(
    period: str | None, start: str | None, end: str | None, zone_name: str, now: datetime
) -> Range:
    """The range a request names, and the previous range of the same length beside it."""
    tz = zone(zone_name)
    if period is not None and (start is not None or end is not None):
        raise InvalidError("give either period or from/to, not both")
    if start is not None or end is not None:
        if start is None or end is None:
            raise InvalidError("a custom range needs both from and to")
        lo, hi = _bound(start, tz, "from"), _bound(end, tz, "to")
        if hi <= lo:
            raise InvalidError("to must be later than from")
        if hi - lo > MAX_RANGE:
            raise InvalidError("a range spans at most 400 days")
        return Range(lo, hi, lo - (hi - lo), lo)
    period = period or "7d"
    if period not in PERIODS:
        raise InvalidError(f"period must be one of {', '.join(PERIODS)}")
    hi = bucket_floor(now) + BUCKET  # the current bucket is in: live figures show
    if period == "24h":
        lo = hi - PERIODS[period]
        return Range(lo, hi, lo - PERIODS[period], lo)
    days = PERIODS[period].days
    lo = _local_days_back(hi, days, tz)
    return Range(lo, hi, _local_days_back(lo, days, tz), lo)


def buckets(
    rng_start: datetime, rng_end: datetime, interval: str, zone_name: str
) -> list[datetime]:
    """The starts of a series' buckets: 5 minutes, or the zone's local hours or days.

    The first bucket starts with the range (which can start mid-hour). A day that DST
    shortens or lengthens has 23 or 25 hourly buckets. A local hour starts where the wall
    clock shows :00, so a zone that moves by half an hour (Australia/Lord_Howe) has one
    local hour of 90 minutes on both of its change days."""
    if interval not in INTERVALS:
        raise InvalidError(f"interval must be one of {', '.join(INTERVALS)}")
    tz = zone(zone_name)
    if interval == "5m":
        count = (rng_end - rng_start) // BUCKET
        if count > MAX_POINTS:
            raise InvalidError(_too_many(count))
        return [rng_start + i * BUCKET for i in range(count)]
    out = [rng_start]
    if interval == "1d":
        day = rng_start.astimezone(tz).date()
        while True:
            day += timedelta(days=1)
            at = _from_local(datetime.combine(day, time()), tz)
            if at >= rng_end:
                return out
            out.append(at)
            if len(out) > MAX_POINTS:
                raise InvalidError(_too_many(len(out)))
    quarter = timedelta(minutes=15)
    at = bucket_floor(rng_start)
    at += quarter - (at - datetime(1970, 1, 1, tzinfo=UTC)) % quarter
    while at < rng_end:
        if at.astimezone(tz).minute == 0:
            out.append(at)
            if len(out) > MAX_POINTS:
                raise InvalidError(_too_many(len(out)))
            at += timedelta(hours=1)
        else:
            at += quarter
    return out


def _too_many(count: int) -> str:
    return f"{count} points is more than {MAX_POINTS}: choose a longer interval or a shorter range"


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def _floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((at - epoch) // step) * step


def _ceil(at: datetime, step: timedelta) -> datetime:
    floor = _floor(at, step)
    return floor if floor == at else floor + step


def pieces(lo: datetime, hi: datetime, widest: int = 86400) -> list[tuple[int, datetime, datetime]]:
    """[lo, hi) as the fewest rollup rows: (width seconds, first bucket, end), 5-minute
    edges around whole UTC hours around whole UTC days (no row wider than `widest`). Both
    ends on the 5-minute grid."""
    if hi <= lo:
        return []
    h1, h2 = _ceil(lo, HOUR), _floor(hi, HOUR)
    if h1 >= h2 or widest < 3600:
        return [(300, lo, hi)]
    out = [(300, lo, h1)]
    d1, d2 = _ceil(h1, DAY), _floor(h2, DAY)
    if d1 >= d2 or widest < 86400:
        out.append((3600, h1, h2))
    else:
        out += [(3600, h1, d1), (86400, d1, d2), (3600, d2, h2)]
    out.append((300, h2, hi))
    return [(w, a, b) for w, a, b in out if b > a]


@dataclass(frozen=True)
class Session:
    """A creator's live time: from a stream.online to its next stream event, or to now."""

    creator_id: str
    start: datetime
    end: datetime


def sessions(stream_events: list[tuple[str, str, datetime]], now: datetime) -> list[Session]:
    """Sessions from (creator_id, type, occurred_at) sorted by creator then time. An online
    lasts until the creator's next stream event (an offline, or another online: a stream
    that started anew ended the old one), or until now while none has arrived."""
    out: list[Session] = []
    for i, (creator, kind, at) in enumerate(stream_events):
        if kind != "stream.online":
            continue
        following = stream_events[i + 1] if i + 1 < len(stream_events) else None
        end = following[2] if following and following[0] == creator else max(now, at)
        out.append(Session(creator, at, end))
    return out


def overlap_seconds(session: Session, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(session.end, hi) - max(session.start, lo)).total_seconds())


def widest_for(starts: list[datetime]) -> int:
    """The widest rollup rows a series with these bucket starts can sum: rows must not
    straddle a bucket boundary, so a zone half an hour off UTC sums 5-minute rows."""
    inner = starts[1:]
    for width, step in ((86400, DAY), (3600, HOUR)):
        if all(_floor(at, step) == at for at in inner):
            return width
    return 300
