"""The event model: EventSub notifications normalized into stored, routable facts.

Parsing is lenient on purpose: unknown keys are ignored, missing or null fields become
None, and an unknown type or version still yields an event with a generic summary. Only a
delivery from which no broadcaster can be found is refused (NormalizationError). Every
string of a normalized event is one PostgreSQL can store (see `storable`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from controlroom.core.eventsub import parse_timestamp
from controlroom.errors import NormalizationError

# The normalized summary columns of `events`, in table order; every one is optional.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "actor_user_id",
    "actor_login",
    "actor_name",
    "target_user_id",
    "target_login",
    "target_name",
    "amount",
    "tier",
    "title",
    "category_name",
    "duration_seconds",
    "message_text",
    "outcome",
    "level",
)
_SUMMARY_TYPES = {
    "amount": "bigint",
    "duration_seconds": "integer",
    "level": "integer",
}
# the database type of each `events` column that is not text
COLUMN_TYPES = {
    "creator_id": "uuid",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    **_SUMMARY_TYPES,
}

# The one list of topics: the Literal is what types and the API schema see, TOPICS its values.
Topic = Literal["stream", "audience", "monetization", "moderation", "engagement", "platform"]
TOPICS: tuple[Topic, ...] = get_args(Topic)
STREAM, AUDIENCE, MONETIZATION, MODERATION, ENGAGEMENT, PLATFORM = TOPICS
REVOCATION_TYPE = "subscription.revoked"


@dataclass(frozen=True)
class StateChange:
    """What an event says about a creator's live state, as of the event's time."""

    status: str | None = None  # "live" / "offline"
    live_since: datetime | None = None
    title: str | None = None
    category_id: str | None = None
    category_name: str | None = None
    details: bool = False  # title/category carried (they may legitimately be empty)
    authorization_revoked: bool = False


@dataclass(frozen=True)
class Normalized:
    """One fact about one broadcaster, ready to be stored for every company watching it."""

    type: str
    version: str
    topic: str
    broadcaster_user_id: str
    occurred_at: datetime
    event: Mapping[str, Any]
    summary: Mapping[str, Any] = field(default_factory=dict)
    dedup_key: str | None = None
    state: StateChange | None = None


# PostgreSQL's text and jsonb refuse U+0000, and UTF-8 cannot carry a lone surrogate (a pair
# arrives from json.loads already joined). Either would turn an authentic event into a poison
# task; U+FFFD marks the spot without inventing text. The signature was verified over the
# raw bytes at the webhook, so what is stored is a sanitized record of the delivery.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """A copy of a parsed JSON value whose strings, keys included, PostgreSQL can store."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _s(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text if text else None


_INTEGER = re.compile(r"\s*-?\d{1,19}\s*", re.ASCII)  # isdigit() also takes "²", int() does not
# the range of each integer summary column, so an absurd count is dropped rather than stored
_INT_RANGES = {"bigint": 2**63, "integer": 2**31}


