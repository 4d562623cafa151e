from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from controlroom import errors
from controlroom.core import events
from controlroom.dev import twitchsim
from tests.samples import load, message, sample_names

SENT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

# What each reference sample must yield: (topic, broadcaster, summary subset, dedup key)
EXPECTED: dict[str, tuple[str, str, dict[str, Any], str | None]] = {
    "channel.ad_break.begin": (
        "stream",
        "1337",
        {"duration_seconds": 60, "outcome": "manual", "actor_login": "cool_user"},
        None,
    ),
    "channel.ban": (
        "moderation",
        "1337",
        {
            "target_login": "cool_user",
            "actor_login": "mod_user",
            "duration_seconds": 60,
            "message_text": "Offensive language",
            "outcome": "timeout",
        },
        None,
    ),
    "channel.chat.message": (
        "engagement",
        "1971641",
        {"actor_login": "viewer32", "message_text": "Hi chat"},
        "chat:cc106a89-1814-919d-454c-f4f2f970aae7",
    ),
    "channel.cheer": (
        "monetization",
        "1337",
        {"amount": 1000, "actor_login": "cool_user", "message_text": "pogchamp"},
        None,
    ),
    "channel.follow": ("audience", "1337", {"actor_login": "cool_user"}, None),
    "channel.hype_train.begin": (
        "monetization",
        "1337",
        {"amount": 137, "level": 1},
        "channel.hype_train.begin:1b0AsbInCHZW2SQFQkCzqN07Ib2",
    ),
    "channel.hype_train.end": (
        "monetization",
        "1337",
        {"amount": 137, "level": 1},
        "channel.hype_train.end:1b0AsbInCHZW2SQFQkCzqN07Ib2",
    ),
    "channel.poll.begin": (
        "engagement",
        "1337",
        {"title": "Aren\u2019t shoes just really hard socks?"},
        "channel.poll.begin:1243456",
    ),
    "channel.prediction.begin": (
        "engagement",
        "1337",
        {"title": "Aren\u2019t shoes just really hard socks?"},
        "channel.prediction.begin:1243456",
    ),
    "channel.raid": (
        "audience",
        "1337",
        {"amount": 9001, "actor_login": "cool_user", "outcome": "incoming"},
        None,
    ),
    "channel.subscribe": (
        "monetization",
        "1337",
        {"tier": "1000", "actor_login": "cool_user"},
        None,
    ),
    "channel.subscription.gift": ("monetization", "1337", {"amount": 2, "tier": "1000"}, None),
    "channel.subscription.message": (
        "monetization",
        "1337",
        {"amount": 15, "message_text": "Love the stream! FevziGG"},
        None,
    ),
    "channel.update": (
        "stream",
        "1337",
        {"title": "Best Stream Ever", "category_name": "Grand Theft Auto"},
        None,
    ),
    "stream.offline": ("stream", "1337", {}, "stream.offline:9001"),
    "stream.online": ("stream", "1337", {"outcome": "live"}, "stream.online:9001"),
}


