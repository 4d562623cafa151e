"""The wall as an agency puts it on a screen (issue 19), at the sizes people use it.

Two agencies on the whole local stack: one of 50 creators, one of 200. Their creators have
avatars and previews from the Twitch stand-in, an hour of audience pulse samples, labels,
titles and categories; live traffic is stored and published exactly as persist does while
the pictures are taken, and a critical incident arrives through the real chain (a signed
`user.authorization.revoke` delivery: webhook, Cloud Tasks, persist, detection). Each test
checks what its picture claims (the strip's figures, the theme, the banner, no overflow), and
the pictures go to the README (`make screenshots`).
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Browser, Page
from psycopg.types.json import Jsonb

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core import scopes
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, send

FIRST = [
    "Pixel",
    "Nova",
    "Echo",
    "Lumen",
    "Kite",
    "Orbit",
    "Vanta",
    "Cedar",
    "Rook",
    "Juno",
    "Sable",
    "Ember",
    "Tidal",
    "Quartz",
    "Fable",
    "Moss",
    "Halo",
    "Drift",
    "Zephyr",
    "Onyx",
]
SECOND = ["Pioneer", "Rider", "Fox", "Sage", "Forge", "Byte", "Wolf", "Quest", "Bloom", "Spark"]
CATEGORIES = [
    "Just Chatting",
    "Valorant",
    "Minecraft",
    "League of Legends",
    "Art",
    "Music",
    "Fortnite",
    "Counter-Strike",
    "Elden Ring",
    "Chess",
]
TITLES = [
    "Ranked grind",
    "Road to top 500",
    "Chill art stream",
    "Viewer games",
    "Day 3 of the challenge",
]
LABELS = ["EU roster", "NA roster", "Esports", "Brand deals"]


@dataclass(frozen=True)
class Agency:
    company: uuid.UUID
    creators: list[tuple[uuid.UUID, str, str, str]]  # id, twitch id, login, display name
    live: int
    viewers: int  # the newest sample's total over live creators


def _agency(env: dict[str, str], name: str, slug: str, size: int, brand: str, seed: int) -> Agency:
    """An agency an hour into an evening: 2 in 3 creators live, samples a minute apart."""
    rng = random.Random(seed)
    company = uuid.uuid4()
    origin = env["TWITCH_IMAGE_ORIGIN"]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    made: list[tuple[uuid.UUID, str, str, str]] = []
    live = viewers = 0
    streams: list[tuple[str, str, int]] = []
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug, branding) VALUES (%s, %s, %s, %s)",
            (company, name, slug, Jsonb({"primary_color": brand, "accent_color": "#f5a623"})),
        )
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'ops-lead') RETURNING id",
            (company,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'admin')",
            (company, user),
        )
        for i in range(size):
            display = f"{FIRST[i % len(FIRST)]}{SECOND[(i // len(FIRST)) % len(SECOND)]}"
            display += str(i // (len(FIRST) * len(SECOND)) or "")
            login = display.lower()
            twitch_id = str(7_100_000 + seed * 1000 + i)
            on = i % 3 != 2
            since = now - timedelta(minutes=rng.randint(20, 300))
            row = conn.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name,"
                " status, labels, title, category_name, live_since, profile_image_url,"
                " preview_url) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    company,
                    twitch_id,
                    login,
                    display,
                    "live" if on else "offline",
                    [LABELS[i % len(LABELS)]],
                    f"{rng.choice(TITLES)} | !merch",
                    rng.choice(CATEGORIES),
                    since if on else None,
                    f"{origin}/images/avatars/{login}.svg",
                    f"{origin}/images/previews/live_user_{login}-{{width}}x{{height}}.svg"
                    if on
                    else None,
                ),
            ).fetchone()["id"]
            made.append((row, twitch_id, login, display))
            if not on:
                continue
            live += 1
            level = rng.choice([80, 400, 1500, 6000, 22000])
            v = level
            for minute in range(60, -1, -1):
                v = max(1, int(v * rng.uniform(0.96, 1.045)))
                conn.execute(
                    "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers)"
                    " VALUES (%s, %s, %s, true, %s)",
                    (company, row, now - timedelta(minutes=minute), v),
                )
            conn.execute(
                "UPDATE creators SET viewers = %s, viewers_at = %s WHERE id = %s", (v, now, row)
            )
            viewers += v
            streams.append((twitch_id, login, v))
    _connected(env, [t for _c, t, _l, _n in made])
    # the pulse keeps sampling: the stand-in's Get Streams answers what the last sample said
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    for twitch_id, login, v in streams:
        twitchsim.set_stream(twitch, twitch_id, v, login=login)
    return Agency(company, made, live, viewers)


def _connected(env: dict[str, str], broadcasters: list[str]) -> None:
    """Consent as a connected creator leaves it (the callback's grant and Twitch's enabled
    subscriptions), written by the platform as the consent callback and the reconciler do;
    every tenth creator has not granted bits yet, as happens."""
    types = [t for t in scopes.SCOPES if t != "user.authorization.revoke"]
    admin = env["DATABASE_ADMIN_URL"].rsplit("/", 1)[0] + "/controlroom"
    with psycopg.connect(admin, autocommit=True) as conn:
        for i, broadcaster in enumerate(broadcasters):
            granted = [x for x in scopes.requested(types) if i % 10 != 3 or x != "bits:read"]
            conn.execute(
                "SELECT record_twitch_authorization(%s, %s, now())", (broadcaster, granted)
            )
            for sub_type in types:
                ok = scopes.satisfied(sub_type, granted)
                conn.execute(
                    "INSERT INTO eventsub_subscriptions (broadcaster_user_id, type, version,"
                    " condition, status) VALUES (%s, %s, '1', %s, %s) ON CONFLICT DO NOTHING",
                    (
                        broadcaster,
                        sub_type,
                        Jsonb({"broadcaster_user_id": broadcaster}),
                        "enabled" if ok else "authorization_missing",
                    ),
                )


TRAFFIC = [
    ("channel.follow", "audience", lambda r: {}),
    (
        "channel.chat.message",
        "engagement",
        lambda r: {"message_text": r.choice(["GG", "that clutch!", "PogChamp", "hi from Berlin"])},
    ),
    ("channel.cheer", "monetization", lambda r: {"amount": r.choice([100, 250, 1000])}),
    (
        "channel.subscription.gift",
        "monetization",
        lambda r: {"amount": r.choice([1, 5, 10, 20]), "tier": "1000"},
    ),
    ("channel.subscribe", "monetization", lambda r: {"tier": "1000"}),
    ("channel.raid", "audience", lambda r: {"amount": r.randint(40, 4500), "outcome": "incoming"}),
]


def _traffic(env: dict[str, str], agency: Agency, stop: threading.Event, rate: float = 8.0) -> None:
    """Stored and published exactly as persist does, a few events a second over the roster."""
    rng = random.Random(agency.company.int % 1000)
    publisher = SocketIOPublisher(env["REDIS_URL"])
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg, autocommit=True) as conn:
        while not stop.is_set():
            creator, broadcaster, _login, _name = rng.choice(agency.creators)
            sub_type, topic, extra = rng.choice(TRAFFIC)
            now = datetime.now(UTC)
            summary = {
                "actor_login": f"{rng.choice(FIRST).lower()}{rng.randint(10, 999)}",
                **extra(rng),
            }
            event = eventstore.NewEvent(
                twitch_message_id=f"screens-{uuid.uuid4()}",
                type=sub_type,
                version="1",
                topic=topic,
                occurred_at=now,
                received_at=now,
                broadcaster_user_id=broadcaster,
                creator_id=creator,
                payload={},
                summary=summary,
            )
            with db.tenant_transaction(conn, agency.company):
                (stored,) = eventstore.append(conn, agency.company, [event])
            publisher.publish(agency.company, "event", eventstore.published(event, stored.seq))
            stop.wait(1 / rate)


@pytest.fixture(scope="module")
def fifty(env: dict[str, str]) -> Agency:
    return _agency(env, "Northlight Talent", "northlight", 50, "#6d4aff", 1)


@pytest.fixture(scope="module")
def two_hundred(env: dict[str, str]) -> Agency:
    return _agency(env, "Meridian Creators Group", "meridian", 200, "#0b7a75", 2)


@pytest.fixture()
def traffic(env: dict[str, str], fifty: Agency, two_hundred: Agency) -> Iterator[None]:
    stop = threading.Event()
    workers = [threading.Thread(target=_traffic, args=(env, a, stop)) for a in (fifty, two_hundred)]
    for w in workers:
        w.start()
    yield
    stop.set()
    for w in workers:
        w.join(timeout=10)


def _open(
    browser: Browser, stack: LocalStack, agency: Agency, width: int, height: int, path: str = ""
) -> Page:
    assert stack.endpoints is not None
    page = browser.new_page(viewport={"width": width, "height": height})
    token = stack.keys.token("ops-lead", agency.company, "admin")
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=20_000)
    if path:
        page.evaluate(f"window.location.hash = {path!r}")
    return page


def _settled(page: Page, agency: Agency) -> None:
    """The strip counts the seeded roster and the newest samples; a few live events have arrived."""
    strip = page.get_by_test_id("wall-summary")
    strip.locator(f"[data-testid=summary-live][data-value='{agency.live}']").wait_for(
        timeout=20_000
    )
    strip.locator(f"[data-testid=summary-viewers][data-value='{agency.viewers}']").wait_for(
        timeout=20_000
    )
    page.locator("[data-testid=summary-epm]").filter(has_text=re.compile(r"[1-9]")).wait_for(
        timeout=30_000
    )


def test_the_wall_at_1920_in_dark_and_light(
    browser: Browser, stack: LocalStack, fifty: Agency, traffic: None
) -> None:
    page = _open(browser, stack, fifty, 1920, 1080)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"  # the default
    _settled(page, fifty)
    tiles = page.locator("[data-testid^=tile-]")
    assert tiles.count() == 50, "50 creators fit one 1920x1080 screen in the comfortable layout"
    first = tiles.first
    assert first.locator("img").first.evaluate("i => i.complete && i.naturalWidth > 0"), (
        "the avatar loaded"
    )
    time.sleep(4)  # a few more live events on the tiles' last-event lines
    page.screenshot(path=str(SCREENSHOTS / "wall-dark.png"))
    page.locator("body").press("Shift+D")
    page.wait_for_function("document.documentElement.dataset.theme === 'light'")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background not in ("rgb(0, 0, 0)",), background
    time.sleep(1)
    page.screenshot(path=str(SCREENSHOTS / "wall-light.png"))
    page.locator("body").press("Shift+D")  # back, and remembered
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    page.close()


def test_tv_mode_at_3840_with_200_creators_and_a_critical_incident(
    browser: Browser, stack: LocalStack, env: dict[str, str], two_hundred: Agency, traffic: None
) -> None:
    _creator, broadcaster, login, display = two_hundred.creators[4]
    page = _open(browser, stack, two_hundred, 3840, 2160, "#/tv")
    page.get_by_test_id("tv-wall").wait_for(timeout=10_000)
    assert page.get_by_test_id("nav-wall").count() == 0, "no top bar in TV mode"
    _settled(page, two_hundred)
    # the creator takes our access away on Twitch: a critical incident, through the real chain
    send(
        env, "user.authorization.revoke", broadcaster, login, user_id=broadcaster, user_login=login
    )
    banner = page.get_by_test_id("critical-banner")
    banner.filter(has_text=display).wait_for(timeout=30_000)
    assert "CRITICAL" in banner.inner_text().upper()
    time.sleep(2)
    page.screenshot(path=str(SCREENSHOTS / "wall-tv-3840.png"))
    page.close()


def test_the_wall_on_a_1366_laptop(
    browser: Browser, stack: LocalStack, fifty: Agency, traffic: None
) -> None:
    page = _open(browser, stack, fifty, 1366, 768)
    _settled(page, fifty)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 1366x768"
    visible = page.evaluate(
        "[...document.querySelectorAll('[data-testid^=tile-]')]"
        ".filter(t => { const r = t.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; }).length"
    )
    assert visible >= 6, f"only {visible} whole tiles on a laptop screen"
    time.sleep(2)
    page.screenshot(path=str(SCREENSHOTS / "wall-laptop-1366.png"))
    page.close()
