"""The feed page in a real browser: events in words, details on demand, server-side filters."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Browser, Page, Response, WebSocket, expect

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.dev import seed
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, open_dashboard, send
from tests.e2e.test_accessibility import _scan
from tests.integration.tenant_data import sample_event

PIXEL = ("52871934", "pixel_pioneer")
STREAMER = ("1971641", "streamer")
RAW_TYPE = re.compile(r"\b(channel|stream|user)\.[a-z_.]+")


def exactly(text: str) -> re.Pattern[str]:
    return re.compile(f"^{re.escape(text)}$")


def creator_id(env: dict[str, str], company: uuid.UUID, login: str) -> str:
    with (
        db.connect(settings.DatabaseSettings.from_env(env)) as conn,
        db.tenant_transaction(conn, company),
    ):
        row = conn.execute("SELECT id FROM creators WHERE twitch_login = %s", (login,)).fetchone()
    return str(row["id"])


def stored_follow(env: dict[str, str], company: uuid.UUID, login: str) -> bool:
    """Waits (up to 15 s) until a follow by `login` is stored for the company."""
    cfg = settings.DatabaseSettings.from_env(env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
            found = conn.execute(
                "SELECT 1 FROM events WHERE type = 'channel.follow' AND actor_login = %s",
                (login,),
            ).fetchone()
        if found:
            return True
        time.sleep(0.1)
    return False


def feed_page(browser: Browser, stack: LocalStack, demo: seed.SeedResult, **size: int) -> Page:
    page = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    if size:
        page.set_viewport_size({"width": size["width"], "height": size["height"]})
    page.get_by_test_id("nav-feed").click()
    return page


def test_rows_read_in_human_words_and_only_the_details_show_the_raw_type(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    page = feed_page(browser, stack, demo, width=1366, height=768)
    b, login = PIXEL
    sentences = page.get_by_test_id("feed-sentence")
    deliveries: list[tuple[str, str, dict[str, Any]]] = [
        (
            "channel.subscription.gift",
            "speedy637 gifted 20 subs to Pixel_Pioneer",
            {
                "user_id": "9001",
                "user_login": "speedy637",
                "user_name": "speedy637",
                "total": 20,
                "tier": "1000",
                "is_anonymous": False,
            },
        ),
        (
            "channel.raid",
            "Raid from speedy897 with 4,242 viewers into Pixel_Pioneer",
            {
                "from_broadcaster_user_id": "9002",
                "from_broadcaster_user_login": "speedy897",
                "from_broadcaster_user_name": "speedy897",
                "viewers": 4242,
            },
        ),
        (
            "channel.follow",
            "calm_owl followed Pixel_Pioneer",
            {"user_id": "9003", "user_login": "calm_owl", "user_name": "calm_owl"},
        ),
        (
            "channel.cheer",
            "bitsy42 cheered 500 bits to Pixel_Pioneer: “Cheer500 nice save”",
            {
                "user_id": "9004",
                "user_login": "bitsy42",
                "user_name": "bitsy42",
                "bits": 500,
                "message": "Cheer500 nice save",
                "is_anonymous": False,
            },
        ),
        (
            "channel.chat.message",
            "chatty7: “hello wall”",
            {
                "chatter_user_id": "9005",
                "chatter_user_login": "chatty7",
                "chatter_user_name": "chatty7",
                "message": {
                    "text": "hello wall",
                    "fragments": [{"type": "text", "text": "hello wall"}],
                },
            },
        ),
    ]
    expected: dict[str, str] = {}
    for sub_type, text, event in deliveries:
        # one at a time: the queue dispatches concurrently, as Cloud Tasks does, and the
        # keyboard walk below needs the chat message to be the newest row
        send(env, sub_type, b, login, **event)
        expect(sentences.filter(has_text=exactly(text))).to_have_count(1, timeout=15_000)
        expected[sub_type] = text
    rows = page.get_by_test_id("feed-row")
    expect(rows.first.locator(".feed-who")).to_have_text("Pixel_Pioneer")
    expect(rows.first.locator("svg.topic-icon")).to_have_count(1)
    # no raw type name anywhere in the list, and no per-event acknowledgement
    listed = page.get_by_test_id("feed").inner_text()
    assert not RAW_TYPE.search(listed), RAW_TYPE.search(listed)
    expect(
        page.get_by_test_id("feed").get_by_role("button", name=re.compile(r"^ack", re.I))
    ).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "feed-laptop.png"))
    # on a TV-sized screen the rows and their type grow with it
    small = rows.first.bounding_box()
    page.set_viewport_size({"width": 3840, "height": 2160})
    expect(rows.first.locator(".feed-item")).to_have_css(
        "font-size", re.compile(r"^(1[8-9]|[2-9]\d)")
    )
    # the row height follows a media query read by script, a render after the CSS: wait for it
    # (reading it right after the font size raced that render)
    page.wait_for_function(
        "h => document.querySelector('[data-testid=feed-row]').getBoundingClientRect().height > h",
        arg=small["height"] if small else 0,
        timeout=10_000,
    )
    large = rows.first.bounding_box()
    assert small and large and large["height"] > small["height"]
    page.screenshot(path=str(SCREENSHOTS / "feed-tv.png"))
    page.set_viewport_size({"width": 1366, "height": 768})

    # a click opens the details: the raw type is there; Esc closes them
    details = page.get_by_test_id("event-details")
    for raw, text in expected.items():
        rows.filter(has=sentences.filter(has_text=exactly(text))).click()
        expect(details).to_be_visible()
        expect(details.get_by_test_id("event-type")).to_have_text(raw)
        page.keyboard.press("Escape")
        expect(details).to_have_count(0)
    rows.filter(has=sentences.filter(has_text=exactly(expected["channel.raid"]))).click()
    expect(details).to_contain_text("4242")  # the summary's own fields, as stored
    expect(details).to_contain_text("speedy897")
    page.screenshot(path=str(SCREENSHOTS / "feed-details.png"))
    found: list[str] = []
    _scan(page, "feed with details", found)  # axe-core, as test_accessibility runs it
    assert found == []
    page.keyboard.press("Escape")

    # the keyboard alone: Tab from the toolbar to the newest row, Enter opens, Esc closes
    page.get_by_test_id("feed-older").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => document.activeElement.closest('[data-testid=feed-row]')?.dataset.seq ?? null"
    )
    newest = max(int(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.seq)"))
    assert focused == str(newest)
    page.keyboard.press("Enter")
    expect(details.get_by_test_id("event-type")).to_have_text("channel.chat.message")
    page.keyboard.press("Escape")
    expect(details).to_have_count(0)
    # the focus goes back to the row the details were opened from
    page.wait_for_function(
        "s => document.activeElement?.closest('[data-testid=feed-row]')?.dataset.seq === s",
        arg=str(newest),
        timeout=5_000,
    )
    # `/` puts the cursor in the creator filter; `p` pauses (but not while typing)
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.dataset.testid") == "feed-creator"
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("p")
    expect(page.get_by_test_id("feed-pause")).to_have_text(re.compile(r"^Resume"))
    page.keyboard.press("p")
    expect(page.get_by_test_id("feed-pause")).to_have_text("Pause")
    page.close()


def test_the_creator_filter_follows_that_creator_live_through_a_relay_subscription(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    page = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    sockets: list[tuple[WebSocket, list[str], list[str]]] = []

    def opened(ws: WebSocket) -> None:
        sent: list[str] = []
        received: list[str] = []
        ws.on("framesent", lambda f: sent.append(str(f)))
        ws.on("framereceived", lambda f: received.append(str(f)))
        sockets.append((ws, sent, received))

    page.on("websocket", opened)  # from here: the wall's socket is already open
    page.get_by_test_id("nav-feed").click()
    pixel = creator_id(env, demo.company_id, PIXEL[1])
    page.get_by_test_id("feed-creator").select_option(label="Pixel_Pioneer")
    expect(page.get_by_test_id("feed-narrowed")).to_have_attribute("data-state", "live")
    assert len(sockets) == 1, "one narrowed socket for the filter"
    narrowed, sent, received = sockets[0]
    assert any('"subscribe"' in f and pixel in f for f in sent), sent

    mark = uuid.uuid4().hex[:8]
    send(
        env,
        "channel.follow",
        *STREAMER,
        user_id="9101",
        user_login=f"other_{mark}",
        user_name=f"other_{mark}",
    )
    # stored before Pixel's is sent (the queue dispatches concurrently, as Cloud Tasks does)
    assert stored_follow(env, demo.company_id, f"other_{mark}")
    send(
        env,
        "channel.follow",
        *PIXEL,
        user_id="9102",
        user_login=f"mine_{mark}",
        user_name=f"mine_{mark}",
    )
    rows = page.get_by_test_id("feed-row")
    expect(rows.filter(has_text=f"mine_{mark} followed Pixel_Pioneer")).to_have_count(
        1, timeout=15_000
    )
    # the other creator's event was stored first: had it been shown, it would be there by now
    expect(rows.filter(has_text=f"other_{mark}")).to_have_count(0)
    assert all(who == "Pixel_Pioneer" for who in rows.locator(".feed-who").all_inner_texts())
    # the relay itself left it out of the narrowed socket (not only the page's own filter)
    assert any(f"mine_{mark}" in f for f in received)
    assert not any(f"other_{mark}" in f for f in received)

    # clearing the filter closes the narrowed socket; the wall's socket had everything
    page.get_by_test_id("feed-creator").select_option("")
    deadline = time.monotonic() + 10
    while not narrowed.is_closed() and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert narrowed.is_closed()
    expect(rows.filter(has_text=f"other_{mark} followed Streamer")).to_have_count(1)
    page.close()


def test_load_older_pages_through_history_with_the_creator_and_topic_filters(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    pixel = uuid.UUID(creator_id(env, demo.company_id, PIXEL[1]))
    streamer = uuid.UUID(creator_id(env, demo.company_id, STREAMER[1]))
    mark = uuid.uuid4().hex[:8]

    def cheer(i: int, creator: uuid.UUID, broadcaster: str) -> eventstore.NewEvent:
        return sample_event(
            f"older-{mark}-{broadcaster}-{i}",
            broadcaster,
            creator,
            type="channel.cheer",
            topic="monetization",
            summary={"actor_login": f"fan{i}", "amount": 100},
        )

    def chat(i: int) -> eventstore.NewEvent:
        return sample_event(
            f"older-{mark}-chat-{i}",
            PIXEL[0],
            pixel,
            type="channel.chat.message",
            topic="engagement",
            summary={"actor_login": f"chat{i}", "message_text": "hi"},
        )

    # more than two pages of each beyond what the live list starts with, interleaved, stored
    # before the page opens (history, not live)
    seeded: list[eventstore.NewEvent] = []
    for i in range(450):
        seeded += [cheer(i, pixel, PIXEL[0]), cheer(i, streamer, STREAMER[0])]
        seeded += [chat(i)] if i % 3 == 0 else []
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, demo.company_id):
        eventstore.append(conn, demo.company_id, seeded)
        matching, oldest = (
            conn.execute(
                "SELECT count(*), min(seq) FROM events"
                " WHERE creator_id = %s AND topic = 'monetization'",
                (pixel,),
            )
            .fetchone()
            .values()
        )
    assert matching >= 450

    page = feed_page(browser, stack, demo)
    pages: list[dict[str, Any]] = []

    def answered(response: Response) -> None:
        url = urlparse(response.url)
        if url.path == "/api/events" and "creator_id" in parse_qs(url.query):
            pages.append({"query": parse_qs(url.query), **response.json()})

    page.on("response", answered)
    page.get_by_test_id("feed-creator").select_option(label="Pixel_Pioneer")
    page.get_by_test_id("feed-topic").select_option("monetization")
    older = page.get_by_test_id("feed-older")
    for _ in range(6):
        if older.inner_text() == "No older events":
            break
        expect(older).to_have_text("Load older", timeout=10_000)
        older.click()
        expect(older).not_to_have_text("Loading…", timeout=10_000)
    expect(older).to_have_text("No older events")
    expect(older).to_be_disabled()

    assert len(pages) >= 2, "paging is real: more than one page was read"
    for p in pages:
        assert p["query"]["creator_id"] == [str(pixel)]
        assert p["query"]["topic"] == ["monetization"]
        assert p["query"]["limit"] == ["200"]
        assert all(
            e["creator_id"] == str(pixel) and e["topic"] == "monetization" for e in p["items"]
        )
    # every matching event is listed, once; nothing else (counted again: another test's
    # delivery may have been stored since, and then it was shown live)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, demo.company_id):
        matching = conn.execute(
            "SELECT count(*) AS n FROM events WHERE creator_id = %s AND topic = 'monetization'",
            (pixel,),
        ).fetchone()["n"]
    expect(page.get_by_test_id("feed-count")).to_have_text(f"{matching:,} shown")
    assert set(page.locator("[data-testid=feed-row] .feed-who").all_inner_texts()) == {
        "Pixel_Pioneer"
    }
    page.get_by_test_id("feed").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    expect(page.get_by_test_id("feed-row").last).to_have_attribute("data-seq", str(oldest))

    # a filter changed: history starts over with the new filters
    page.get_by_test_id("feed-topic").select_option("engagement")
    expect(older).to_have_text("Load older")
    # wait for the answer itself: the button can leave "Loading…" before Playwright has handed
    # the response event to this process, so counting `pages` right after the text changed was
    # a race (it failed once in a clean-clone run)
    with page.expect_response(
        lambda r: urlparse(r.url).path == "/api/events" and "creator_id" in r.url
    ) as answer:
        older.click()
    expect(older).not_to_have_text("Loading…", timeout=10_000)
    assert answer.value.ok
    query = parse_qs(urlparse(answer.value.url).query)
    assert query["topic"] == ["engagement"]
    assert query["creator_id"] == [str(pixel)]
    items = answer.value.json()["items"]
    assert items and all(e["type"] == "channel.chat.message" for e in items)
    page.close()
