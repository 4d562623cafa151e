"""Reconciling Twitch's EventSub subscriptions with what the companies' rosters need.

Wanted: for every broadcaster any company watches, each type ingestion stores, with its
version and condition (raids in both directions), plus one `user.authorization.revoke` for
the app. Twitch's list (all pages, only our callback) is compared with it: what is missing
is created (a 409 means it exists), what nobody needs is deleted, the rest is left alone.
A creation Twitch refuses with 403 (the broadcaster has not granted our client the type's
scope) is stored as status `authorization_missing` for that type, so the creator's tile and
the creators page can say what needs authorization; the next run tries again.
An empty roster never deletes everything: that is what a broken database read looks like.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from controlroom.errors import HelixError, SubscriptionExistsError
from controlroom.logs import fields

log = logging.getLogger(__name__)

# (type, version, the condition's shape: "b" is the broadcaster's id)
PER_BROADCASTER: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("stream.online", "1", {"broadcaster_user_id": "b"}),
    ("stream.offline", "1", {"broadcaster_user_id": "b"}),
    ("channel.update", "2", {"broadcaster_user_id": "b"}),
    ("channel.raid", "1", {"to_broadcaster_user_id": "b"}),
    ("channel.raid", "1", {"from_broadcaster_user_id": "b"}),
    ("channel.follow", "2", {"broadcaster_user_id": "b", "moderator_user_id": "b"}),
    ("channel.subscribe", "1", {"broadcaster_user_id": "b"}),
    ("channel.subscription.gift", "1", {"broadcaster_user_id": "b"}),
    ("channel.subscription.message", "1", {"broadcaster_user_id": "b"}),
    ("channel.cheer", "1", {"broadcaster_user_id": "b"}),
    ("channel.hype_train.begin", "2", {"broadcaster_user_id": "b"}),
    ("channel.hype_train.progress", "2", {"broadcaster_user_id": "b"}),
    ("channel.hype_train.end", "2", {"broadcaster_user_id": "b"}),
    ("channel.ban", "1", {"broadcaster_user_id": "b"}),
    ("channel.ad_break.begin", "1", {"broadcaster_user_id": "b"}),
    ("channel.poll.begin", "1", {"broadcaster_user_id": "b"}),
    ("channel.poll.end", "1", {"broadcaster_user_id": "b"}),
    ("channel.prediction.begin", "1", {"broadcaster_user_id": "b"}),
    ("channel.prediction.end", "1", {"broadcaster_user_id": "b"}),
    ("channel.shoutout.create", "1", {"broadcaster_user_id": "b", "moderator_user_id": "b"}),
)

AUTHORIZATION_MISSING = "authorization_missing"  # our status for a 403 from Twitch

Key = tuple[str, str, str]  # type, version, condition as canonical JSON


def key(sub_type: str, version: str, condition: dict[str, Any]) -> Key:
    return sub_type, version, json.dumps(condition, sort_keys=True, separators=(",", ":"))


def wanted(
    broadcasters: Iterable[str], client_id: str, chat_user_id: str | None = None
) -> set[Key]:
    keys = {key("user.authorization.revoke", "1", {"client_id": client_id})}
    for broadcaster in broadcasters:
        for sub_type, version, shape in PER_BROADCASTER:
            keys.add(key(sub_type, version, {k: broadcaster for k in shape}))
        if chat_user_id:
            condition = {"broadcaster_user_id": broadcaster, "user_id": chat_user_id}
            keys.add(key("channel.chat.message", "1", condition))
    return keys


class HelixPort(Protocol):
    def subscriptions(self) -> Iterable[dict[str, Any]]: ...

    def create_subscription(
        self, sub_type: str, version: str, condition: dict[str, str], callback: str, secret: str
    ) -> dict[str, Any]: ...

    def delete_subscription(self, subscription_id: str) -> None: ...


@dataclass
class Report:
    created: int = 0
    deleted: int = 0
    kept: int = 0
    already_existed: int = 0
    refused_to_empty: bool = False
    authorization_missing: int = 0
    failures: list[str] = field(default_factory=list)


StatusSink = Callable[[str, dict[str, Any]], None]  # (broadcaster id, subscription) -> record


def _broadcaster(condition: dict[str, Any]) -> str | None:
    for name in ("broadcaster_user_id", "to_broadcaster_user_id", "from_broadcaster_user_id"):
        if condition.get(name):
            return str(condition[name])
    return None


def reconcile(
    helix: HelixPort,
    broadcasters: list[str],
    *,
    client_id: str,
    callback: str,
    secret: str,
    record: StatusSink,
    chat_user_id: str | None = None,
) -> Report:
    """One reconciliation pass. RetryLaterError (429, 5xx, network) propagates: run again later."""
    report = Report()
    want = wanted(broadcasters, client_id, chat_user_id)
    ours = [
        s for s in helix.subscriptions() if (s.get("transport") or {}).get("callback") == callback
    ]
    have: dict[Key, dict[str, Any]] = {}
    for sub in ours:
        have[
            key(str(sub.get("type")), str(sub.get("version")), dict(sub.get("condition") or {}))
        ] = sub
    for k in sorted(want - set(have)):
        sub_type, version, condition_json = k
        condition = json.loads(condition_json)
        try:
            created = helix.create_subscription(sub_type, version, condition, callback, secret)
            report.created += 1
        except SubscriptionExistsError:
            report.already_existed += 1
            continue
        except HelixError as exc:
            if exc.status in (429,) or exc.status >= 500 or exc.status == 0:
                raise
            broadcaster = _broadcaster(condition)
            if exc.status == 403 and broadcaster:
                report.authorization_missing += 1
                refused = {"type": sub_type, "version": version, "condition": condition}
                record(broadcaster, {**refused, "status": AUTHORIZATION_MISSING})
                continue
            report.failures.append(f"{sub_type} {condition_json}: {exc}")
            continue
        broadcaster = _broadcaster(condition)
        if broadcaster:
            record(
                broadcaster,
                {**created, "type": sub_type, "version": version, "condition": condition},
            )
    orphans = [sub for k, sub in have.items() if k not in want]
    if not broadcasters and len(orphans) == len(have) and have:
        # an empty roster would delete every subscription: refuse, as a broken read looks the same
        report.refused_to_empty = True
        orphans = []
        log.warning("reconcile refused to delete every subscription", extra=fields(count=len(have)))
    for sub in orphans:
        helix.delete_subscription(str(sub.get("id")))
        report.deleted += 1
    for k, sub in have.items():
        if k in want:
            report.kept += 1
            broadcaster = _broadcaster(dict(sub.get("condition") or {}))
            if broadcaster:
                record(broadcaster, sub)
    log.info(
        "subscriptions reconciled",
        extra=fields(
            created=report.created,
            deleted=report.deleted,
            kept=report.kept,
            existed=report.already_existed,
            authorization_missing=report.authorization_missing,
            failures=len(report.failures),
        ),
    )
    return report


def look_again(helix: HelixPort, callback: str, record: StatusSink) -> int:
    """Record the current status of each of our subscriptions (a created one starts as
    `webhook_callback_verification_pending` and turns `enabled` once our webhook answered
    Twitch's challenge, seconds later). Returns how many were recorded."""
    seen = 0
    for sub in helix.subscriptions():
        if (sub.get("transport") or {}).get("callback") != callback:
            continue
        broadcaster = _broadcaster(dict(sub.get("condition") or {}))
        if broadcaster:
            record(broadcaster, sub)
            seen += 1
    return seen


def run(
    conn: Any,
    helix: HelixPort,
    *,
    client_id: str,
    callback: str,
    secret: str,
    chat_user_id: str | None = None,
    settle_seconds: float = 0.0,
) -> Report:
    """Reconcile against the rosters in PostgreSQL; statuses land in eventsub_subscriptions.

    With `settle_seconds`, a run that created subscriptions waits that long and records their
    statuses again, so a creator's tile shows them enabled without waiting for the next run.
    """
    from psycopg.types.json import Jsonb

    rows = conn.execute("SELECT broadcaster_user_id FROM watched_broadcasters()").fetchall()
    broadcasters = [r["broadcaster_user_id"] for r in rows]

    def record(broadcaster: str, sub: dict[str, Any]) -> None:
        with conn.transaction():
            conn.execute(
                "SELECT record_subscription_status(%s, %s, %s, %s, %s, %s, now())",
                (
                    broadcaster,
                    sub.get("type"),
                    sub.get("version"),
                    Jsonb(sub.get("condition") or {}),
                    sub.get("id"),
                    sub.get("status") or "unknown",
                ),
            )

    report = reconcile(
        helix,
        broadcasters,
        client_id=client_id,
        callback=callback,
        secret=secret,
        record=record,
        chat_user_id=chat_user_id,
    )
    if report.created and settle_seconds > 0:
        time.sleep(settle_seconds)
        look_again(helix, callback, record)
    return report