def _i(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _fits(column: str, value: Any) -> bool:
    bound = _INT_RANGES.get(COLUMN_TYPES.get(column, ""))
    return bound is None or -bound <= value < bound


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _t(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _user(event: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "id": _s(event.get(f"{prefix}_id")),
        "login": _s(event.get(f"{prefix}_login")),
        "name": _s(event.get(f"{prefix}_name")),
    }


def _actor(event: Mapping[str, Any], prefix: str = "user") -> dict[str, Any]:
    who = _user(event, prefix)
    return {"actor_user_id": who["id"], "actor_login": who["login"], "actor_name": who["name"]}


def _target(event: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    who = _user(event, prefix)
    return {"target_user_id": who["id"], "target_login": who["login"], "target_name": who["name"]}


@dataclass(frozen=True)
class _Context:
    type: str
    version: str
    event: Mapping[str, Any]
    condition: Mapping[str, Any]
    sent_at: datetime  # the message timestamp: the event time when the event carries none


# A builder returns (topic, broadcaster, occurred_at, summary, dedup_key, state).
_Built = tuple[str, str | None, datetime | None, dict[str, Any], str | None, StateChange | None]


def _stream_online(c: _Context) -> _Built:
    e = c.event
    started = _t(e.get("started_at")) or c.sent_at
    stream_id = _s(e.get("id"))
    summary = {"outcome": _s(e.get("type"))}
    dedup = f"stream.online:{stream_id}" if stream_id else None
    state = StateChange(status="live", live_since=started)
    return STREAM, _s(e.get("broadcaster_user_id")), started, summary, dedup, state


def _stream_offline(c: _Context) -> _Built:
    e = c.event
    stream_id = _s(e.get("id"))
    dedup = f"stream.offline:{stream_id}" if stream_id else None
    state = StateChange(status="offline")
    return STREAM, _s(e.get("broadcaster_user_id")), None, {}, dedup, state


def _channel_update(c: _Context) -> _Built:
    e = c.event
    title, category = _s(e.get("title")), _s(e.get("category_name"))
    state = StateChange(
        title=title, category_id=_s(e.get("category_id")), category_name=category, details=True
    )
    summary = {"title": title, "category_name": category, "message_text": _s(e.get("language"))}
    return STREAM, _s(e.get("broadcaster_user_id")), None, summary, None, state


def _raid(c: _Context) -> _Built:
    e = c.event
    incoming = _s(c.condition.get("to_broadcaster_user_id")) is not None or (
        _s(c.condition.get("from_broadcaster_user_id")) is None
    )
    own, other = (
        ("to_broadcaster_user", "from_broadcaster_user")
        if incoming
        else (
            "from_broadcaster_user",
            "to_broadcaster_user",
        )
    )
    summary = {
        **(_actor(e, other) if incoming else _target(e, other)),
        "amount": _i(e.get("viewers")),
        "outcome": "incoming" if incoming else "outgoing",
    }
    return AUDIENCE, _s(e.get(f"{own}_id")), None, summary, None, None


def _follow(c: _Context) -> _Built:
    e = c.event
    return (
        AUDIENCE,
        _s(e.get("broadcaster_user_id")),
        _t(e.get("followed_at")),
        _actor(e),
        None,
        None,
    )


def _subscribe(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e),
        "tier": _s(e.get("tier")),
        "outcome": "gift" if e.get("is_gift") else None,
    }
    return MONETIZATION, _s(e.get("broadcaster_user_id")), None, summary, None, None


def _gift(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e),
        "amount": _i(e.get("total")),
        "tier": _s(e.get("tier")),
        "outcome": "anonymous" if e.get("is_anonymous") else None,
    }
    return MONETIZATION, _s(e.get("broadcaster_user_id")), None, summary, None, None


def _resub(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e),
        "tier": _s(e.get("tier")),
        "amount": _i(e.get("cumulative_months")),
        "message_text": _s(_d(e.get("message")).get("text")),
    }
    return MONETIZATION, _s(e.get("broadcaster_user_id")), None, summary, None, None


def _cheer(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e),
        "amount": _i(e.get("bits")),
        "message_text": _s(e.get("message")),
        "outcome": "anonymous" if e.get("is_anonymous") else None,
    }
    return MONETIZATION, _s(e.get("broadcaster_user_id")), None, summary, None, None


def _hype_train(c: _Context) -> _Built:
    e = c.event
    phase = c.type.rsplit(".", 1)[-1]
    train = _s(e.get("id"))
    occurred = _t(e.get("ended_at")) if phase == "end" else None
    if phase == "begin":
        occurred = _t(e.get("started_at"))
    summary = {
        "amount": _i(e.get("total")),
        "level": _i(e.get("level")),
        "outcome": _s(e.get("type")),
    }
    dedup = f"{c.type}:{train}" if train and phase in {"begin", "end"} else None
    return MONETIZATION, _s(e.get("broadcaster_user_id")), occurred, summary, dedup, None


def _ban(c: _Context) -> _Built:
    e = c.event
    banned, ends = _t(e.get("banned_at")), _t(e.get("ends_at"))
    permanent = bool(e.get("is_permanent")) or ends is None
    duration = (
        None
        if permanent or banned is None or ends is None
        else int((ends - banned).total_seconds())
    )
    summary = {
        **_actor(e, "moderator_user"),
        **_target(e, "user"),
        "message_text": _s(e.get("reason")),
        "duration_seconds": duration,
        "outcome": "permanent" if permanent else "timeout",
    }
    return MODERATION, _s(e.get("broadcaster_user_id")), banned, summary, None, None


def _ad_break(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e, "requester_user"),
        "duration_seconds": _i(e.get("duration_seconds")),
        "outcome": "automatic" if e.get("is_automatic") else "manual",
    }
    return STREAM, _s(e.get("broadcaster_user_id")), _t(e.get("started_at")), summary, None, None


def _chat(c: _Context) -> _Built:
    e = c.event
    chat_id = _s(e.get("message_id"))
    summary = {
        **_actor(e, "chatter_user"),
        "message_text": _s(_d(e.get("message")).get("text")),
        "outcome": _s(e.get("message_type")),
    }
    dedup = f"chat:{chat_id}" if chat_id else None
    return ENGAGEMENT, _s(e.get("broadcaster_user_id")), None, summary, dedup, None


