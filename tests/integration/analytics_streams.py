"""Random event streams for the analytics property test, and the test's own recount of them.

The recount (`Oracle`) is written from the metric definitions of issue 18's contract in plain
Python over the distinct facts the test stored; it reads nothing the product computed. Local
hours and days come from zoneinfo.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from controlroom.adapters import eventstore

FIVE_MINUTES = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Zone:
    """A company time zone and the local day the stream is clustered around."""

    name: str
    day: date  # the local day of interest (a DST change where the zone has one)
    change: datetime | None  # the DST change's instant on that day, if any


ZONES: tuple[Zone, ...] = (
    Zone("Europe/Berlin", date(2026, 3, 29), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # 23 h
    Zone("Europe/Berlin", date(2026, 10, 25), datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # 25 h
    Zone("America/New_York", date(2026, 11, 1), datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),  # 25 h
    Zone("Asia/Kolkata", date(2026, 3, 29), None),  # +05:30: local hours start at :30 UTC
    # 30-minute DST: a 24.5 h day in April, a 23.5 h day in October
    Zone("Australia/Lord_Howe", date(2026, 4, 5), datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),
    Zone("Australia/Lord_Howe", date(2026, 10, 4), datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    Zone("UTC", date(2026, 11, 1), None),
)


def local_midnight(zone: str, day: date) -> datetime:
    """The instant a local date begins (none of the zones above changes clocks at midnight)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def floor5(at: datetime) -> datetime:
    return at - (at - EPOCH) % FIVE_MINUTES


def anchors(zone: Zone) -> list[datetime]:
    """The instants events cluster around: local midnights before, on and after the day of
    interest (three days back so previous periods have data too) and the DST change."""
    days = [zone.day + timedelta(days=d) for d in (-3, -1, 0, 1, 2)]
    points = [local_midnight(zone.name, d) for d in days]
    if zone.change is not None:
        points.append(zone.change)
    return points


# --- facts: one distinct event each --------------------------------------------------------

COUNTED_COLUMNS: tuple[str, ...] = (
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
STREAM_TYPES = ("stream.online", "stream.offline")


@dataclass(frozen=True)
class Fact:
    """One fact as stored: `creator` indexes the company's creators (None: nobody watched)."""

    message_id: str
    type: str
    creator: int | None
    occurred_at: datetime
    summary: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    dedup_key: str | None = None

    def key(self) -> str:
        return self.dedup_key or self.message_id


def contribution(fact: Fact) -> dict[str, int]:
    """What one fact adds to the counted columns, from the contract's metric definitions."""
    s = fact.summary
    out: dict[str, int] = {}
    amount = max(s.get("amount") or 0, 0)
    t, outcome = fact.type, s.get("outcome")
    if t == "channel.follow":
        out["follows"] = 1
    elif t == "channel.subscribe" and outcome != "gift":
        tier = s.get("tier")
        out[
            "subs_tier2" if tier == "2000" else "subs_tier3" if tier == "3000" else "subs_tier1"
        ] = 1
    elif t == "channel.subscription.message":
        out["resubs"] = 1
    elif t == "channel.subscription.gift":
        out["gifted_subs"] = amount
    elif t == "channel.cheer":
        out["bits"] = amount
    elif t == "channel.raid" and outcome in ("incoming", "outgoing"):
        side = "in" if outcome == "incoming" else "out"
        out[f"raids_{side}"] = 1
        out[f"raids_{side}_viewers"] = amount
    elif t.startswith("channel.hype_train."):
        if t == "channel.hype_train.begin":
            out["hype_trains"] = 1
        if s.get("level") is not None:
            out["hype_train_level"] = s["level"]
    elif t == "channel.poll.begin":
        out["polls"] = 1
    elif t == "channel.prediction.begin":
        out["predictions"] = 1
    elif t == "channel.chat.message":
        out["chat_messages"] = 1
    elif t == "channel.ban" and outcome in ("permanent", "timeout"):
        out["bans" if outcome == "permanent" else "timeouts"] = 1
    elif t == "channel.ad_break.begin":
        out["ad_break_seconds"] = max(s.get("duration_seconds") or 0, 0)
    return out


def new_event(fact: Fact, creators: Sequence[uuid.UUID], broadcaster: str) -> eventstore.NewEvent:
    creator_id = None if fact.creator is None else creators[fact.creator]
    return eventstore.NewEvent(
        twitch_message_id=fact.message_id,
        type=fact.type,
        version="1",
        topic="stream" if fact.type in STREAM_TYPES else "audience",
        occurred_at=fact.occurred_at,
        received_at=fact.occurred_at + timedelta(seconds=2),
        broadcaster_user_id=broadcaster if creator_id is not None else "unwatched",
        payload={"event": {"type": fact.type}},
        creator_id=creator_id,
        dedup_key=fact.dedup_key,
        summary=fact.summary,
    )


@dataclass(frozen=True)
class Sample:
    creator: int
    sampled_at: datetime
    live: bool
    viewers: int


# --- strategies ----------------------------------------------------------------------------

tiers = st.sampled_from(["1000", "2000", "3000", None, "prime"])
amounts = st.one_of(st.none(), st.integers(-3, 60), st.integers(0, 100_000))
levels = st.one_of(st.none(), st.integers(1, 25))
durations = st.one_of(st.none(), st.integers(-30, 30), st.sampled_from([30, 60, 90, 180]))

SUMMARIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "channel.follow": st.just({"actor_login": "fan"}),
    "channel.subscribe": st.fixed_dictionaries(
        {"tier": tiers, "outcome": st.sampled_from([None, "gift"])}
    ),
    "channel.subscription.message": st.fixed_dictionaries({"tier": tiers, "amount": amounts}),
    "channel.subscription.gift": st.fixed_dictionaries(
        {"tier": tiers, "amount": amounts, "outcome": st.sampled_from([None, "anonymous"])}
    ),
    "channel.cheer": st.fixed_dictionaries(
        {"amount": amounts, "outcome": st.sampled_from([None, "anonymous"])}
    ),
    "channel.raid": st.fixed_dictionaries(
        {"amount": amounts, "outcome": st.sampled_from(["incoming", "outgoing"])}
    ),
    "channel.hype_train.begin": st.fixed_dictionaries({"level": levels, "amount": amounts}),
    "channel.hype_train.progress": st.fixed_dictionaries({"level": levels, "amount": amounts}),
    "channel.hype_train.end": st.fixed_dictionaries({"level": levels, "amount": amounts}),
    "channel.poll.begin": st.just({"title": "Which game?"}),
    "channel.poll.end": st.just({"title": "Which game?", "outcome": "completed"}),
    "channel.prediction.begin": st.just({"title": "Win?"}),
    "channel.prediction.end": st.just({"title": "Win?", "outcome": "resolved"}),
    "channel.chat.message": st.just({"message_text": "hi"}),
    "channel.ban": st.fixed_dictionaries(
        {"outcome": st.sampled_from(["permanent", "timeout"]), "duration_seconds": durations}
    ),
    "channel.unban": st.just({"actor_login": "mod"}),
    "channel.ad_break.begin": st.fixed_dictionaries(
        {"duration_seconds": durations, "outcome": st.sampled_from(["automatic", "manual"])}
    ),
    "channel.update": st.just({"title": "new title"}),
}


