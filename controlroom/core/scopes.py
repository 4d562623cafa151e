"""Which OAuth scopes a broadcaster must grant our Twitch client for each EventSub type, and the
human topic label each type is shown under.

From Twitch's EventSub subscription-type reference ("Authorization" of each type): with an app
access token (webhooks), a type that names scopes needs the broadcaster in its condition to
have granted our client one of them. The first scope of each tuple is the read-only one we ask
for; the others also satisfy Twitch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

# type -> scopes of which any one suffices; () means Twitch needs no authorization
SCOPES: dict[str, tuple[str, ...]] = {
    "stream.online": (),
    "stream.offline": (),
    "channel.update": (),
    "channel.raid": (),
    "channel.follow": ("moderator:read:followers",),
    "channel.subscribe": ("channel:read:subscriptions",),
    "channel.subscription.gift": ("channel:read:subscriptions",),
    "channel.subscription.message": ("channel:read:subscriptions",),
    "channel.cheer": ("bits:read",),
    "channel.hype_train.begin": ("channel:read:hype_train",),
    "channel.hype_train.progress": ("channel:read:hype_train",),
    "channel.hype_train.end": ("channel:read:hype_train",),
    "channel.ban": ("channel:moderate",),
    "channel.ad_break.begin": ("channel:read:ads", "channel:manage:ads"),
    "channel.poll.begin": ("channel:read:polls", "channel:manage:polls"),
    "channel.poll.end": ("channel:read:polls", "channel:manage:polls"),
    "channel.prediction.begin": ("channel:read:predictions", "channel:manage:predictions"),
    "channel.prediction.end": ("channel:read:predictions", "channel:manage:predictions"),
    "channel.shoutout.create": ("moderator:read:shoutouts", "moderator:manage:shoutouts"),
    # chat is read as our chat user (its own user:read:chat and user:bot); the broadcaster's
    # channel:bot is one of two ways (the other: our user is a moderator), so not asked here
    "channel.chat.message": (),
    "user.authorization.revoke": (),
}

# type -> what a person calls it (several types share a label)
LABELS: dict[str, str] = {
    "stream.online": "live status",
    "stream.offline": "live status",
    "channel.update": "channel details",
    "channel.raid": "raids",
    "channel.follow": "follows",
    "channel.subscribe": "subscriptions",
    "channel.subscription.gift": "subscriptions",
    "channel.subscription.message": "subscriptions",
    "channel.cheer": "bits",
    "channel.hype_train.begin": "hype trains",
    "channel.hype_train.progress": "hype trains",
    "channel.hype_train.end": "hype trains",
    "channel.ban": "bans",
    "channel.ad_break.begin": "ad breaks",
    "channel.poll.begin": "polls",
    "channel.poll.end": "polls",
    "channel.prediction.begin": "predictions",
    "channel.prediction.end": "predictions",
    "channel.shoutout.create": "shoutouts",
    "channel.chat.message": "chat",
    "user.authorization.revoke": "authorization",
}

# the order labels are listed in (the order of LABELS' first appearance)
_ORDER = {label: i for i, label in enumerate(dict.fromkeys(LABELS.values()))}


def required(sub_type: str) -> tuple[str, ...]:
    """The scopes of which any one lets us subscribe to `sub_type` (empty: none needed)."""
    return SCOPES.get(sub_type, ())


def satisfied(sub_type: str, granted: Iterable[str]) -> bool:
    needed = required(sub_type)
    return not needed or not set(needed).isdisjoint(granted)


def requested(types: Iterable[str]) -> list[str]:
    """The scopes a consent asks for so every type in `types` can be subscribed to."""
    return sorted({required(t)[0] for t in types if required(t)})


def label(sub_type: str) -> str:
    return LABELS.get(sub_type, sub_type)


def labels(types: Iterable[str]) -> list[str]:
    """Distinct labels of `types`, in a stable, human order."""
    return labels_in_order(label(t) for t in types)


def missing(types: Iterable[str], granted: Iterable[str]) -> list[str]:
    """Labels of the types in `types` that `granted` does not cover."""
    have = set(granted)
    return labels(t for t in types if not satisfied(t, have))


def scope_labels(scopes: Iterable[str]) -> list[str]:
    """What granting `scopes` lets us see, as labels (for the consent page)."""
    have = set(scopes)
    return labels(t for t, needed in SCOPES.items() if needed and not set(needed).isdisjoint(have))


# --- what a creator's tile and the creators page show --------------------------------------
ENABLED = "enabled"
PENDING = "webhook_callback_verification_pending"
# statuses that mean the broadcaster's grant is missing or gone (ours, and Twitch's revocations)
NEEDS_AUTHORIZATION = frozenset({"authorization_missing", "authorization_revoked", "user_removed"})


def health(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Subscription health by label from (type, status) rows: a label is as bad as its worst
    type (needs authorization, then failing, then pending, then enabled)."""
    rank: dict[str, int] = {}
    for sub_type, status in rows:
        if sub_type == "user.authorization.revoke":
            continue
        if status in NEEDS_AUTHORIZATION:
            worst = 3
        elif status == ENABLED:
            worst = 0
        elif status == PENDING:
            worst = 1
        else:
            worst = 2
        name = label(sub_type)
        rank[name] = max(rank.get(name, 0), worst)
    buckets: dict[str, list[str]] = {
        "enabled": [],
        "needs_authorization": [],
        "failing": [],
        "pending": [],
    }
    names = ("enabled", "pending", "failing", "needs_authorization")
    for name in labels_in_order(rank):
        buckets[names[rank[name]]].append(name)
    return buckets


def labels_in_order(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda name: (_ORDER.get(name, len(_ORDER)), name))


def authorization_status(
    granted: Iterable[str] | None,
    granted_at: datetime | None,
    revoked_at: datetime | None,
) -> str:
    """connected | partial | not_connected | disconnected: a revocation newer than the last
    grant means disconnected."""
    if revoked_at is not None and (granted_at is None or revoked_at > granted_at):
        return "disconnected"
    if granted_at is None:
        return "not_connected"
    return "partial" if missing(SCOPES, granted or ()) else "connected"
