"""The dashboard in a real browser against the whole local stack."""

from __future__ import annotations

import struct
import time
import uuid
import zlib

from playwright.sync_api import Browser, expect

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import seed
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, open_dashboard, send


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG, built by hand (SVG logos are refused; no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


LOGO_PNG = _png(64, 32, (0x22, 0x22, 0x22))


def feed_seqs(page) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(
        int(s)
        for s in page.locator("[data-testid=feed-row]").evaluate_all(
            "rows => rows.map(r => r.dataset.seq)"
        )
    )


def test_sign_in_tiles_go_live_and_raids_are_highlighted(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    page = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    expect(page.get_by_test_id("company-name")).to_have_text("Northwind Talent")
    tile = page.get_by_test_id("tile-cool_user")
    expect(tile).to_be_visible()
    send(
        env,
        "stream.online",
        "1337",
        "cool_user",
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    # how fast is measured in bench/ (pipeline, browser); here only that it happens
    expect(tile.get_by_test_id("status")).to_contain_text("LIVE", timeout=10_000)
    send(env, "channel.raid", "1337", "cool_user", viewers=4242)
    expect(tile.get_by_test_id("highlight")).to_contain_text("4242 viewers", timeout=10_000)
    for t in ("channel.follow", "channel.cheer", "channel.subscription.gift"):
        send(env, t, "41245072", "northwind_nova")
    page.screenshot(path=str(SCREENSHOTS / "wall.png"))
    # filters
    page.get_by_test_id("wall-filter").fill("nova")
    expect(page.locator("[data-testid^=tile-]")).to_have_count(1)
    page.get_by_test_id("wall-filter").fill("")
    page.get_by_test_id("nav-feed").click()
    expect(page.locator("[data-testid=feed-row]").first).to_be_visible()
    page.get_by_test_id("feed-topic").select_option("monetization")
    # the list reads in words; a row's raw type is in its details (tests/e2e/test_feed_ui.py)
    rows = page.locator("[data-testid=feed-row]")
    expect(rows.first).to_be_visible()
    topics = rows.evaluate_all("rs => rs.map(r => r.className)")
    assert topics and all("topic-monetization" in t for t in topics)
    rows.first.click()
    assert page.get_by_test_id("event-type").inner_text() in {
        "channel.cheer",
        "channel.subscription.gift",
        "channel.subscribe",
        "channel.subscription.message",
        "channel.hype_train.begin",
    }
    page.keyboard.press("Escape")
    page.get_by_test_id("feed-topic").select_option("")
    page.screenshot(path=str(SCREENSHOTS / "feed.png"))
    page.close()


def test_another_company_sees_nothing_of_ours(
    browser: Browser,
    stack: LocalStack,
    env: dict[str, str],
    demo: seed.SeedResult,
    rival: uuid.UUID,
) -> None:
    ours = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    theirs = open_dashboard(browser, stack, "rival-viewer", rival, "viewer")
    expect(theirs.get_by_test_id("tile-rival_star")).to_be_visible()
    theirs.get_by_test_id("nav-feed").click()
    their_rows = theirs.locator("[data-testid=feed-row]")
    expect(their_rows).to_have_count(0)  # the rival has no history yet
    mark = uuid.uuid4().hex[:12]

    # ours first, each seen by our own dashboard: the relay has had them all to hand out,
    # the creator state (a tile's title) as well as the events
    send(env, "channel.cheer", "1337", "cool_user", message=f"ours-{mark}")
    send(env, "channel.update", "1971641", "streamer", title=f"title-{mark}")
    expect(ours.get_by_test_id("tile-streamer")).to_contain_text(f"title-{mark}", timeout=10_000)
    ours.get_by_test_id("nav-feed").click()
    ours_rows = ours.locator("[data-testid=feed-row]")
    expect(ours_rows.filter(has_text=f"ours-{mark}")).to_have_count(1, timeout=10_000)

    # then theirs: the positive control that their socket is alive and delivering. Anything
    # of ours the relay wrongly sent them went out before this, on the same ordered socket.
    send(env, "channel.cheer", "7777001", "rival_star", message=f"theirs-{mark}")
    expect(their_rows.filter(has_text=f"theirs-{mark}")).to_have_count(1, timeout=10_000)
    expect(their_rows).to_have_count(1)
    theirs.get_by_test_id("nav-wall").click()
    expect(theirs.get_by_test_id("tile-rival_star")).to_be_visible()
    expect(theirs.locator("[data-testid^=tile-]")).to_have_count(1)
    content = theirs.content()
    assert f"ours-{mark}" not in content and f"title-{mark}" not in content
    assert "cool_user" not in content and "Northwind" not in content

    # and the other way round: one more of ours, sent once theirs has arrived
    send(
        env,
        "channel.follow",
        "1337",
        "cool_user",
        user_login=f"after-{mark}",
        user_name=f"after-{mark}",
    )
    expect(ours_rows.filter(has_text=f"after-{mark}")).to_have_count(1, timeout=10_000)
    content = ours.content()
    assert f"theirs-{mark}" not in content and "RivalStar" not in content
    ours.close()
    theirs.close()


def test_a_cut_socket_resumes_with_every_event_once_in_order(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    page = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    page.get_by_test_id("nav-feed").click()
    send(env, "channel.follow", "1337", "cool_user")
    page.wait_for_timeout(1000)
    before = feed_seqs(page)
    relay = stack.relays[0]
    relay.stop()  # the socket is cut
    expect(page.get_by_test_id("connection")).to_have_text("reconnecting", timeout=10_000)
    for _ in range(8):
        send(env, "channel.follow", "1971641", "streamer")
    relay.start()  # the same address comes back
    expect(page.get_by_test_id("connection")).to_have_text("live", timeout=30_000)
    page.wait_for_timeout(1500)
    after = feed_seqs(page)
    assert len(after) == len(set(after)), "an event is shown twice"
    assert after == list(range(after[0], after[-1] + 1)), "an event is missing"
    assert len(after) >= len(before) + 8
    page.close()


def test_branding_set_by_an_admin_shows_to_a_viewer_who_sees_no_admin_controls(
    browser: Browser, stack: LocalStack, demo: seed.SeedResult
) -> None:
    admin = open_dashboard(browser, stack, demo.admin_subject, demo.company_id, "admin")
    # the strict CSP must not cost the dashboard anything: the upload to storage, the logo
    # shown from it, and a reload with the logo all run without a single violation
    refused: list[str] = []
    admin.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    admin.get_by_test_id("nav-admin").click()
    admin.get_by_test_id("brand-name").fill("Northwind Talent Group")
    admin.get_by_test_id("brand-primary").fill("#ffcc00")
    admin.get_by_test_id("brand-save").click()
    expect(admin.get_by_test_id("company-name")).to_have_text("Northwind Talent Group")
    admin.get_by_test_id("brand-logo").set_input_files(
        files=[
            {
                "name": "logo.png",
                "mimeType": "image/png",
                "buffer": LOGO_PNG,
            }
        ]
    )
    expect(admin.locator("img.logo")).to_be_visible(timeout=10_000)
    admin.screenshot(path=str(SCREENSHOTS / "settings.png"))
    admin.reload()
    admin.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=15_000)
    expect(admin.locator("img.logo")).to_be_visible(timeout=10_000)
    assert refused == []
    admin.close()
    # a viewer of the same company
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())  # type: ignore[union-attr]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, demo.company_id):
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'e2e-viewer') "
            "ON CONFLICT (company_id, subject) DO UPDATE SET subject = EXCLUDED.subject "
            "RETURNING id",
            (demo.company_id,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer') "
            "ON CONFLICT DO NOTHING",
            (demo.company_id, user),
        )
    viewer = open_dashboard(browser, stack, "e2e-viewer", demo.company_id, "viewer")
    expect(viewer.get_by_test_id("company-name")).to_have_text("Northwind Talent Group")
    expect(viewer.locator("img.logo")).to_be_visible()
    brand = viewer.locator(".app").evaluate(
        "el => getComputedStyle(el).getPropertyValue('--brand').trim()"
    )
    assert brand == "#ffcc00"
    on_brand = viewer.locator(".app").evaluate(
        "el => getComputedStyle(el).getPropertyValue('--on-brand').trim()"
    )
    assert on_brand == "#000000"  # dark text on a light brand colour
    expect(viewer.get_by_test_id("nav-admin")).to_have_count(0)
    viewer.get_by_test_id("nav-feed").click()
    expect(viewer.locator("button.ack")).to_have_count(0)
    viewer.close()