def test_every_reference_sample_is_covered() -> None:
    assert set(sample_names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_samples_normalize(name: str) -> None:
    (event,) = events.normalize_notification(load(name), SENT)
    topic, broadcaster, summary, dedup = EXPECTED[name]
    assert event.type == name
    assert event.topic == topic
    assert event.broadcaster_user_id == broadcaster
    assert {k: event.summary.get(k) for k in summary} == summary
    assert event.dedup_key == dedup
    assert event.event == load(name)["event"]


def test_event_times_come_from_the_event_when_it_has_one() -> None:
    (online,) = events.normalize_notification(load("stream.online"), SENT)
    assert online.occurred_at == datetime(2020, 10, 11, 10, 11, 12, 123000, tzinfo=UTC)
    assert online.state == events.StateChange(status="live", live_since=online.occurred_at)
    (offline,) = events.normalize_notification(load("stream.offline"), SENT)
    assert offline.occurred_at == SENT
    assert offline.state is not None and offline.state.status == "offline"


@pytest.mark.parametrize("sub_type", sorted(twitchsim.BUILDERS))
def test_every_listed_type_normalizes_with_its_own_builder(sub_type: str) -> None:
    body = twitchsim.notification_body(sub_type, twitchsim.Broadcaster("4242", "someone"))
    (event,) = events.normalize_notification(body, SENT)
    assert event.topic != "other", "fell back to the generic summary"
    assert event.broadcaster_user_id == "4242"


def test_outgoing_raid_belongs_to_the_raider() -> None:
    body = load("channel.raid")
    body["subscription"]["condition"] = {"from_broadcaster_user_id": "1234"}
    (event,) = events.normalize_notification(body, SENT)
    assert event.broadcaster_user_id == "1234"
    assert event.summary["outcome"] == "outgoing"
    assert event.summary["target_login"] == "cooler_user"


def test_unknown_type_and_unknown_version_are_kept_generically() -> None:
    body = load("channel.follow")
    body["subscription"]["version"] = "9"
    (event,) = events.normalize_notification(body, SENT)
    assert (event.topic, event.version, event.broadcaster_user_id) == ("other", "9", "1337")
    strange = {
        "subscription": {
            "type": "channel.future_thing",
            "version": "1",
            "condition": {"to_broadcaster_user_id": "77"},
        },
        "event": {"whatever": [1, 2, 3]},
    }
    (event,) = events.normalize_notification(strange, SENT)
    assert (event.type, event.broadcaster_user_id, dict(event.summary)) == (
        "channel.future_thing",
        "77",
        {},
    )


def test_lenient_parsing() -> None:
    body = load("channel.subscription.gift")
    body["event"].update(
        user_id=None, user_login=None, user_name=None, is_anonymous=True, extra={"new": 1}
    )
    (event,) = events.normalize_notification(body, SENT)
    assert event.summary == {"amount": 2, "tier": "1000", "outcome": "anonymous"}


def test_batched_events_form() -> None:
    body = load("channel.follow")
    first = body.pop("event")
    body["events"] = [first, {**first, "user_login": "second_user"}]
    batch = events.normalize_notification(body, SENT)
    assert [e.summary["actor_login"] for e in batch] == ["cool_user", "second_user"]


@pytest.mark.parametrize(
    "body",
    [
        {"subscription": {"type": "channel.follow", "version": "2"}},
        {"subscription": {}, "event": {"broadcaster_user_id": "1"}},
        {"subscription": {"type": "channel.follow", "version": "2"}, "event": {"user_id": "5"}},
    ],
)
def test_unroutable_notifications_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(errors.NormalizationError):
        events.normalize_notification(body, SENT)


def test_poll_and_prediction_outcomes() -> None:
    poll = twitchsim.notification_body("channel.poll.end", twitchsim.Broadcaster("1", "a"))
    poll["event"]["choices"][0]["votes"], poll["event"]["choices"][1]["votes"] = 3, 9
    (event,) = events.normalize_notification(poll, SENT)
    assert event.summary["outcome"] == "completed: No"
    prediction = twitchsim.notification_body(
        "channel.prediction.end", twitchsim.Broadcaster("1", "a")
    )
    (event,) = events.normalize_notification(prediction, SENT)
    assert event.summary["outcome"] == "resolved: Win"


def test_permanent_ban_has_no_duration() -> None:
    body = load("channel.ban")
    body["event"].update(is_permanent=True, ends_at=None)
    (event,) = events.normalize_notification(body, SENT)
    assert event.summary["outcome"] == "permanent"
    assert "duration_seconds" not in event.summary


def test_authorization_revoke_marks_the_creator() -> None:
    body = twitchsim.notification_body(
        "user.authorization.revoke", twitchsim.Broadcaster("55", "gone")
    )
    body["event"]["user_login"] = None  # Twitch may null it
    (event,) = events.normalize_notification(body, SENT)
    assert event.broadcaster_user_id == "55"
    assert event.state == events.StateChange(authorization_revoked=True)


def test_revocation_becomes_a_platform_event() -> None:
    event = events.normalize_revocation(json.loads(message("revocation")), SENT)
    assert (event.type, event.topic, event.broadcaster_user_id) == (
        "subscription.revoked",
        "platform",
        "12826",
    )
    assert event.summary == {
        "title": "channel.follow",
        "outcome": "authorization_revoked",
        "message_text": "1",
    }


def test_compact_event_shape() -> None:
    row = {
        "seq": 7,
        "type": "channel.cheer",
        "version": "1",
        "topic": "monetization",
        "creator_id": None,
        "broadcaster_user_id": "1",
        "occurred_at": SENT,
        "amount": 100,
        "actor_login": "x",
        "title": None,
    }
    assert events.compact(row) == {
        "seq": 7,
        "type": "channel.cheer",
        "version": "1",
        "topic": "monetization",
        "creator_id": None,
        "broadcaster_user_id": "1",
        "occurred_at": SENT.isoformat(),
        "summary": {"amount": 100, "actor_login": "x"},
    }


# --- found by `make fuzz` (tests/fuzz): each raised out of the normalizer (persist's 500) or
# produced a value its column cannot hold ----------------------------------------------------


@pytest.mark.parametrize("bits", ["\u00b2", "--5", float("nan"), float("inf"), [], {"a": 1}])
def test_counts_that_are_not_integers_are_dropped(bits: Any) -> None:
    body = load("channel.cheer")
    body["event"]["bits"] = bits
    (event,) = events.normalize_notification(body, SENT)
    assert "amount" not in event.summary


@pytest.mark.parametrize(
    ("bits", "expected"), [(" 7 ", 7), ("-3", -3), (12.9, 12), (True, 1), (2**63 - 1, 2**63 - 1)]
)
def test_counts_that_are_integers_are_kept(bits: Any, expected: int) -> None:
    body = load("channel.cheer")
    body["event"]["bits"] = bits
    (event,) = events.normalize_notification(body, SENT)
    assert event.summary["amount"] == expected


def test_counts_beyond_their_column_are_dropped() -> None:
    cheer = load("channel.cheer")
    cheer["event"]["bits"] = 2**63  # amount is a bigint
    (event,) = events.normalize_notification(cheer, SENT)
    assert "amount" not in event.summary
    ban = load("channel.ban")
    ban["event"]["ends_at"] = "9999-12-31T23:59:59Z"  # duration_seconds is an integer
    (event,) = events.normalize_notification(ban, SENT)
    assert "duration_seconds" not in event.summary and event.summary["outcome"] == "timeout"


@pytest.mark.parametrize("value", [5, True, 1.5, "abc", {"id": "1"}])
def test_choices_and_outcomes_that_are_not_lists_are_ignored(value: Any) -> None:
    for sub_type, key in (("channel.poll.end", "choices"), ("channel.prediction.end", "outcomes")):
        body = twitchsim.notification_body(sub_type, twitchsim.Broadcaster("1", "a"))
        body["event"][key] = value
        (event,) = events.normalize_notification(body, SENT)
        assert event.broadcaster_user_id == "1"


def test_text_postgresql_refuses_becomes_the_replacement_character() -> None:
    body = json.loads(
        '{"subscription": {"type": "channel.chat.message", "version": "1", "condition": {}},'
        ' "event": {"broadcaster_user_id": "1971641", "chatter_user_login": "nul\\u0000user",'
        ' "message": {"text": "a\\u0000b\\ud800c", "fragments": [{"text": "\\u0000"}]},'
        ' "extra\\u0000key": {"deep": ["\\udfff", "ok \\ud83d\\ude00"]}}}'
    )
    (event,) = events.normalize_notification(body, SENT)
    assert event.summary["message_text"] == "a\ufffdb\ufffdc"
    assert event.summary["actor_login"] == "nul\ufffduser"
    assert event.event["message"]["fragments"] == [{"text": "\ufffd"}]
    assert event.event["extra\ufffdkey"] == {"deep": ["\ufffd", "ok \U0001f600"]}
    assert "\x00" not in json.dumps(event.event, ensure_ascii=False)
    # the caller's parsed body is left as it was
    assert body["event"]["message"]["text"] == "a\x00b\ud800c"


def test_a_revocation_is_made_storable_too() -> None:
    body = json.loads(message("revocation"))
    body["subscription"]["condition"]["note"] = "x\x00y"
    event = events.normalize_revocation(body, SENT)
    assert event.event["condition"]["note"] == "x\ufffdy"


def test_storable_leaves_everything_else_alone() -> None:
    value = {"n": 1, "f": 1.5, "b": True, "z": None, "s": "plain é \U0001f600", "l": [[]]}
    assert events.storable(value) == value
