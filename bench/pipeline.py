"""Webhook received -> event published: p50/p99 through the whole local pipeline at a set rate.

Deliveries go to the webhook at a steady rate; a Redis subscriber on the company's channel
sees each compact event as a relay instance watching the company would. Latency is from the
moment the POST starts to the moment the published event arrives. The baseline is the same
deliveries POSTed straight to persist, skipping the webhook, the ledger and the Cloud Tasks
stand-in (which dispatches a task as soon as it is due, as Cloud Tasks does).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.emitter import CHANNEL
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack


class _Watcher:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        # the manager's channel and every company's (socketio:company:<id>)
        self.pubsub.psubscribe(f"{CHANNEL}*")
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            now = time.perf_counter()
            data = json.loads(message["data"])
            if data.get("event") == "event":
                payload = data["data"]  # python-socketio sends the emit's arguments as a list
                payload = payload[0] if isinstance(payload, list) else payload
                login = payload["summary"].get("actor_login")
                if login:
                    self.arrived[login] = now

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.pubsub.close()
        self.client.close()


def _measure(send: object, count: int, rate: float, watcher: _Watcher, tag: str) -> list[float]:
    creators = [twitchsim.Broadcaster(i, login) for i, login, _ in seed.DEMO_CREATORS]
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        body = twitchsim.notification_body("channel.cheer", creators[i % len(creators)])
        login = f"{tag}{i}"
        body["event"]["user_login"] = login
        sent[login] = time.perf_counter()
        send(body)  # type: ignore[operator]
    deadline = time.perf_counter() + 30
    while len([k for k in sent if k in watcher.arrived]) < count and time.perf_counter() < deadline:
        time.sleep(0.05)
    return [(watcher.arrived[k] - t) * 1000 for k, t in sent.items() if k in watcher.arrived]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def run(quick: bool = False) -> dict[str, float]:
    rate, count = 20.0, (100 if quick else 600)
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), durable=True, services=True)
        endpoints = stack.start()
        try:
            env = endpoints.env()
            with db.connect(settings.DatabaseSettings.from_env(env)) as conn:
                seed.seed_demo(conn)
            watcher = _Watcher(endpoints.redis_url)
            secret = endpoints.eventsub_secret

            def via_webhook(body: dict[str, object]) -> None:
                status, _ = twitchsim.post(
                    env["WEBHOOK_URL"], twitchsim.sign_delivery(body, secret)
                )
                assert status == 204

            def straight_to_persist(body: dict[str, object]) -> None:
                d = twitchsim.sign_delivery(body, secret)
                delivery = eventsub.verify_delivery(
                    d.headers, d.body, [secret.encode()], datetime.now(UTC)
                )
                task = twitchsim.Delivery(
                    d.message_id,
                    {"Content-Type": "application/json"},
                    PersistTask.from_delivery(delivery, datetime.now(UTC)).encode(),
                )
                status, _ = twitchsim.post(env["PERSIST_URL"], task)
                assert status == 204

            full = _measure(via_webhook, count, rate, watcher, "w")
            direct = _measure(straight_to_persist, count, rate, watcher, "p")
            watcher.close()
        finally:
            stack.stop()
    print(f"{count} deliveries at {rate:.0f}/s; latency from POST to the event published on Redis")
    print(f"{'':<50}{'received':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, values in (
        ("webhook -> Firestore + Cloud Tasks -> persist", full),
        ("persist called directly (baseline)", direct),
    ):
        p50, p99 = statistics.median(values), _pct(values, 0.99)
        print(f"{label:<50}{len(values):>10}{p50:>10.1f}{p99:>10.1f}")
    return {"p50": statistics.median(full), "p99": _pct(full, 0.99)}
