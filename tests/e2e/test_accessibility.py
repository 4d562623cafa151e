"""Accessibility in a real browser against the whole local stack: axe-core's WCAG 2.1 A/AA rules
over every page in both themes, with a brand colour that would be unreadable unadjusted, and
one path through sign-in, the wall, the feed, an incident and the settings by keyboard only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import api as _api
from tests.e2e.conftest import dev_token_sign_in, send, service_environment
from tests.integration.conftest import services_stack

LIVE = 20_000  # ms: through the webhook, the queue, persist, detection and the relay
SCREEN = {"width": 1920, "height": 1080}
AXE = Path(__file__).resolve().parents[2] / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"serious", "critical"}
# brand colours that fail unadjusted: yellow and green vanish on the light theme's white cards,
# navy on the dark theme's near-black page
BRANDS = {
    "light": {"primary_color": "#ffff00", "accent_color": "#00ff00"},
    "dark": {"primary_color": "#000080", "accent_color": "#000080"},
}
COOL = ("1337", "cool_user")
NOVA = ("41245072", "northwind_nova")
MAX_TABS = 150  # presses to reach any control of a page by Tab alone


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with (
        dev_token_sign_in(),
        service_environment(PULSE_INTERVAL_SECONDS="3"),
        services_stack(tmp_path_factory, "e2e-accessibility") as running,
    ):
        yield running


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture(scope="module")
def incidents(env: dict[str, str], demo: seed.SeedResult) -> None:
    """Two creators live with viewers, a raid (a warning) and a follow-bot spike (critical)."""
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    for (broadcaster, login), viewers in ((COOL, 1720), (NOVA, 12150)):
        send(env, "stream.online", broadcaster, login, started_at=_now())
        twitchsim.set_stream(twitch, broadcaster, viewers, login=login)
    send(env, "channel.raid", *COOL, viewers=5000)
    for n in range(40):
        send(
            env,
            "channel.follow",
            *COOL,
            user_id=f"880{n:04d}",
            user_login=f"bot_{n}",
            user_name=f"bot_{n}",
            followed_at=_now(),
        )
    send(env, "channel.cheer", *NOVA, bits=500)


def _relative_luminance(hex_colour: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    h = hex_colour.strip().lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_relative_luminance(a), _relative_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _scan(page: Page, where: str, found: list[str]) -> None:
    """axe-core over the whole document as it is on screen: serious and critical violations go
    into `found`, minor and moderate ones are printed."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated, so the page's CSP stays on
    violations: list[dict[str, object]] = page.evaluate(
        """async (tags) => (await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                     resultTypes: ["violations"]})).violations
             .map((v) => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map((n) => n.target.join(" ") + ": "
                 + (n.failureSummary || "").split("\\n").slice(1).join(" ").trim())}))""",
        WCAG,
    )
    for v in violations:
        nodes: list[str] = v["nodes"]  # type: ignore[assignment]
        line = f"[{where}] {v['impact']} {v['id']} ({v['help']}): " + " | ".join(nodes[:6])
        if v["impact"] in BLOCKING:
            found.append(line)
        else:
            print("axe (not blocking):", line)


def _var(page: Page, selector: str, name: str) -> str:
    value: str = page.locator(selector).first.evaluate(
        "(el, name) => getComputedStyle(el).getPropertyValue(name).trim()", name
    )
    return value


