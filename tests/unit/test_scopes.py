"""The EventSub type -> scope map and its human labels."""

from __future__ import annotations

from controlroom.core import scopes
from controlroom.usecases.subscriptions import PER_BROADCASTER


def test_every_type_we_subscribe_to_is_mapped_and_labelled() -> None:
    for sub_type, _version, _shape in PER_BROADCASTER:
        assert sub_type in scopes.SCOPES
        assert sub_type in scopes.LABELS


def test_types_without_authorization_need_nothing() -> None:
    for sub_type in ("stream.online", "stream.offline", "channel.update", "channel.raid"):
        assert scopes.required(sub_type) == ()
        assert scopes.satisfied(sub_type, [])


def test_any_alternative_satisfies() -> None:
    assert scopes.satisfied("channel.poll.begin", ["channel:manage:polls"])
    assert scopes.satisfied("channel.poll.begin", ["channel:read:polls"])
    assert not scopes.satisfied("channel.poll.begin", ["channel:read:predictions"])
    assert not scopes.satisfied("channel.follow", [])
    assert scopes.satisfied("channel.follow", {"moderator:read:followers"})


def test_requested_scopes_are_the_read_only_ones_once_each() -> None:
    wanted = scopes.requested(t for t, _v, _s in PER_BROADCASTER)
    assert wanted == sorted(
        {
            "moderator:read:followers",
            "channel:read:subscriptions",
            "bits:read",
            "channel:read:hype_train",
            "channel:moderate",
            "channel:read:ads",
            "channel:read:polls",
            "channel:read:predictions",
            "moderator:read:shoutouts",
        }
    )
    assert not any(":manage:" in s for s in wanted)


def test_labels_are_distinct_and_ordered() -> None:
    types = ["channel.cheer", "channel.subscribe", "channel.follow", "channel.subscription.gift"]
    assert scopes.labels(types) == ["follows", "subscriptions", "bits"]
    assert scopes.label("unknown.type") == "unknown.type"


def test_missing_labels_for_a_partial_grant() -> None:
    types = [t for t, _v, _s in PER_BROADCASTER]
    granted = ["moderator:read:followers", "channel:read:polls"]
    missing = scopes.missing(types, granted)
    assert "follows" not in missing and "polls" not in missing
    assert missing[:3] == ["subscriptions", "bits", "hype trains"]
    assert "live status" not in missing
    assert scopes.missing(types, scopes.requested(types)) == []
    assert scopes.scope_labels(["bits:read", "channel:read:subscriptions"]) == [
        "subscriptions",
        "bits",
    ]


def test_health_buckets_a_label_by_its_worst_type() -> None:
    rows = [
        ("stream.online", "enabled"),
        ("stream.offline", "enabled"),
        ("channel.subscribe", "enabled"),
        ("channel.subscription.gift", "authorization_missing"),
        ("channel.cheer", "authorization_revoked"),
        ("channel.follow", "webhook_callback_verification_pending"),
        ("channel.ban", "notification_failures_exceeded"),
        ("user.authorization.revoke", "enabled"),
    ]
    assert scopes.health(rows) == {
        "enabled": ["live status"],
        "needs_authorization": ["subscriptions", "bits"],
        "failing": ["bans"],
        "pending": ["follows"],
    }
    assert scopes.health([]) == {
        "enabled": [],
        "needs_authorization": [],
        "failing": [],
        "pending": [],
    }


def test_authorization_status() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    everything = scopes.requested(scopes.SCOPES)
    assert scopes.authorization_status(None, None, None) == "not_connected"
    assert scopes.authorization_status(everything, now, None) == "connected"
    assert scopes.authorization_status(["bits:read"], now, None) == "partial"
    assert scopes.authorization_status(everything, now, now + timedelta(seconds=1)) == (
        "disconnected"
    )
    assert scopes.authorization_status(everything, now, now - timedelta(days=1)) == "connected"
    assert scopes.authorization_status(None, None, now) == "disconnected"