def offsets() -> st.SearchStrategy[timedelta]:
    """Offsets from an anchor: mostly close to it, on and beside 5-minute edges."""
    return st.one_of(
        st.integers(-900, 900).map(lambda s: timedelta(seconds=s)),
        st.integers(-12, 12).map(lambda k: k * FIVE_MINUTES),
        st.integers(-12, 12).map(lambda k: k * FIVE_MINUTES - timedelta(microseconds=1)),
        st.integers(-4 * 3600, 4 * 3600).map(lambda s: timedelta(seconds=s)),
        st.integers(-4 * 3600 * 10**6, 4 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us)),
    )


def instants(zone: Zone) -> st.SearchStrategy[datetime]:
    return st.builds(lambda a, o: a + o, st.sampled_from(anchors(zone)), offsets())


@dataclass(frozen=True)
class Scenario:
    zone: Zone
    creators: int
    facts: list[Fact]  # distinct
    deliveries: list[Fact]  # what is appended, in this order: duplicates, replays, shuffled
    batches: list[int]  # sizes of the consecutive batches of `deliveries`
    samples: list[Sample]  # distinct by (creator, sampled_at)
    sample_deliveries: list[Sample]
    now_offset: timedelta  # where "now" is put for the 24-hour period, from the DST change


@st.composite
def scenarios(draw: st.DrawFn, zone: Zone) -> Scenario:
    n_creators = draw(st.integers(2, 3))
    at = instants(zone)
    ids = iter(range(10**6))

    counted = draw(
        st.lists(
            st.tuples(
                st.sampled_from(sorted(SUMMARIES)).flatmap(
                    lambda t: st.tuples(st.just(t), SUMMARIES[t])
                ),
                st.one_of(st.integers(0, n_creators - 1), st.none()),
                at,
            ),
            min_size=25,
            max_size=80,
        )
    )
    facts: list[Fact] = []
    for (type_, summary), creator, when in counted:
        facts.append(Fact(f"m{next(ids)}", type_, creator, when, summary))
    # online/offline of each creator at distinct instants (a tie would make "the next one"
    # ambiguous); dedup keys as Twitch's stream ids give them
    streams = draw(
        st.lists(
            st.tuples(st.integers(0, n_creators - 1), st.sampled_from(STREAM_TYPES), at),
            min_size=4,
            max_size=14,
            unique_by=lambda x: (x[0], x[2]),
        )
    )
    for creator, type_, when in streams:
        n = next(ids)
        facts.append(Fact(f"m{n}", type_, creator, when, {}, dedup_key=f"{type_}:s{n}"))

    rnd = draw(st.randoms(use_true_random=False))
    deliveries: list[Fact] = []
    for fact in facts:
        copies = rnd.choice([1, 1, 1, 2, 3])
        deliveries.extend([fact] * copies)  # redeliveries: the same message id again
        if fact.dedup_key is not None and rnd.random() < 0.5:
            # a replay: the same fact under a new message id
            deliveries.append(replace(fact, message_id=f"r{next(ids)}"))
    rnd.shuffle(deliveries)  # out-of-order arrival, duplicates in one batch or far apart
    batches: list[int] = []
    left = len(deliveries)
    while left:
        size = min(left, rnd.choice([1, 1, 2, 3, 5, 8, 20]))
        batches.append(size)
        left -= size

    samples = draw(
        st.lists(
            st.builds(
                Sample,
                st.integers(0, n_creators - 1),
                at.map(lambda t: t.replace(microsecond=0)),
                st.booleans() | st.just(True),
                st.integers(0, 5000),
            ),
            min_size=3,
            max_size=25,
            unique_by=lambda s: (s.creator, s.sampled_at),
        )
    )
    sample_deliveries = [s for s in samples for _ in range(rnd.choice([1, 1, 2]))]
    rnd.shuffle(sample_deliveries)
    now_offset = draw(st.integers(-36, 36).map(lambda k: k * FIVE_MINUTES + timedelta(seconds=7)))
    return Scenario(
        zone, n_creators, facts, deliveries, batches, samples, sample_deliveries, now_offset
    )