def _votes(choice: Mapping[str, Any]) -> int:
    return _i(choice.get("votes")) or 0


def _poll(c: _Context) -> _Built:
    e = c.event
    phase = c.type.rsplit(".", 1)[-1]
    outcome: str | None = None
    if phase == "end":
        choices = [ch for ch in _l(e.get("choices")) if isinstance(ch, dict)]
        winner = max(choices, key=_votes, default=None)
        outcome = _s(e.get("status"))
        if winner is not None and outcome == "completed":
            outcome = f"completed: {_s(winner.get('title'))}"
    occurred = _t(e.get("ended_at") if phase == "end" else e.get("started_at"))
    poll = _s(e.get("id"))
    summary = {"title": _s(e.get("title")), "outcome": outcome}
    dedup = f"{c.type}:{poll}" if poll and phase != "progress" else None
    return ENGAGEMENT, _s(e.get("broadcaster_user_id")), occurred, summary, dedup, None


def _prediction(c: _Context) -> _Built:
    e = c.event
    phase = c.type.rsplit(".", 1)[-1]
    outcome: str | None = None
    if phase == "end":
        outcome = _s(e.get("status"))
        winning = _s(e.get("winning_outcome_id"))
        for option in _l(e.get("outcomes")):
            if isinstance(option, dict) and winning and _s(option.get("id")) == winning:
                outcome = f"{outcome}: {_s(option.get('title'))}"
    occurred = _t(e.get("ended_at") if phase == "end" else e.get("started_at"))
    prediction = _s(e.get("id"))
    summary = {"title": _s(e.get("title")), "outcome": outcome}
    dedup = f"{c.type}:{prediction}" if prediction and phase in {"begin", "end"} else None
    return ENGAGEMENT, _s(e.get("broadcaster_user_id")), occurred, summary, dedup, None


def _shoutout(c: _Context) -> _Built:
    e = c.event
    summary = {
        **_actor(e, "moderator_user"),
        **_target(e, "to_broadcaster_user"),
        "amount": _i(e.get("viewer_count")),
    }
    return AUDIENCE, _s(e.get("broadcaster_user_id")), _t(e.get("started_at")), summary, None, None


def _authorization_revoke(c: _Context) -> _Built:
    e = c.event
    state = StateChange(authorization_revoked=True)
    summary = {**_actor(e), "outcome": "authorization revoked"}
    return PLATFORM, _s(e.get("user_id")), None, summary, None, state


def _generic(c: _Context) -> _Built:
    e = c.event
    broadcaster = _s(e.get("broadcaster_user_id")) or next(
        (
            _s(v)
            for k, v in sorted(c.condition.items())
            if k.endswith("broadcaster_user_id") and _s(v)
        ),
        None,
    )
    summary = {**_actor(e)} if e.get("user_id") else {}
    return "other", broadcaster, None, summary, None, None


_BUILDERS: dict[str, Callable[[_Context], _Built]] = {
    "stream.online": _stream_online,
    "stream.offline": _stream_offline,
    "channel.update": _channel_update,
    "channel.raid": _raid,
    "channel.follow": _follow,
    "channel.subscribe": _subscribe,
    "channel.subscription.gift": _gift,
    "channel.subscription.message": _resub,
    "channel.cheer": _cheer,
    "channel.hype_train.begin": _hype_train,
    "channel.hype_train.progress": _hype_train,
    "channel.hype_train.end": _hype_train,
    "channel.ban": _ban,
    "channel.ad_break.begin": _ad_break,
    "channel.chat.message": _chat,
    "channel.poll.begin": _poll,
    "channel.poll.end": _poll,
    "channel.prediction.begin": _prediction,
    "channel.prediction.end": _prediction,
    "channel.shoutout.create": _shoutout,
    "user.authorization.revoke": _authorization_revoke,
}
# The versions whose fields the builders follow; another version is stored generically.
KNOWN_VERSIONS: dict[str, str] = {
    **{t: "1" for t in _BUILDERS},
    "channel.update": "2",
    "channel.follow": "2",
    "channel.hype_train.begin": "2",
    "channel.hype_train.progress": "2",
    "channel.hype_train.end": "2",
}


