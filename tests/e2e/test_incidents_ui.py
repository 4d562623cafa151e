"""The incident panel, the tile badge, live viewers and the alerting admin in a real browser,
against the whole local stack: incidents opened by the real pipeline (signed deliveries →
webhook → Cloud Tasks → persist → detection → relay), viewers by the audience pulse."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, dev_token_sign_in, send, service_environment
from tests.e2e.conftest import api as _api
from tests.integration.conftest import services_stack

LIVE = 15_000  # ms: through the webhook, the queue, persist and the relay
PULSE = 30_000  # ms: a few runs of the audience pulse
SCREEN = {"width": 1920, "height": 1080}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # the pulse every few seconds instead of every minute, so the tiles see several samples
    with (
        dev_token_sign_in(),
        service_environment(PULSE_INTERVAL_SECONDS="3"),
        services_stack(tmp_path_factory, "e2e-incidents") as running,
    ):
        yield running


def _member(stack: LocalStack, company: uuid.UUID, subject: str, role: str) -> None:
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())  # type: ignore[union-attr]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, %s) "
            "ON CONFLICT (company_id, subject) DO UPDATE SET subject = EXCLUDED.subject "
            "RETURNING id",
            (company, subject),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s) "
            "ON CONFLICT (company_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            (company, user, role),
        )


def _person(
    browser: Browser, stack: LocalStack, subject: str, company: uuid.UUID, role: str
) -> tuple[BrowserContext, Page]:
    """A person of their own (cookies, storage) on a full-HD wall."""
    assert stack.endpoints is not None and stack.endpoints.relay_url
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.goto(f"{stack.endpoints.relay_url}/#token={stack.keys.token(subject, company, role)}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    return context, page


def _incident(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("incident").filter(has_text=re.compile(re.escape(text)))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_an_incident_opens_live_and_its_acknowledgement_is_shared_by_the_team(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    _member(stack, demo.company_id, "e2e-operator", "operator")
    _member(stack, demo.company_id, "e2e-viewer", "viewer")
    admin_context, admin = _person(browser, stack, demo.admin_subject, demo.company_id, "admin")
    operator_context, operator = _person(
        browser, stack, "e2e-operator", demo.company_id, "operator"
    )
    viewer_context, viewer = _person(browser, stack, "e2e-viewer", demo.company_id, "viewer")
    expect(admin.get_by_test_id("incidents-empty")).to_be_visible()
    # the team's Discord channel: the local notification sink
    token = stack.keys.token(demo.admin_subject, demo.company_id, "admin")
    channel = {
        "kind": "discord",
        "name": "Agency alerts",
        "url": stack.sink.channel_url("discord", "agency-alerts"),
        "min_severity": "warning",
    }
    _api(stack, token, "POST", "/notification-channels", channel)
    # three streams live, each sampled a few times by the pulse: counts and lines on the tiles
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    audience = {
        ("1337", "cool_user"): (1650, 1720, 1810),
        ("41245072", "northwind_nova"): (11800, 12150, 12400),
        ("1971641", "streamer"): (610, 655, 640),
    }
    for broadcaster, login in audience:
        send(env, "stream.online", broadcaster, login, started_at=_now())
    for step in range(3):
        for (broadcaster, login), counts in audience.items():
            twitchsim.set_stream(twitch, broadcaster, counts[step], login=login)
        for (_, login), counts in audience.items():
            expect(
                admin.get_by_test_id(f"tile-{login}").get_by_test_id("viewer-count")
            ).to_have_text(f"{counts[step]:,} viewers", timeout=PULSE)
    expect(admin.get_by_test_id("tile-cool_user").get_by_test_id("sparkline")).to_be_visible()

    send(env, "channel.raid", "1337", "cool_user", viewers=5000)
    raid = _incident(admin, "Raid from")
    expect(raid).to_have_count(1, timeout=LIVE)  # live: no reload
    expect(raid.get_by_test_id("severity")).to_have_text("warning")
    expect(raid).to_contain_text("Cool_User")
    expect(raid).to_contain_text("5,000 viewers")
    expect(raid.get_by_test_id("incident-status")).to_have_text("open")
    badge = admin.get_by_test_id("tile-cool_user").get_by_test_id("incident-badge")
    expect(badge).to_have_attribute("data-severity", "warning")
    expect(badge.get_by_test_id("incident-count")).to_have_text("1")

    # a follow-bot spike right after the raid: critical, and the tile's badge says so
    for n in range(40):
        send(
            env,
            "channel.follow",
            "1337",
            "cool_user",
            user_id=f"990{n:04d}",
            user_login=f"bot_{n}",
            user_name=f"bot_{n}",
            followed_at=_now(),
        )
    expect(admin.get_by_test_id("incident").locator(".sev.critical")).to_have_count(1, timeout=LIVE)
    expect(badge).to_have_attribute("data-severity", "critical", timeout=LIVE)
    expect(badge.get_by_test_id("incident-count")).to_have_text("2")
    # and an info one for another creator
    send(env, "channel.subscription.gift", "41245072", "northwind_nova", total=60)
    expect(_incident(admin, "60 subs")).to_have_count(1, timeout=LIVE)

    # a viewer sees the incidents, not the buttons' power
    expect(_incident(viewer, "Raid from")).to_have_count(1, timeout=LIVE)
    refused = _incident(viewer, "Raid from").get_by_test_id("incident-ack")
    expect(refused).to_have_attribute("aria-disabled", "true")
    expect(refused).to_have_attribute(
        "title", "Operators, admins and owners acknowledge, resolve and assign incidents"
    )

    # acknowledged by one person, acknowledged for everyone of the company
    expect(_incident(operator, "Raid from")).to_have_count(1, timeout=LIVE)
    admin.screenshot(path=str(SCREENSHOTS / "incidents-panel.png"))
    raid.get_by_test_id("incident-ack").click()
    expect(raid.get_by_test_id("incident-status")).to_have_text("acknowledged")
    shared = _incident(operator, "Raid from").get_by_test_id("incident-status")
    expect(shared).to_have_text("acknowledged", timeout=LIVE)
    expect(_incident(viewer, "Raid from").get_by_test_id("incident-status")).to_have_text(
        "acknowledged", timeout=LIVE
    )

    # the notifications' link opens the wall with the incident's details, also on a fresh load
    incident_id = raid.get_attribute("data-id")
    assert incident_id
    operator.goto(f"{stack.endpoints.relay_url}/#/incidents/{incident_id}")  # type: ignore[union-attr]
    operator.reload()
    operator.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    drawer = operator.get_by_test_id("incident-drawer")
    expect(drawer).to_contain_text("5,000 viewers")
    expect(drawer.get_by_test_id("drawer-status")).to_have_text("acknowledged")
    expect(drawer.get_by_test_id("drawer-events").locator("li")).not_to_have_count(0)
    drawer.get_by_test_id("incident-assign").click()
    expect(drawer).to_contain_text("assigned to you")
    drawer.get_by_test_id("note-body").fill("Raid from a partner channel; chat mods are on it.")
    drawer.get_by_test_id("note-add").click()
    expect(drawer.get_by_test_id("drawer-notes")).to_contain_text("partner channel")
    # what was posted for it, per channel: opened and acknowledged, each delivered
    posted = drawer.get_by_test_id("drawer-deliveries").filter(has_text="Agency alerts")
    expect(posted.locator(".delivery.delivered")).to_have_count(2, timeout=LIVE)
    operator.screenshot(path=str(SCREENSHOTS / "incidents-drawer.png"))

    # resolved: it leaves every panel, and the badge counts one less
    drawer.get_by_test_id("incident-resolution").fill("Partner raid, nothing to do")
    drawer.get_by_test_id("incident-resolve").click()
    expect(drawer.get_by_test_id("drawer-status")).to_have_text("resolved")
    expect(drawer).to_contain_text("Partner raid, nothing to do")
    expect(_incident(admin, "Raid from")).to_have_count(0, timeout=LIVE)
    expect(badge.get_by_test_id("incident-count")).to_have_text("1")

    # acknowledging moved from events to incidents: the feed has no per-event button
    admin.get_by_test_id("nav-feed").click()
    expect(admin.locator("[data-testid=feed-row]").first).to_be_visible()
    expect(admin.locator("button.ack")).to_have_count(0)
    for context in (admin_context, operator_context, viewer_context):
        context.close()


def test_tiles_show_live_viewers_and_the_last_hour(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    context, page = _person(browser, stack, demo.admin_subject, demo.company_id, "admin")
    tile = page.get_by_test_id("tile-pixel_pioneer")
    count = tile.get_by_test_id("viewer-count")
    expect(count).to_have_text("—")  # offline, or no sample yet
    expect(tile.get_by_test_id("viewers")).to_have_attribute(
        "title", re.compile("^(no sample yet|offline at the last sample)$")
    )
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    twitchsim.set_stream(twitch, "52871934", 1200, login="pixel_pioneer")
    expect(count).to_have_text("1,200 viewers", timeout=PULSE)
    twitchsim.set_stream(twitch, "52871934", 1350, login="pixel_pioneer")
    expect(count).to_have_text("1,350 viewers", timeout=PULSE)
    expect(tile.get_by_test_id("sparkline").locator("polyline")).to_have_count(1)
    # a fresh load draws the line from the stored samples; the person's alert sound (off
    # until turned on) is remembered by this browser
    sound = page.get_by_test_id("alert-sound")
    expect(sound).not_to_be_checked()
    sound.check()
    page.reload()
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    expect(tile.get_by_test_id("sparkline").locator("polyline")).to_have_count(1)
    expect(page.get_by_test_id("alert-sound")).to_be_checked()
    context.close()


def test_admins_tune_a_rule_and_add_a_channel_whose_url_is_never_shown(
    browser: Browser, stack: LocalStack, demo: seed.SeedResult
) -> None:
    context, page = _person(browser, stack, demo.admin_subject, demo.company_id, "admin")
    page.get_by_test_id("nav-admin").click()
    rule = page.get_by_test_id("rule-raid_incoming")
    threshold = rule.get_by_test_id("param-min_viewers")
    expect(threshold).to_have_value("1000")
    # out of range: said before anything is sent
    threshold.fill("0")
    rule.get_by_test_id("rule-save").click()
    expect(rule.get_by_test_id("rule-error")).to_contain_text("a whole number from")
    threshold.fill("2500")
    rule.get_by_test_id("rule-save").click()
    expect(rule.get_by_test_id("rule-message")).to_have_text("Saved")
    expect(rule.get_by_test_id("rule-error")).to_have_count(0)

    secret = uuid.uuid4().hex
    url = stack.sink.channel_url("discord", f"ops-{secret}")
    page.get_by_test_id("channel-add").click()
    form = page.get_by_test_id("channel-form")
    form.get_by_test_id("channel-kind").select_option("discord")
    form.get_by_test_id("channel-name").fill("Ops alerts")
    form.get_by_test_id("channel-url").fill(url)
    form.get_by_test_id("channel-min-severity").select_option("warning")
    form.get_by_test_id("channel-quiet").check()
    form.get_by_test_id("channel-save").click()
    row = page.get_by_test_id("channel-Ops alerts")
    expect(row).to_be_visible(timeout=LIVE)
    hint = row.get_by_test_id("channel-url-hint").inner_text()
    assert hint.endswith(secret[-4:]) and secret not in hint  # masked: the last four only
    assert secret not in page.content()
    # a test post, through the queue to the sink
    row.get_by_test_id("channel-test").click()
    expect(row.get_by_test_id("channel-test-result")).to_have_text(
        re.compile("^Delivered"), timeout=LIVE * 2
    )
    row.get_by_test_id("channel-log").click()
    expect(page.get_by_test_id("delivery-log")).to_contain_text("test")
    # editing leaves the URL field empty: the sealed one stays unless a new one is typed
    row.get_by_test_id("channel-edit").click()
    expect(page.get_by_test_id("channel-form").get_by_test_id("channel-url")).to_have_value("")
    page.get_by_test_id("channel-form").get_by_role("button", name="Cancel").click()
    page.get_by_test_id("alert-rules").scroll_into_view_if_needed()
    page.get_by_test_id("notification-channels").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "admin-alerts.png"))

    # saved means stored: a fresh load shows the threshold
    page.reload()
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    page.get_by_test_id("nav-admin").click()
    expect(
        page.get_by_test_id("rule-raid_incoming").get_by_test_id("param-min_viewers")
    ).to_have_value("2500")
    expect(page.get_by_test_id("channel-Ops alerts")).to_be_visible()
    # deleted only once confirmed
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("channel-Ops alerts").get_by_test_id("channel-delete").click()
    expect(page.get_by_test_id("channel-Ops alerts")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("channel-Ops alerts").get_by_test_id("channel-delete").click()
    expect(page.get_by_test_id("channel-Ops alerts")).to_have_count(0)
    context.close()
