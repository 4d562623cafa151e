"""Webhook POST → incident on the dashboard and → the alert at the sink, p50/p99, with and
without 50 deliveries per second of ordinary traffic beside it.

The whole local stack runs (webhook, the Cloud Tasks stand-in, persist, the relay, the notify
queue and functions/notify, the notification sink). A company watches 60 creators and has a
Discord and a Slack channel pointing at the sink; its viewer has the wall open in Chromium.
Every 1.5 s a raid of 5,000 viewers goes to the next creator, each from a raider of its own
name, so each opens one incident. In the page a MutationObserver notes when each incident's
row first appears (Date.now()); the sink notes when each post arrived. Both clocks are this
machine's, as is the one that notes when each POST started.

Background traffic: chat, cheers, subscriptions and the odd follow, spread over 20 other
creators at 50 deliveries per second (below every rule's threshold), for as long as the raids
last. The baseline is the same raids with nothing beside them, measured first, in one run.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The first time each incident row appears in the panel, by its title.
OBSERVER = """
window.__seen = {};
const note = () => document.querySelectorAll('[data-testid=incident]').forEach(row => {
  const m = row.textContent.match(/Raid from (\\w+)/);
  if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = Date.now();
});
new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
note();
"""
BACKGROUND = ["channel.chat.message"] * 6 + ["channel.cheer", "channel.subscribe", "channel.follow"]


def _company(cfg: settings.DatabaseSettings, targets: int, others: int) -> tuple[uuid.UUID, str]:
    company = uuid.uuid4()
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, 'Bench Agency', 'bench-agency')",
            (company,),
        )
        for subject, role in (("bench-admin", "admin"), ("bench-viewer", "viewer")):
            user = conn.execute(
                "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                (company, subject),
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
                (company, user, role),
            )
        for i in range(targets + others):
            kind = "target" if i < targets else "other"
            conn.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                "VALUES (%s, %s, %s, %s)",
                (company, str(9_100_000 + i), f"{kind}_{i}", f"{kind.title()} {i}"),
            )
    return company, "bench-viewer"


def _api(base: str, token: str, path: str, body: Any) -> None:
    request = urllib.request.Request(  # noqa: S310 - the stack's own loopback URL
        f"{base}/api{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


class _Background:
    """Ordinary traffic at a steady rate until stopped, from a few senders (a POST takes tens
    of milliseconds, so one sender alone cannot keep 50 a second); counts what was accepted."""

    SENDERS = 4

    def __init__(self, env: dict[str, str], rate: float, creators: list[int]) -> None:
        self.env, self.rate, self.creators = env, rate, creators
        self.stop = threading.Event()
        self.sent = self.accepted = 0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.SENDERS)
        ]
        self.started = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        for t in self._threads:
            t.start()

    def join(self, timeout: float) -> None:
        for t in self._threads:
            t.join(timeout)

    def achieved(self) -> float:
        return self.sent / max(1e-9, time.perf_counter() - self.started)

    def _send(self, n: int) -> None:
        rng = random.Random(n)
        each = self.rate / self.SENDERS
        mine = 0
        while not self.stop.is_set():
            pause = self.started + mine / each - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            i = rng.choice(self.creators)
            b = twitchsim.Broadcaster(str(9_100_000 + i), f"other_{i}")
            body = twitchsim.notification_body(rng.choice(BACKGROUND), b, rng)
            status, _ = twitchsim.post(
                self.env["WEBHOOK_URL"], twitchsim.sign_delivery(body, self.env["EVENTSUB_SECRET"])
            )
            mine += 1
            with self._lock:
                self.sent += 1
                self.accepted += status == 204


def _raids(
    env: dict[str, str], page: Page, first: int, count: int, tag: str, *, every: float = 1.5
) -> dict[str, float]:
    sent: dict[str, float] = {}
    for n in range(count):
        i = first + n
        raider = f"{tag}raider{i}"
        b = twitchsim.Broadcaster(str(9_100_000 + i), f"target_{i}")
        body = twitchsim.notification_body("channel.raid", b)
        body["event"].update(
            viewers=5000, from_broadcaster_user_login=raider, from_broadcaster_user_name=raider
        )
        delivery = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
        sent[raider] = time.time()
        status, _ = twitchsim.post(env["WEBHOOK_URL"], delivery)
        assert status == 204
        page.wait_for_timeout(every * 1000)  # lets the page run meanwhile
    return sent


def _arrivals(sink_url: str, path: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{sink_url}messages.json", timeout=10) as answer:  # noqa: S310
        messages = json.loads(answer.read())
    out: dict[str, float] = {}
    for m in messages:
        if m["path"] != path:
            continue
        text = json.dumps(m["body"])
        for word in text.replace('"', " ").split():
            if "raider" in word:
                name = word.strip(".,*_()")
                out.setdefault(name, datetime.fromisoformat(m["received_at"]).timestamp())
    return out


def _collect(
    page: Page, sink_url: str, paths: list[str], sent: dict[str, float]
) -> dict[str, list[float]]:
    """Milliseconds from each POST to its row in the page and to its post at each path."""

    def shown() -> bool:
        return set(sent) <= set(page.evaluate("window.__seen"))

    def posted() -> bool:
        return all(set(sent) <= set(_arrivals(sink_url, p)) for p in paths)

    _wait(shown, 60)
    _wait(posted, 60)
    seen = page.evaluate("window.__seen")
    row = {"browser": [(seen[k] / 1000 - t) * 1000 for k, t in sent.items() if k in seen]}
    for path in paths:
        got = _arrivals(sink_url, path)
        row[path] = [(got[k] - t) * 1000 for k, t in sent.items() if k in got]
    return row


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def _wait(check: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.5)


def run(quick: bool = False) -> dict[str, float]:
    baseline_count, loaded_count = (5, 10) if quick else (15, 40)
    rate = 50.0
    results: dict[str, dict[str, list[float]]] = {}
    # the dashboard signs in with a development token (as the browser tests do)
    os.environ.setdefault("DEV_TOKEN_SIGN_IN", "true")
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), services=True)
        endpoints = stack.start()
        try:
            env = endpoints.env()
            assert endpoints.relay_url
            company, viewer = _company(
                settings.DatabaseSettings.from_env(env), baseline_count + loaded_count, 20
            )
            admin = stack.keys.token("bench-admin", company, "admin")
            paths = ["/discord/bench", "/slack/bench"]
            for path in paths:
                kind = path.split("/")[1]
                _api(
                    endpoints.relay_url,
                    admin,
                    "/notification-channels",
                    {
                        "kind": kind,
                        "name": f"bench {kind}",
                        "enabled": True,
                        "url": stack.sink.channel_url(kind, "bench"),
                        "min_severity": "warning",
                    },
                )
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True
                )
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                page.goto(
                    f"{endpoints.relay_url}/#token={stack.keys.token(viewer, company, 'viewer')}"
                )
                page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=20_000)
                page.evaluate(OBSERVER)
                others = list(
                    range(baseline_count + loaded_count, baseline_count + loaded_count + 20)
                )
                for label, first, count, background in (
                    ("idle (baseline)", 0, baseline_count, None),
                    (
                        f"with {rate:.0f} deliveries/s beside it",
                        baseline_count,
                        loaded_count,
                        _Background(env, rate, others),
                    ),
                ):
                    tag = "b" if background is None else "l"
                    if background is not None:
                        background.start()
                        time.sleep(3)  # let the traffic settle to its rate first
                    sent = _raids(env, page, first, count, tag)
                    if background is not None:
                        achieved = background.achieved()
                        background.stop.set()
                        background.join(10)
                        print(
                            f"background: {background.sent} deliveries sent, "
                            f"{background.accepted} accepted, {achieved:.1f}/s",
                            flush=True,
                        )
                    row = _collect(page, stack.sink.url, paths, sent)
                    results[label] = row
                    print(f"{label}: {count} raids measured", flush=True)
                browser.close()
        finally:
            stack.stop()
    print("\nlatency from the webhook POST (ms): incident row shown in Chromium, post at the sink")
    print(f"{'':<34}{'where':<18}{'n':>4}{'p50':>9}{'p99':>9}{'max':>9}")
    summary: dict[str, float] = {}
    for label, row in results.items():
        for where, values in row.items():
            if not values:
                print(f"{label:<34}{where:<18}{0:>4}  (nothing arrived)")
                continue
            p50, p99 = statistics.median(values), _pct(values, 0.99)
            print(
                f"{label:<34}{where:<18}{len(values):>4}{p50:>9.0f}{p99:>9.0f}{max(values):>9.0f}"
            )
            summary[f"{label}:{where}:p50"] = p50
            summary[f"{label}:{where}:p99"] = p99
    return summary


if __name__ == "__main__":
    run()
