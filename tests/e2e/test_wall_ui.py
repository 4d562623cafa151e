"""The wall as an operations room uses it (issue 19), in a real browser against the whole local
stack: the summary strip, sort and group, the dense layout, the keyboard, and the TV mode with
its page cycle and critical band. An agency of 240 creators is written to the database; their
viewers come from the audience pulse (the Twitch stand-in's streams), incidents from the table
the detection writes, and a resolution through the REST API reaches the screen live."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, api, dev_token_sign_in, service_environment
from tests.integration.conftest import services_stack

LIVE = 15_000  # ms: through the relay
PULSE = 30_000  # ms: a few runs of the audience pulse
SCREEN = {"width": 1920, "height": 1080}
CREATORS = 240
# five streams live, with these audiences (the pulse samples them from the Twitch stand-in)
AUDIENCE = {0: 1000, 1: 2500, 2: 400, 3: 7000, 4: 50}
# the creators the grouping test narrows the wall to (by title), with their labels
GROUPED = {0: ["Esports"], 1: ["IRL"], 2: ["Esports", "IRL"], 3: []}
INCIDENTS = {5: "critical", 6: "warning", 7: "info", 8: "info"}
SUBJECT = "wall-admin"


@dataclass(frozen=True)
class Agency:
    company: uuid.UUID
    creators: dict[int, uuid.UUID]
    incidents: dict[int, uuid.UUID]


def _login(n: int) -> str:
    return f"wall_{n:03d}"


def _name(n: int) -> str:
    return f"Wall{n:03d}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # the pulse every few seconds instead of every minute, so viewers arrive while we look
    with (
        dev_token_sign_in(),
        service_environment(PULSE_INTERVAL_SECONDS="3"),
        services_stack(tmp_path_factory, "e2e-wall") as running,
    ):
        yield running


@pytest.fixture(scope="module")
def agency(stack: LocalStack, env: dict[str, str]) -> Agency:
    company = uuid.uuid4()
    creators: dict[int, uuid.UUID] = {}
    incidents: dict[int, uuid.UUID] = {}
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, 'Wall Agency', %s)",
            (company, f"wall-{company.hex[:8]}"),
        )
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
            (company, SUBJECT),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'admin')",
            (company, user),
        )
        for n in range(CREATORS):
            live = n in AUDIENCE
            creators[n] = conn.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name, "
                "labels, status, live_since, title) VALUES (%s, %s, %s, %s, %s, %s, "
                "CASE WHEN %s THEN now() END, %s) RETURNING id",
                (
                    company,
                    f"88{n:05d}",
                    _login(n),
                    _name(n),
                    GROUPED.get(n, []),
                    "live" if live else "offline",
                    live,
                    "group test" if n in GROUPED else f"stream {n}",
                ),
            ).fetchone()["id"]
        for number, (n, severity) in enumerate(INCIDENTS.items(), start=1):
            incidents[n] = conn.execute(
                "INSERT INTO incidents (company_id, number, creator_id, rule, severity, title, "
                "dedup_key, opened_at) VALUES (%s, %s, %s, 'gift_bomb', %s, %s, %s, now()) "
                "RETURNING id",
                (
                    company,
                    number,
                    creators[n],
                    severity,
                    f"{severity.title()} trouble for {_name(n)}",
                    f"wall-test:{n}",
                ),
            ).fetchone()["id"]
        conn.execute(
            "INSERT INTO event_sequences (company_id, last_incident) VALUES (%s, %s) "
            "ON CONFLICT (company_id) DO UPDATE SET last_incident = EXCLUDED.last_incident",
            (company, len(INCIDENTS)),
        )
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    for n, viewers in AUDIENCE.items():
        twitchsim.set_stream(twitch, f"88{n:05d}", viewers, login=_login(n))
    return Agency(company, creators, incidents)


def _person(browser: Browser, stack: LocalStack, agency: Agency) -> tuple[BrowserContext, Page]:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    token = stack.keys.token(SUBJECT, agency.company, "admin")
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    return context, page


def _tiles(page: Page, scope: str = "") -> list[str]:
    logins = page.locator(f"{scope} [data-testid^=tile-]").evaluate_all(
        "tiles => tiles.map(t => t.dataset.testid.slice(5))"
    )
    return [str(login) for login in logins]


def _on_screen(page: Page) -> int:
    """Tiles drawn inside the window (virtualization keeps a row either side in the page)."""
    return int(
        page.locator("[data-testid^=tile-]").evaluate_all(
            "tiles => tiles.filter(t => { const r = t.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0"
            " && r.right <= innerWidth; }).length"
        )
    )


def test_the_summary_strip_counts_what_was_seeded(
    browser: Browser, stack: LocalStack, agency: Agency
) -> None:
    context, page = _person(browser, stack, agency)
    strip = page.get_by_test_id("wall-summary")
    expect(strip.get_by_test_id("summary-live")).to_have_attribute("data-value", str(len(AUDIENCE)))
    expect(strip.get_by_test_id("summary-live")).to_contain_text(
        f"{len(AUDIENCE)} live of {CREATORS}"
    )
    total = sum(AUDIENCE.values())
    viewers = strip.get_by_test_id("summary-viewers")
    expect(viewers).to_have_attribute("data-value", str(total), timeout=PULSE)
    expect(viewers).to_contain_text(f"{total:,} viewers")
    for severity in ("critical", "warning", "info"):
        want = sum(1 for s in INCIDENTS.values() if s == severity)
        count = strip.get_by_test_id(f"summary-{severity}")
        expect(count).to_have_attribute("data-value", str(want))
        expect(count).to_contain_text(f"{want} {severity}")  # a word, not colour alone
    # a tile says live and offline in words too, and its incident's severity
    expect(page.get_by_test_id(f"tile-{_login(3)}").get_by_test_id("status")).to_contain_text(
        "LIVE"
    )
    offline = page.get_by_test_id(f"tile-{_login(5)}")
    expect(offline.get_by_test_id("status")).to_have_text("○offline")
    expect(offline.get_by_test_id("incident-badge")).to_contain_text("critical")
    label = offline.get_attribute("aria-label") or ""
    assert label.startswith(
        f"{_name(5)}, offline, viewers unavailable, 1 unresolved incident, highest critical"
    )
    page.screenshot(path=str(SCREENSHOTS / "wall-summary.png"))
    context.close()


def test_sort_by_viewers_and_group_by_label(
    browser: Browser, stack: LocalStack, agency: Agency
) -> None:
    context, page = _person(browser, stack, agency)
    expect(page.get_by_test_id("summary-viewers")).to_have_attribute(
        "data-value", str(sum(AUDIENCE.values())), timeout=PULSE
    )
    page.get_by_test_id("wall-sort").select_option("viewers")
    by_audience = [_login(n) for n, _ in sorted(AUDIENCE.items(), key=lambda kv: -kv[1])]
    assert _tiles(page)[: len(AUDIENCE)] == by_audience

    page.get_by_test_id("wall-filter").fill("group test")
    page.get_by_test_id("wall-sort").select_option("name")
    page.get_by_test_id("wall-group").select_option("label")
    headings = page.get_by_test_id("wall-group-heading")
    expect(headings).to_have_count(3)
    assert headings.evaluate_all("hs => hs.map(h => h.dataset.label)") == [
        "Esports",
        "IRL",
        "No label",
    ]
    # a creator with two labels appears under each
    for label in ("Esports", "IRL"):
        want = [_login(n) for n, labels in GROUPED.items() if label in labels]
        assert _tiles(page, f"[data-group='{label}']") == want
    assert _tiles(page, "[data-group='No label']") == [_login(3)]
    page.get_by_test_id("wall-group").select_option("none")
    expect(headings).to_have_count(0)
    context.close()


def test_the_dense_layout_fits_many_more_creators_and_is_remembered(
    browser: Browser, stack: LocalStack, agency: Agency
) -> None:
    context, page = _person(browser, stack, agency)
    wall = page.get_by_test_id("wall")
    expect(wall).to_have_attribute("data-density", "comfortable")
    expect(page.locator("[data-testid^=tile-]").first).to_be_visible()
    comfortable = _on_screen(page)
    # virtualization: far fewer tiles in the page than creators
    assert page.locator("[data-testid^=tile-]").count() < CREATORS / 2
    page.get_by_test_id("wall-density-dense").click()
    expect(wall).to_have_attribute("data-density", "dense")
    expect(page.get_by_test_id("wall-density-dense")).to_have_attribute("aria-pressed", "true")
    dense = _on_screen(page)
    assert dense >= 2 * comfortable, (dense, comfortable)
    page.screenshot(path=str(SCREENSHOTS / "wall-dense.png"))
    # scrolled to the end, the last creators are drawn (and the first ones no longer)
    wall.evaluate("w => { w.scrollTop = w.scrollHeight; }")
    expect(page.get_by_test_id(f"tile-{_login(CREATORS - 1)}")).to_be_visible()
    expect(page.get_by_test_id(f"tile-{_login(10)}")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("wall")).to_have_attribute("data-density", "dense", timeout=LIVE)
    page.get_by_test_id("wall-density-comfortable").click()
    context.close()


def test_the_wall_keyboard(browser: Browser, stack: LocalStack, agency: Agency) -> None:
    context, page = _person(browser, stack, agency)
    wall = page.get_by_test_id("wall")
    sort = page.get_by_test_id("wall-sort")
    expect(page.locator("[data-testid^=tile-]").first).to_be_visible()
    page.locator("body").press("/")
    expect(page.get_by_test_id("wall-filter")).to_be_focused()
    # typing in the filter is typing, not shortcuts
    page.keyboard.type("sd")
    expect(page.get_by_test_id("wall-filter")).to_have_value("sd")
    expect(sort).to_have_value("live")
    expect(wall).to_have_attribute("data-density", "comfortable")
    page.get_by_test_id("wall-filter").fill("")
    page.get_by_test_id("wall-filter").blur()
    page.keyboard.press("s")
    expect(sort).to_have_value("viewers")
    page.keyboard.press("s")
    expect(sort).to_have_value("incidents")
    page.keyboard.press("d")
    expect(wall).to_have_attribute("data-density", "dense")
    page.keyboard.press("d")
    expect(wall).to_have_attribute("data-density", "comfortable")
    # incidents first: the critical one leads; arrows move between tiles, one tab stop
    first = page.locator("[data-slot='0']")
    expect(first).to_have_attribute("data-testid", f"tile-{_login(5)}")
    expect(page.locator("article.tile[tabindex='0']")).to_have_count(1)
    first.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("[data-slot='1']")).to_be_focused()
    columns = page.locator(".wall-row").first.locator("article.tile").count()
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"[data-slot='{1 + columns}']")).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowLeft")
    expect(first).to_be_focused()
    expect(page.locator("article.tile[tabindex='0']")).to_have_attribute("data-slot", "0")
    # Enter on a tile with an incident opens it
    page.keyboard.press("Enter")
    drawer = page.get_by_test_id("incident-drawer")
    expect(drawer).to_be_visible(timeout=LIVE)
    expect(drawer).to_contain_text(f"Critical trouble for {_name(5)}")
    page.keyboard.press("s")  # still the wall's: the drawer has no input focused
    context.close()


def test_tv_mode_cycles_pages_and_shows_critical_incidents_until_resolved(
    browser: Browser, stack: LocalStack, agency: Agency
) -> None:
    context, page = _person(browser, stack, agency)
    page.evaluate("() => { location.hash = '/tv?cycle=2'; }")
    tv = page.get_by_test_id("tv-wall")
    expect(tv).to_be_visible(timeout=LIVE)
    # no top bar, no controls
    expect(page.locator(".topbar")).to_have_count(0)
    expect(page.get_by_test_id("nav-wall")).to_have_count(0)
    expect(tv.locator("select, input")).to_have_count(0)
    expect(tv.get_by_test_id("summary-live")).to_have_attribute("data-value", str(len(AUDIENCE)))
    expect(tv.get_by_test_id("tv-connection")).to_have_text("●Live")
    # pages cycle by themselves
    indicator = tv.get_by_test_id("tv-page")
    expect(indicator).to_have_text(re.compile(r"^1 / \d+$"))
    pages = int(indicator.inner_text().split("/")[1])
    assert pages >= 2
    first_page = _tiles(page, "[data-testid=tv-grid]")
    expect(indicator).to_have_text(f"2 / {pages}", timeout=10_000)
    assert _tiles(page, "[data-testid=tv-grid]") != first_page
    # the critical band: word, icon, creator, title, age; an alert for assistive technology
    band = tv.get_by_test_id("tv-critical")
    expect(band).to_have_attribute("role", "alert")
    expect(band).to_contain_text("CRITICAL")
    expect(band).to_contain_text(_name(5))
    expect(band).to_contain_text(f"Critical trouble for {_name(5)}")
    expect(band.locator("time")).to_contain_text("open ")
    expect(band.locator("svg.sev-icon")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "wall-tv.png"))
    # resolved elsewhere (here, the REST API): the band goes, live
    token = stack.keys.token(SUBJECT, agency.company, "admin")
    api(
        stack, token, "POST", f"/incidents/{agency.incidents[5]}/resolve", {"resolution": "handled"}
    )
    expect(band).to_have_count(0, timeout=LIVE)
    expect(tv.get_by_test_id("summary-critical")).to_have_attribute("data-value", "0")
    # Esc leaves TV mode for the wall
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("wall")).to_be_visible()
    expect(page.get_by_test_id("tv-wall")).to_have_count(0)
    context.close()


def test_the_wall_scales_from_a_laptop_to_a_4k_screen(
    browser: Browser, stack: LocalStack, agency: Agency
) -> None:
    context, page = _person(browser, stack, agency)
    expect(page.locator("[data-testid^=tile-]").first).to_be_visible()
    size = "parseFloat(getComputedStyle(document.querySelector('.wall-page')).fontSize)"
    at_1920 = page.evaluate(size)
    page.set_viewport_size({"width": 1366, "height": 768})
    expect(page.get_by_test_id("wall")).to_be_visible()
    page.wait_for_function(f"{size} < {at_1920}")
    assert page.evaluate("document.documentElement.scrollWidth - innerWidth") <= 0
    assert _on_screen(page) >= 6
    page.screenshot(path=str(SCREENSHOTS / "wall-1366.png"))
    page.set_viewport_size({"width": 3840, "height": 2160})
    page.wait_for_function(f"{size} > 1.5 * {at_1920}")  # the type grows with the screen
    assert page.evaluate("document.documentElement.scrollWidth - innerWidth") <= 0
    assert _on_screen(page) >= 40
    page.screenshot(path=str(SCREENSHOTS / "wall-3840.png"))
    context.close()