# --- the oracle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    creator: int
    start: datetime
    end: datetime


def sessions(facts: Iterable[Fact], now: datetime) -> list[Session]:
    """An online opens a session that ends at the creator's next online or offline, or now."""
    by_creator: dict[int, list[Fact]] = {}
    for f in facts:
        if f.type in STREAM_TYPES and f.creator is not None:
            by_creator.setdefault(f.creator, []).append(f)
    out: list[Session] = []
    for creator, events in by_creator.items():
        events.sort(key=lambda f: f.occurred_at)
        for i, f in enumerate(events):
            if f.type == "stream.online":
                end = events[i + 1].occurred_at if i + 1 < len(events) else now
                out.append(Session(creator, f.occurred_at, max(end, f.occurred_at)))
    return out


class Oracle:
    """Every exposed figure, recounted from the distinct facts and samples alone."""

    def __init__(self, facts: Iterable[Fact], samples: Iterable[Sample], now: datetime) -> None:
        self.facts = sorted(facts, key=lambda f: f.occurred_at)
        self.times = [f.occurred_at for f in self.facts]
        self.samples = sorted((s for s in samples if s.live), key=lambda s: s.sampled_at)
        self.sample_times = [s.sampled_at for s in self.samples]
        self.sessions = sessions(self.facts, now)

    def counted(self, start: datetime, end: datetime, creator: int | None = None) -> dict[str, int]:
        totals = dict.fromkeys(COUNTED_COLUMNS, 0)
        lo, hi = bisect_left(self.times, start), bisect_left(self.times, end)
        for f in self.facts[lo:hi]:
            if f.creator is None or (creator is not None and f.creator != creator):
                continue
            for column, value in contribution(f).items():
                if column == "hype_train_level":
                    totals[column] = max(totals[column], value)
                else:
                    totals[column] += value
        return totals

    def figures(
        self, start: datetime, end: datetime, creator: int | None = None
    ) -> dict[str, float | int | None]:
        c = self.counted(start, end, creator)
        live = sum(
            max(timedelta(0), min(s.end, end) - max(s.start, start)).total_seconds()
            for s in self.sessions
            if creator is None or s.creator == creator
        )
        lo, hi = bisect_left(self.sample_times, start), bisect_left(self.sample_times, end)
        viewers = [
            s.viewers for s in self.samples[lo:hi] if creator is None or s.creator == creator
        ]
        figures: dict[str, float | int | None] = {
            k: v for k, v in c.items() if k != "ad_break_seconds"
        }
        figures["subs"] = c["subs_tier1"] + c["subs_tier2"] + c["subs_tier3"]
        figures["ad_break_minutes"] = c["ad_break_seconds"] / 60
        figures["live_minutes"] = live / 60
        figures["viewers_peak"] = max(viewers) if viewers else None
        figures["viewers_avg"] = sum(viewers) / len(viewers) if viewers else None
        return figures


def boundaries(zone: str, start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Starts of a series' buckets in [start, end): every 5 minutes; or where the local wall
    clock shows a whole hour (so a half-hour DST change makes one local hour 90 minutes
    long, the two 02:00s of a fall-back day are two hours); or where the local date
    changes. `start` itself always begins the first bucket."""
    tz = ZoneInfo(zone)
    out = [start]
    t = start + FIVE_MINUTES
    previous = start.astimezone(tz)
    while t < end:
        wall = t.astimezone(tz)
        if interval == "5m":
            new = True
        elif interval == "1h":
            new = wall.minute == 0
        else:
            new = wall.date() != previous.date()
        if new:
            out.append(t)
        previous = wall
        t += FIVE_MINUTES
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, with floating-point slack for the float figures only."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    return bool(a == b)
