"""The dashboard under load in Chromium: 500 creators, 100 events per second, two minutes.

Events are stored and published exactly as persist does (PostgreSQL, then the Socket.IO
Redis emitter), spread over 500 creators in four labels, and the dashboard at 1920x1080
shows them: the wall in its comfortable layout, then dense, then TV mode (cycling pages),
then the feed, 30 s each. In the page, a requestAnimationFrame loop records every frame's
duration; the JS heap is read after a forced garbage collection (`--expose-gc`), so it is
what the page keeps, not what the collector has not reached yet. Both are read every 10 s
through Playwright. The baseline is the same page idle for 20 s before the load starts.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.dev.stack import LocalStack

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-precise-memory-info",
    "--js-flags=--expose-gc",
]
LABELS = ["EU", "NA", "Esports", "Partners"]
FRAME_PROBE = """
window.__frames = [];
let last = performance.now();
function tick(now) { window.__frames.push(now - last); last = now; requestAnimationFrame(tick); }
requestAnimationFrame(tick);
"""
TYPES = [
    ("channel.follow", "audience"),
    ("channel.cheer", "monetization"),
    ("channel.chat.message", "engagement"),
    ("channel.raid", "audience"),
    ("channel.subscription.gift", "monetization"),
    ("channel.ban", "moderation"),
    ("channel.subscription.message", "monetization"),
]
# the views the load runs through, 30 s each at full length
VIEWS = ["wall", "wall dense", "tv", "feed"]


def _company(
    cfg: settings.DatabaseSettings, creators: int
) -> tuple[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    company = uuid.uuid4()
    made = []
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, 'Load Agency', 'load')", (company,)
        )
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'bench') RETURNING id", (company,)
        ).fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'admin')",
            (company, user["id"]),
        )
        for i in range(creators):
            row = conn.execute(
                "INSERT INTO creators "
                "(company_id, twitch_user_id, twitch_login, display_name, status, labels,"
                " title, category_name, live_since) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING id",
                (
                    company,
                    str(5_000_000 + i),
                    f"creator_{i}",
                    f"Creator {i:03d}",
                    "live" if i % 3 == 0 else "offline",
                    [LABELS[i % len(LABELS)]],
                    f"Stream {i}: ranked grind",
                    "Just Chatting" if i % 2 else "Fortnite",
                    i % 3 == 0,
                ),
            ).fetchone()
            assert row is not None
            made.append((row["id"], str(5_000_000 + i)))
    return company, made


def _produce(
    cfg: settings.DatabaseSettings,
    redis_url: str,
    company: uuid.UUID,
    creators: list[tuple[uuid.UUID, str]],
    *,
    rate: float,
    seconds: float,
    stop: threading.Event,
) -> int:
    publisher = SocketIOPublisher(redis_url)
    rng = random.Random(7)
    sent = 0
    with db.connect(cfg, autocommit=True) as conn:
        start = time.perf_counter()
        while not stop.is_set() and time.perf_counter() - start < seconds:
            due = start + sent / rate
            if (pause := due - time.perf_counter()) > 0:
                time.sleep(pause)
            # behind schedule (a commit waits for the disk): store what is due in one
            # transaction, still published one event at a time as persist does
            due_now = max(1, min(20, int((time.perf_counter() - start) * rate) - sent))
            batch = [_event(rng, creators) for _ in range(due_now)]
            with db.tenant_transaction(conn, company):
                results = eventstore.append(conn, company, batch)
            for event, result in zip(batch, results, strict=True):
                publisher.publish(company, "event", eventstore.published(event, result.seq))
            sent += len(batch)
    return sent


def _event(rng: random.Random, creators: list[tuple[uuid.UUID, str]]) -> eventstore.NewEvent:
    creator, broadcaster = rng.choice(creators)
    sub_type, topic = rng.choice(TYPES)
    now = datetime.now(UTC)
    return eventstore.NewEvent(
        twitch_message_id=f"b-{uuid.uuid4()}",
        type=sub_type,
        version="1",
        topic=topic,
        occurred_at=now,
        received_at=now,
        broadcaster_user_id=broadcaster,
        creator_id=creator,
        payload={},
        summary={
            "actor_login": f"viewer{rng.randint(1, 9999)}",
            "amount": rng.randint(1, 500),
            **({"message_text": "GG that was close"} if sub_type.endswith("message") else {}),
        },
    )


def _sample(page: Any) -> dict[str, float]:
    frames: list[float] = page.evaluate(
        "() => { const f = window.__frames; window.__frames = []; return f; }"
    )
    heap = page.evaluate(
        "() => { if (window.gc) window.gc(); "
        "return performance.memory ? performance.memory.usedJSHeapSize : 0; }"
    )
    frames = frames or [0.0]
    ordered = sorted(frames)
    return {
        "frames": len(frames),
        "mean": statistics.fmean(frames),
        "p95": ordered[int(len(ordered) * 0.95)],
        "max": ordered[-1],
        "heap_mb": heap / 2**20,
    }


def _show(page: Any, view: str) -> None:
    """Switch the page to one of VIEWS as a person would (keyboard shortcuts and the toolbar)."""
    if view == "wall dense":
        page.locator("body").press("d")  # the wall's density shortcut
        page.locator("[data-density=dense]").first.wait_for(timeout=10_000)
    elif view == "tv":
        page.locator("body").press("t")
        page.get_by_test_id("tv-wall").wait_for(timeout=10_000)
    elif view == "feed":
        page.locator("body").press("Escape")
        page.locator("body").press("2")
        page.get_by_test_id("feed").wait_for(timeout=10_000)


def run(quick: bool = False) -> dict[str, Any]:
    creators_n, rate = 500, 100.0
    load_seconds = 40 if quick else 120
    per_view = load_seconds // len(VIEWS)
    rows: list[tuple[str, dict[str, float]]] = []
    # the dashboard takes the bench's token (a `#token=` link) only with development sign-in on;
    # the relay the stack starts inherits it
    os.environ.setdefault("DEV_TOKEN_SIGN_IN", "true")
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), services=True)
        endpoints = stack.start()
        env = endpoints.env()
        cfg = settings.DatabaseSettings.from_env(env)
        try:
            company, creators = _company(cfg, creators_n)
            token = stack.keys.token("bench", company, "admin")
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
                )
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                page.goto(f"{endpoints.relay_url}/#token={token}")
                page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=20_000)
                page.evaluate(FRAME_PROBE)
                for window in range(2):  # the baseline: idle
                    page.wait_for_timeout(10_000)
                    rows.append((f"idle {10 * (window + 1)} s", _sample(page)))
                stop = threading.Event()
                produced: list[int] = []
                worker = threading.Thread(
                    target=lambda: produced.append(
                        _produce(
                            cfg,
                            env["REDIS_URL"],
                            company,
                            creators,
                            rate=rate,
                            seconds=load_seconds,
                            stop=stop,
                        )
                    )
                )
                worker.start()
                elapsed = 0
                while elapsed < load_seconds:
                    view = VIEWS[min(len(VIEWS) - 1, elapsed // per_view)]
                    if elapsed % per_view == 0:
                        _show(page, view)
                    step = min(10, per_view - elapsed % per_view)
                    page.wait_for_timeout(step * 1000)
                    elapsed += step
                    rows.append((f"load {elapsed} s ({view})", _sample(page)))
                stop.set()
                worker.join()
                shown = page.locator("[data-testid=connection]").inner_text()
                browser.close()
        finally:
            stack.stop()
    print(
        f"{creators_n} creators, {rate:.0f} events/s for {load_seconds} s "
        f"({produced[0]} events); connection: {shown}"
    )
    print(f"{'window':<22}{'frames':>8}{'mean ms':>9}{'p95 ms':>9}{'max ms':>9}{'heap MB':>9}")
    for label, r in rows:
        cells = f"{r['frames']:>8}{r['mean']:>9.1f}{r['p95']:>9.1f}{r['max']:>9.1f}"
        print(f"{label:<22}{cells}{r['heap_mb']:>9.1f}")
    idle = rows[1][1]
    loaded = [r for label, r in rows if label.startswith("load")]
    frame_ratio = statistics.fmean(r["p95"] for r in loaded) / idle["p95"]
    heap_ratio = loaded[-1]["heap_mb"] / idle["heap_mb"]
    print(
        f"ratio loaded / idle: p95 frame time {frame_ratio:.2f}, heap at the end {heap_ratio:.2f}"
    )
    return {"rows": rows}
