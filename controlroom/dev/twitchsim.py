"""A Twitch stand-in: signed EventSub deliveries with realistic payloads, sent to a webhook.

Payload shapes follow Twitch's EventSub subscription-type reference; ids, names and amounts
are made up per call. Used by `controlroom trigger`, `controlroom simulate`, tests and
benchmarks.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlroom.core import eventsub

_VIEWERS = ("ninja_fan", "pog_enjoyer", "lurker_42", "clip_hunter", "hype_master", "speedy")


@dataclass(frozen=True)
class Broadcaster:
    user_id: str
    login: str

    @property
    def name(self) -> str:
        return self.login.capitalize()


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _user(rng: random.Random, prefix: str = "user") -> dict[str, str]:
    login = rng.choice(_VIEWERS) + str(rng.randint(1, 999))
    return {
        f"{prefix}_id": str(rng.randint(10_000, 99_999_999)),
        f"{prefix}_login": login,
        f"{prefix}_name": login.capitalize(),
    }


def _b(b: Broadcaster, prefix: str = "broadcaster_user") -> dict[str, str]:
    return {f"{prefix}_id": b.user_id, f"{prefix}_login": b.login, f"{prefix}_name": b.name}


_Builder = Callable[[Broadcaster, random.Random, datetime], tuple[dict[str, Any], dict[str, Any]]]


def _online(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {"id": str(rng.randint(10**9, 10**10)), **_b(b), "type": "live", "started_at": _ts(now)}
    return {"broadcaster_user_id": b.user_id}, event


def _offline(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"broadcaster_user_id": b.user_id}, _b(b)


def _update(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    category = rng.choice(
        [
            ("509658", "Just Chatting"),
            ("32982", "Grand Theft Auto V"),
            ("21779", "League of Legends"),
        ]
    )
    event = {
        **_b(b),
        "title": rng.choice(["Ranked grind", "Sponsored: new game launch!", "Chill Sunday"]),
        "language": "en",
        "category_id": category[0],
        "category_name": category[1],
        "content_classification_labels": [],
    }
    return {"broadcaster_user_id": b.user_id}, event


def _raid(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    raider = _user(rng, "from_broadcaster_user")
    event = {**raider, **_b(b, "to_broadcaster_user"), "viewers": rng.randint(5, 20_000)}
    return {"to_broadcaster_user_id": b.user_id}, event


def _follow(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {**_user(rng), **_b(b), "followed_at": _ts(now)}
    return {"broadcaster_user_id": b.user_id, "moderator_user_id": b.user_id}, event


def _subscribe(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {**_user(rng), **_b(b), "tier": rng.choice(["1000", "2000", "3000"]), "is_gift": False}
    return {"broadcaster_user_id": b.user_id}, event


def _gift(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    anonymous = rng.random() < 0.1
    gifter = {"user_id": None, "user_login": None, "user_name": None} if anonymous else _user(rng)
    event = {
        **gifter,
        **_b(b),
        "total": rng.choice([1, 5, 10, 20, 50]),
        "tier": "1000",
        "cumulative_total": None if anonymous else rng.randint(1, 500),
        "is_anonymous": anonymous,
    }
    return {"broadcaster_user_id": b.user_id}, event


def _resub(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        **_user(rng),
        **_b(b),
        "tier": "1000",
        "message": {"text": "Love the stream!", "emotes": []},
        "cumulative_months": rng.randint(2, 60),
        "streak_months": None,
        "duration_months": 1,
    }
    return {"broadcaster_user_id": b.user_id}, event


def _cheer(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        "is_anonymous": False,
        **_user(rng),
        **_b(b),
        "message": "Cheer100 great play",
        "bits": rng.choice([100, 500, 1000]),
    }
    return {"broadcaster_user_id": b.user_id}, event


def _hype(phase: str) -> _Builder:
    def build(
        b: Broadcaster, rng: random.Random, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        level = rng.randint(1, 5)
        event: dict[str, Any] = {
            "id": uuid.uuid5(uuid.NAMESPACE_URL, f"train:{b.user_id}:{now:%Y%m%d%H}").hex,
            **_b(b),
            "total": level * 500 + rng.randint(0, 499),
            "top_contributions": [{**_user(rng), "type": "bits", "total": 500}],
            "shared_train_participants": None,
            "level": level,
            "started_at": _ts(now - timedelta(minutes=3)),
            "is_shared_train": False,
            "type": "regular",
        }
        if phase == "end":
            event |= {"ended_at": _ts(now), "cooldown_ends_at": _ts(now + timedelta(hours=1))}
        else:
            event |= {"progress": 120, "goal": 500, "expires_at": _ts(now + timedelta(minutes=5))}
        return {"broadcaster_user_id": b.user_id}, event

    return build


def _ban(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    permanent = rng.random() < 0.3
    event = {
        **_user(rng),
        **_b(b),
        **_user(rng, "moderator_user"),
        "reason": "Spam",
        "banned_at": _ts(now),
        "ends_at": None if permanent else _ts(now + timedelta(minutes=10)),
        "is_permanent": permanent,
    }
    return {"broadcaster_user_id": b.user_id}, event


def _ad(b: Broadcaster, rng: random.Random, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        "duration_seconds": rng.choice([30, 60, 90]),
        "started_at": _ts(now),
        "is_automatic": True,
        **_b(b),
        **_b(b, "requester_user"),
    }
    return {"broadcaster_user_id": b.user_id}, event


def _chat(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        **_b(b),
        **_user(rng, "chatter_user"),
        "message_id": str(uuid.uuid4()),
        "message": {"text": "PogChamp", "fragments": [{"type": "text", "text": "PogChamp"}]},
        "color": "#00FF7F",
        "badges": [],
        "message_type": "text",
    }
    return {"broadcaster_user_id": b.user_id, "user_id": b.user_id}, event


def _poll(phase: str) -> _Builder:
    def build(
        b: Broadcaster, rng: random.Random, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        choices: list[dict[str, Any]] = [
            {"id": str(i), "title": t} for i, t in enumerate(["Yes", "No"])
        ]
        event: dict[str, Any] = {
            "id": str(rng.randint(10**6, 10**7)),
            **_b(b),
            "title": "Next game?",
            "started_at": _ts(now),
        }
        if phase == "end":
            for choice in choices:
                choice |= {"votes": rng.randint(0, 100), "bits_votes": 0, "channel_points_votes": 0}
            event |= {"choices": choices, "status": "completed", "ended_at": _ts(now)}
        else:
            event |= {"choices": choices, "ends_at": _ts(now + timedelta(minutes=2))}
        return {"broadcaster_user_id": b.user_id}, event

    return build


def _prediction(phase: str) -> _Builder:
    def build(
        b: Broadcaster, rng: random.Random, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        outcomes = [
            {"id": "o1", "title": "Win", "color": "blue"},
            {"id": "o2", "title": "Lose", "color": "pink"},
        ]
        event: dict[str, Any] = {
            "id": str(rng.randint(10**6, 10**7)),
            **_b(b),
            "title": "Will we win?",
            "outcomes": outcomes,
            "started_at": _ts(now),
        }
        if phase == "end":
            event |= {"winning_outcome_id": "o1", "status": "resolved", "ended_at": _ts(now)}
        else:
            event["locks_at"] = _ts(now + timedelta(minutes=5))
        return {"broadcaster_user_id": b.user_id}, event

    return build


def _shoutout(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        **_b(b),
        **_user(rng, "to_broadcaster_user"),
        **_user(rng, "moderator_user"),
        "viewer_count": rng.randint(1, 5000),
        "started_at": _ts(now),
        "cooldown_ends_at": _ts(now + timedelta(minutes=2)),
        "target_cooldown_ends_at": _ts(now + timedelta(hours=1)),
    }
    return {"broadcaster_user_id": b.user_id, "moderator_user_id": b.user_id}, event


def _auth_revoke(
    b: Broadcaster, rng: random.Random, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {
        "client_id": "crcontrolroomlocal",
        "user_id": b.user_id,
        "user_login": b.login,
        "user_name": b.name,
    }
    return {"client_id": "crcontrolroomlocal"}, event


BUILDERS: dict[str, tuple[str, _Builder]] = {
    "stream.online": ("1", _online),
    "stream.offline": ("1", _offline),
    "channel.update": ("2", _update),
    "channel.raid": ("1", _raid),
    "channel.follow": ("2", _follow),
    "channel.subscribe": ("1", _subscribe),
    "channel.subscription.gift": ("1", _gift),
    "channel.subscription.message": ("1", _resub),
    "channel.cheer": ("1", _cheer),
    "channel.hype_train.begin": ("2", _hype("begin")),
    "channel.hype_train.progress": ("2", _hype("progress")),
    "channel.hype_train.end": ("2", _hype("end")),
    "channel.ban": ("1", _ban),
    "channel.ad_break.begin": ("1", _ad),
    "channel.chat.message": ("1", _chat),
    "channel.poll.begin": ("1", _poll("begin")),
    "channel.poll.end": ("1", _poll("end")),
    "channel.prediction.begin": ("1", _prediction("begin")),
    "channel.prediction.end": ("1", _prediction("end")),
    "channel.shoutout.create": ("1", _shoutout),
    "user.authorization.revoke": ("1", _auth_revoke),
}


@dataclass(frozen=True)
class Delivery:
    """One signed delivery, ready to POST: what Twitch would send."""

    message_id: str
    headers: dict[str, str]
    body: bytes


def notification_body(
    sub_type: str,
    broadcaster: Broadcaster,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    if sub_type not in BUILDERS:
        raise KeyError(f"unknown type {sub_type!r}; known: {', '.join(sorted(BUILDERS))}")
    rng = rng or random.Random()
    now = now or datetime.now(UTC)
    version, build = BUILDERS[sub_type]
    condition, event = build(broadcaster, rng, now)
    return {
        "subscription": {
            "id": str(uuid.uuid4()),
            "type": sub_type,
            "version": version,
            "status": "enabled",
            "cost": 0,
            "condition": condition,
            "transport": {"method": "webhook", "callback": "https://example.com/webhooks/callback"},
            "created_at": _ts(now - timedelta(days=1)),
        },
        "event": event,
    }


def sign_delivery(
    body: dict[str, Any] | bytes,
    secret: str,
    *,
    message_type: str = eventsub.NOTIFICATION,
    message_id: str | None = None,
    timestamp: datetime | None = None,
    retry: int = 0,
) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    parsed = json.loads(raw)
    subscription = parsed.get("subscription", {}) if isinstance(parsed, dict) else {}
    message_id = message_id or str(uuid.uuid4())
    stamp = _ts(timestamp or datetime.now(UTC))
    headers = {
        eventsub.MESSAGE_ID: message_id,
        eventsub.MESSAGE_RETRY: str(retry),
        eventsub.MESSAGE_TYPE: message_type,
        eventsub.MESSAGE_SIGNATURE: eventsub.sign(secret.encode(), message_id, stamp, raw),
        eventsub.MESSAGE_TIMESTAMP: stamp,
        eventsub.SUBSCRIPTION_TYPE: str(subscription.get("type", "")),
        eventsub.SUBSCRIPTION_VERSION: str(subscription.get("version", "")),
        "Content-Type": "application/json",
    }
    return Delivery(message_id, headers, raw)


def post(url: str, delivery: Delivery, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST a delivery as Twitch would; returns (status, body) whatever the status."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be http(s)")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=delivery.body, headers=delivery.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


# A stream's everyday mix: mostly chat and audience, some money, a little of the rest.
TRAFFIC_MIX: dict[str, int] = {
    "channel.chat.message": 40,
    "channel.follow": 15,
    "channel.subscribe": 6,
    "channel.subscription.message": 6,
    "channel.subscription.gift": 6,
    "channel.cheer": 6,
    "channel.raid": 3,
    "channel.update": 2,
    "channel.hype_train.progress": 3,
    "channel.ban": 3,
    "channel.ad_break.begin": 2,
    "channel.poll.begin": 1,
    "channel.prediction.begin": 1,
    "channel.shoutout.create": 2,
    "stream.online": 2,
    "stream.offline": 2,
}


@dataclass
class SimulationReport:
    sent: int = 0
    accepted: int = 0
    duplicates_sent: int = 0
    refused: int = 0
    latencies_ms: list[float] | None = None


def simulate(
    url: str,
    secret: str,
    broadcasters: list[Broadcaster],
    *,
    rate: float,
    duration: float,
    duplicates: float = 0.0,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationReport:
    """Send deliveries at `rate` per second for `duration` seconds (bounded, then stops).

    A share `duplicates` of them is sent again with the same message id and Twitch's retry
    header raised, as Twitch does when it did not see a 2xx in time.
    """
    import concurrent.futures
    import time

    if rate <= 0 or duration <= 0 or not broadcasters:
        raise ValueError("rate, duration and at least one broadcaster are required")
    rng = random.Random(seed)
    types, weights = list(TRAFFIC_MIX), list(TRAFFIC_MIX.values())
    report = SimulationReport(latencies_ms=[])
    lock = threading.Lock()

    def send(delivery: Delivery) -> None:
        started = time.perf_counter()
        status, _ = post(url, delivery)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            report.sent += 1
            assert report.latencies_ms is not None
            report.latencies_ms.append(elapsed)
            if 200 <= status < 300:
                report.accepted += 1
            else:
                report.refused += 1

    total = int(rate * duration)
    start = time.monotonic()
    next_report = start + 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(total):
            due = start + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sub_type = rng.choices(types, weights)[0]
            body = notification_body(sub_type, rng.choice(broadcasters), rng)
            delivery = sign_delivery(body, secret)
            pool.submit(send, delivery)
            if rng.random() < duplicates:
                again = sign_delivery(
                    delivery.body, secret, message_id=delivery.message_id, retry=1
                )
                report.duplicates_sent += 1
                pool.submit(send, again)
            if progress and time.monotonic() >= next_report:
                next_report += 1
                progress(
                    f"{i + 1}/{total} deliveries sent, "
                    f"{report.accepted} accepted, {report.refused} refused"
                )
    return report


# --- audience: the Twitch stand-in's Get Streams, steered ----------------------------------
def set_stream(
    stand_in_url: str,
    user_id: str,
    viewers: int = 0,
    *,
    live: bool = True,
    login: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any] | None:
    """Start, update or end a broadcaster's stream in the Twitch stand-in's Get Streams
    (`stand_in_url` is its origin, e.g. HELIX_API_URL without `/helix`); returns the stream."""
    if not stand_in_url.startswith(("http://", "https://")):
        raise ValueError("the stand-in URL must be http(s)")
    change: dict[str, Any] = {"user_id": user_id, "viewers": viewers, "live": live}
    if login:
        change["user_login"] = login
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{stand_in_url.rstrip('/')}/control/streams",
        data=json.dumps(change).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer = json.loads(response.read())
    stream = answer.get("stream")
    return dict(stream) if stream else None


class ViewerDrift:
    """Plausible audiences for simulated streams: each starts somewhere between a few dozen
    and a few thousand viewers and drifts by a few percent a step, with a rare larger swing
    (a raid arriving, a stream ending a segment)."""

    def __init__(self, broadcasters: list[Broadcaster], rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.viewers = {
            b.user_id: int(self.rng.lognormvariate(6.0, 1.0)) + 20 for b in broadcasters
        }

    def step(self) -> dict[str, int]:
        for user_id, count in self.viewers.items():
            change = self.rng.gauss(0.0, 0.03)
            if self.rng.random() < 0.02:
                change += self.rng.choice((-0.4, 0.5))
            self.viewers[user_id] = max(0, round(count * (1.0 + change)))
        return dict(self.viewers)


def drift_viewers(
    stand_in_url: str,
    broadcasters: list[Broadcaster],
    stop: threading.Event,
    interval: float = 5.0,
    rng: random.Random | None = None,
) -> int:
    """Keep `broadcasters` live in the stand-in with drifting viewer counts until `stop`;
    returns how many updates were made (the streams stay live afterwards, as they are)."""
    drift = ViewerDrift(broadcasters, rng)
    logins = {b.user_id: b.login for b in broadcasters}
    updates = 0
    while True:
        for user_id, viewers in drift.step().items():
            try:
                set_stream(stand_in_url, user_id, viewers, login=logins[user_id])
            except OSError:
                return updates  # the stand-in is gone: nothing left to steer
            updates += 1
        if stop.wait(interval):
            return updates