def _one(ctx: _Context) -> Normalized:
    builder = _BUILDERS.get(ctx.type)
    if builder is None or KNOWN_VERSIONS.get(ctx.type) != ctx.version:
        builder = _generic
    topic, broadcaster, occurred, summary, dedup, state = builder(ctx)
    if not broadcaster:
        raise NormalizationError(f"no broadcaster in {ctx.type!r} v{ctx.version}")
    return Normalized(
        type=ctx.type,
        version=ctx.version,
        topic=topic,
        broadcaster_user_id=broadcaster,
        occurred_at=occurred or ctx.sent_at,
        event=ctx.event,
        summary={k: v for k, v in summary.items() if v is not None and _fits(k, v)},
        dedup_key=dedup,
        state=state,
    )


def _storable_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        cleaned = storable(dict(body))
    except RecursionError:  # as deep as json.loads allows, but not a copy more
        raise NormalizationError("body nested too deeply") from None
    assert isinstance(cleaned, dict)
    return cleaned


def normalize_notification(body: Mapping[str, Any], sent_at: datetime) -> list[Normalized]:
    """Every event of a notification body (`event`, or the batched `events` form)."""
    body = _storable_body(body)
    subscription = _d(body.get("subscription"))
    sub_type = _s(subscription.get("type"))
    if sub_type is None:
        raise NormalizationError("notification without a subscription type")
    version = _s(subscription.get("version")) or "1"
    condition = _d(subscription.get("condition"))
    if isinstance(body.get("events"), list):
        raw_events = [_d(item) for item in body["events"]]
    elif isinstance(body.get("event"), dict):
        raw_events = [body["event"]]
    else:
        raise NormalizationError("notification without an event")
    return [_one(_Context(sub_type, version, e, condition, sent_at)) for e in raw_events]


def normalize_revocation(body: Mapping[str, Any], sent_at: datetime) -> Normalized:
    """A revoked subscription, as an event for the companies watching its broadcaster."""
    body = _storable_body(body)
    subscription = _d(body.get("subscription"))
    condition = _d(subscription.get("condition"))
    broadcaster = next(
        (_s(v) for k, v in sorted(condition.items()) if k.endswith("user_id") and _s(v)), None
    )
    if broadcaster is None:
        raise NormalizationError("revocation without a broadcaster in its condition")
    return Normalized(
        type=REVOCATION_TYPE,
        version="1",
        topic=PLATFORM,
        broadcaster_user_id=broadcaster,
        occurred_at=sent_at,
        event=subscription,
        summary={
            k: v
            for k, v in {
                "title": _s(subscription.get("type")),
                "outcome": _s(subscription.get("status")),
                "message_text": _s(subscription.get("version")),
            }.items()
            if v is not None
        },
    )


# what `compact` reads: a query for dashboards selects these and not the raw payload
COMPACT_COLUMNS = ", ".join(
    (
        "seq",
        "type",
        "version",
        "topic",
        "creator_id",
        "broadcaster_user_id",
        "occurred_at",
        *SUMMARY_COLUMNS,
    )
)


def compact(row: Mapping[str, Any]) -> dict[str, Any]:
    """The event as dashboards receive it, live or replayed: from a stored row's columns."""
    occurred = row["occurred_at"]
    creator = row.get("creator_id")
    return {
        "seq": int(row["seq"]),
        "type": row["type"],
        "version": row["version"],
        "topic": row["topic"],
        "creator_id": str(creator) if creator is not None else None,
        "broadcaster_user_id": row["broadcaster_user_id"],
        "occurred_at": occurred.isoformat() if isinstance(occurred, datetime) else occurred,
        "summary": {c: row[c] for c in SUMMARY_COLUMNS if row.get(c) is not None},
    }


# What creator_state reads from a creators row: every query that feeds it selects these.
CREATOR_STATE_COLUMNS = (
    "id, twitch_user_id, twitch_login, display_name, status, title, category_name, "
    "live_since, last_event_at, authorization_revoked_at, profile_image_url, preview_url"
)


def creator_state(row: dict[str, Any]) -> dict[str, Any]:
    """A creator's live state as dashboards receive it."""
    return {
        "creator_id": str(row["id"]),
        "twitch_user_id": row["twitch_user_id"],
        "login": row["twitch_login"],
        "display_name": row["display_name"],
        "status": row["status"],
        "title": row["title"],
        "category_name": row["category_name"],
        "live_since": row["live_since"].isoformat() if row["live_since"] else None,
        "last_event_at": row["last_event_at"].isoformat() if row["last_event_at"] else None,
        "authorization_revoked": row["authorization_revoked_at"] is not None,
        # stored by the pulse, on the image origin only; a preview only while live
        "avatar_url": row.get("profile_image_url"),
        "preview_url": row.get("preview_url") if row["status"] == "live" else None,
    }