def _live(page: Page) -> None:
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_page_in_both_themes_has_no_serious_violation(
    browser: Browser,
    stack: LocalStack,
    demo: seed.SeedResult,
    incidents: None,
    theme: str,
    tmp_path: Path,
) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    token = stack.keys.token(demo.admin_subject, demo.company_id, "admin")
    _api(stack, token, "PATCH", "/company", BRANDS[theme])
    context = browser.new_context(viewport=SCREEN)
    # the theme this browser chose before (theme.ts keeps it under this key)
    context.add_init_script(f"localStorage.setItem('controlroom.theme', '{theme}')")
    page = context.new_page()
    found: list[str] = []

    page.goto(f"{stack.endpoints.relay_url}/")
    expect(page.locator("textarea#token")).to_be_visible(timeout=LIVE)
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    _scan(page, f"{theme} sign-in", found)

    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    _live(page)
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    toggle = page.get_by_test_id("theme-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "true" if theme == "light" else "false")
    # the brand as shown: moved until it stands out from the page and the cards (3:1)
    brand, accent = _var(page, ".app", "--brand"), _var(page, ".app", "--accent")
    assert brand.lower() != BRANDS[theme]["primary_color"]
    for ground in (_var(page, ".app", "--bg"), _var(page, ".app", "--surface")):
        assert _contrast(brand, ground) >= 3, (brand, ground)
        assert _contrast(accent, ground) >= 3, (accent, ground)
    assert _contrast(brand, _var(page, ".app", "--on-brand")) >= 4.5

    # the wall: creators, an open critical incident, and its details open
    expect(page.get_by_test_id("tile-cool_user")).to_be_visible()
    critical = page.get_by_test_id("incident").filter(has=page.locator(".sev.critical"))
    expect(critical.first).to_be_visible(timeout=LIVE)
    _scan(page, f"{theme} wall", found)
    critical.first.get_by_test_id("incident-open").click()
    expect(page.get_by_test_id("incident-drawer")).to_be_visible()
    expect(page.get_by_test_id("drawer-events").locator("li")).not_to_have_count(0)
    page.screenshot(path=str(tmp_path / f"wall-{theme}.png"))
    _scan(page, f"{theme} wall with an incident's details", found)
    page.get_by_test_id("drawer-close").click()

    page.get_by_test_id("nav-feed").click()
    expect(page.get_by_test_id("feed-row").first).to_be_visible(timeout=LIVE)
    _scan(page, f"{theme} feed", found)

    page.get_by_test_id("nav-analytics").click()
    expect(page.get_by_test_id("card-value").first).to_be_visible(timeout=LIVE)
    expect(page.locator(".an-plot canvas").first).to_be_visible(timeout=LIVE)
    page.screenshot(path=str(tmp_path / f"analytics-{theme}.png"))
    _scan(page, f"{theme} analytics", found)

    # settings & admin: branding, creators, invitations, members, alert rules, channels
    page.get_by_test_id("nav-admin").click()
    expect(page.get_by_test_id("settings")).to_be_visible()
    expect(page.get_by_test_id("alert-rules")).to_be_visible(timeout=LIVE)
    expect(page.get_by_test_id("notification-channels")).to_be_visible()
    _scan(page, f"{theme} settings & admin", found)
    page.get_by_test_id("channel-add").click()
    expect(page.get_by_test_id("channel-form")).to_be_visible()
    page.screenshot(path=str(tmp_path / f"admin-{theme}.png"), full_page=True)
    _scan(page, f"{theme} settings & admin, a new channel's form", found)

    # TV mode: the wall alone, large
    page.evaluate("() => { window.location.hash = '/tv'; }")
    expect(page.get_by_test_id("tv-wall")).to_be_visible(timeout=LIVE)
    expect(page.get_by_test_id("tv-critical")).to_be_visible()
    expect(page.locator(".topbar")).to_have_count(0)
    page.screenshot(path=str(tmp_path / f"tv-{theme}.png"))
    _scan(page, f"{theme} TV mode", found)
    context.close()
    assert found == [], "\n".join(found)


def _focused(page: Page) -> str:
    """What has the focus: its test id, else its tag and id."""
    described: str = page.evaluate(
        """() => { const el = document.activeElement;
          return el ? (el.dataset.testid || `${el.tagName.toLowerCase()}#${el.id}`) : ""; }"""
    )
    return described


def _tab_to(page: Page, selector: str, *, back: bool = False) -> None:
    """Tab (or Shift+Tab) until the focus is on `selector`; fails if it never gets there."""
    for _ in range(MAX_TABS):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"{selector} not reached by keyboard; the focus is on {_focused(page)}")


def test_keyboard_only_from_sign_in_to_an_acknowledged_incident_and_the_settings(
    browser: Browser, stack: LocalStack, demo: seed.SeedResult, incidents: None
) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    token = stack.keys.token(demo.admin_subject, demo.company_id, "admin")
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.goto(f"{stack.endpoints.relay_url}/")
    expect(page.locator("textarea#token")).to_be_visible(timeout=LIVE)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # the default

    # sign-in: the token field, typed into, then its button
    _tab_to(page, "textarea#token")
    page.keyboard.insert_text(token)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.type") == "submit", _focused(page)
    page.keyboard.press("Enter")
    _live(page)
    expect(page.get_by_test_id("nav-wall")).to_have_attribute("aria-current", "true")

    # the theme, switched with the space bar
    _tab_to(page, "[data-testid=theme-toggle]")
    page.keyboard.press("Space")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    expect(page.get_by_test_id("theme-toggle")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Space")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")

    # the feed and back
    _tab_to(page, "[data-testid=nav-feed]")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("nav-feed")).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("feed-row").first).to_be_visible(timeout=LIVE)
    expect(page.get_by_test_id("nav-feed")).to_be_focused()
    _tab_to(page, "[data-testid=nav-wall]", back=True)
    page.keyboard.press("Space")
    expect(page.get_by_test_id("nav-wall")).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("tile-cool_user")).to_be_visible()

    # an open incident: its details by Enter (the focus moves into them), acknowledged by
    # Enter, closed by Escape (the focus goes back to what opened them)
    opener = '[data-testid=incident][data-status=open] [data-testid="incident-open"]'
    expect(page.locator(opener).first).to_be_visible(timeout=LIVE)
    _tab_to(page, opener)
    incident_id = page.evaluate("() => document.activeElement.closest('[data-id]').dataset.id")
    page.keyboard.press("Enter")
    drawer = page.get_by_test_id("incident-drawer")
    expect(drawer).to_be_visible()
    expect(drawer.get_by_test_id("drawer-close")).to_be_focused()
    expect(drawer.get_by_test_id("drawer-status")).to_have_text("open")
    _tab_to(page, "[data-testid=incident-drawer] [data-testid=incident-ack]")
    page.keyboard.press("Enter")
    expect(drawer.get_by_test_id("drawer-status")).to_have_text("acknowledged", timeout=LIVE)
    page.keyboard.press("Escape")
    expect(drawer).to_have_count(0)
    panel_item = page.locator(f'[data-testid=incident][data-id="{incident_id}"]')
    expect(panel_item.get_by_test_id("incident-status")).to_have_text("acknowledged")
    expect(panel_item.get_by_test_id("incident-open")).to_be_focused()

    # the settings: the page, then its first field
    _tab_to(page, "[data-testid=nav-admin]", back=True)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("settings")).to_be_visible()
    expect(page.get_by_test_id("nav-admin")).to_have_attribute("aria-current", "true")
    _tab_to(page, "[data-testid=settings] input")
    expect(page.get_by_test_id("settings").locator("input").first).to_be_focused()
    context.close()
