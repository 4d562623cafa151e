"""The analytics page in a real browser against the whole local stack: figures made by the
real pipeline (signed EventSub deliveries → webhook → Cloud Tasks → persist → rollups, and
the audience pulse's samples), read through the API as a person sees them: cards against the
previous period, the leaderboard, a creator's drill-down, CSV exports, and a live update."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import SCREENSHOTS, dev_token_sign_in, send, service_environment
from tests.e2e.conftest import api as _api
from tests.integration.conftest import services_stack

LIVE = 20_000  # ms: through the webhook, the queue, persist, and the page's refetch (≤ 5 s)
PULSE = 30_000  # ms: a few runs of the audience pulse
SCREEN = {"width": 1920, "height": 1080}
AXE = Path(__file__).resolve().parents[2] / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
COOL = ("1337", "cool_user")
STREAMER = ("1971641", "streamer")
NOVA = ("41245072", "northwind_nova")
PIXEL = ("52871934", "pixel_pioneer")
# what each creator did, by hours ago: follows in the last 24 hours and in the 24 before,
# cheers (bits), tier-1 subs now; SpeedrunSam did nothing (and is still listed)
FOLLOWS = {
    COOL: ((20, 9, 1), (30, 40)),
    STREAMER: ((22, 15, 6, 2, 0.5), ()),
    NOVA: ((23, 21, 18, 14, 13, 12.5, 11, 8, 5, 4, 3.5, 0.2), (26, 33, 41, 47)),
    PIXEL: ((19, 16, 10, 7, 4.5, 3, 1.5), (29,)),
}
CHEERS = {COOL: (500,), STREAMER: (100,), NOVA: (500, 1000, 1000)}
SUBS = {COOL: 1, NOVA: 3}
LIVE_FOR = {COOL: (3, 1720), NOVA: (5, 12150)}  # hours live, viewers the pulse sees


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # the pulse every few seconds, so a live creator has viewer samples soon
    with (
        dev_token_sign_in(),
        service_environment(PULSE_INTERVAL_SECONDS="3"),
        services_stack(tmp_path_factory, "e2e-analytics") as running,
    ):
        yield running


def _at(hours_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _follow(env: dict[str, str], who: tuple[str, str], hours_ago: float) -> None:
    n = uuid.uuid4().int % 10**8
    send(
        env,
        "channel.follow",
        *who,
        user_id=str(n),
        user_login=f"fan_{n}",
        user_name=f"Fan_{n}",
        followed_at=_at(hours_ago),
    )


def populate(env: dict[str, str]) -> None:
    """The deliveries Twitch would have sent, signed, through the webhook."""
    for who, (recent, before) in FOLLOWS.items():
        for hours in (*recent, *before):
            _follow(env, who, hours)
    for who, amounts in CHEERS.items():
        for bits in amounts:
            send(env, "channel.cheer", *who, bits=bits)
    for who, count in SUBS.items():
        for _ in range(count):
            send(env, "channel.subscribe", *who, tier="1000", is_gift=False)
    twitch = env["HELIX_API_URL"].removesuffix("/helix")
    for who, (hours, viewers) in LIVE_FOR.items():
        send(env, "stream.online", *who, started_at=_at(hours))
        twitchsim.set_stream(twitch, who[0], viewers, login=who[1])


def _number(cell: str) -> float:
    return float(cell)


def _ranking(values: dict[str, float]) -> list[str]:
    """Logins as the leaderboard orders them: by value, then by display name."""
    names = {login: name for _, login, name in seed.DEMO_CREATORS}
    return sorted(names, key=lambda login: (-values.get(login, 0), names[login]))


def _accessibility_violations(page: Page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA rules over the analytics page, as it is on screen."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated, so the page's CSP stays on
    found: list[str] = page.evaluate(
        """async (tags) => (await axe.run(document.querySelector("[data-testid=analytics]"),
                                          {runOnly: tags})).violations
             .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)""",
        WCAG,
    )
    return found


def _card(page: Page, metric: str) -> Locator:
    return page.get_by_test_id(f"card-{metric}")


def _value(page: Page, metric: str) -> Locator:
    return _card(page, metric).get_by_test_id("card-value")


def _download(page: Page, button: str) -> tuple[str, list[list[str]]]:
    with page.expect_download() as done:
        page.get_by_test_id(button).click()
    download = done.value
    text = Path(download.path()).read_text(encoding="utf-8")
    return download.suggested_filename, list(csv.reader(io.StringIO(text)))


def test_cards_leaderboard_drill_down_exports_and_a_live_follow(
    browser: Browser, stack: LocalStack, env: dict[str, str], demo: seed.SeedResult
) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    token = stack.keys.token(demo.admin_subject, demo.company_id, "admin")
    _api(stack, token, "PATCH", "/company", {"time_zone": "Europe/Berlin"})
    ids = {c["twitch_login"]: c["id"] for c in _api(stack, token, "GET", "/creators")}

    populate(env)

    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    page.get_by_test_id("nav-analytics").click()
    assert page.url.endswith("#/analytics")
    expect(page.get_by_test_id("analytics-zone")).to_have_text("Days in Europe/Berlin")
    # by keyboard: the period is a radio group, the arrow keys move through it
    page.get_by_test_id("period-7d").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("period-24h")).to_be_checked()

    # the company's figures: every creator together, against the 24 hours before
    recent = sum(len(r) for r, _ in FOLLOWS.values())
    before = sum(len(b) for _, b in FOLLOWS.values())
    expect(_value(page, "follows")).to_have_text(str(recent), timeout=LIVE)
    expect(_card(page, "follows").get_by_test_id("card-previous")).to_have_text(
        f"previous {before}"
    )
    delta = _card(page, "follows").get_by_test_id("card-delta")
    expect(delta).to_have_attribute("data-dir", "up")
    expect(delta).to_contain_text(
        f"+{recent - before} (+{round((recent - before) / before * 100)}%)"
    )
    bits = sum(sum(a) for a in CHEERS.values())
    expect(_value(page, "bits")).to_have_text(f"{bits:,}", timeout=LIVE)
    expect(_value(page, "subs")).to_have_text(str(sum(SUBS.values())))
    peak = max(v for _, v in LIVE_FOR.values())
    expect(_value(page, "viewers_peak")).to_have_text(f"{peak:,}", timeout=PULSE)
    hours = sum(h for h, _ in LIVE_FOR.values())
    expect(_value(page, "live_minutes")).to_have_text(re.compile(rf"^{hours}(\.\d)? h$"))

    # the leaderboard: by follows (creators with nothing still listed), then by bits
    rows = page.get_by_test_id("leaderboard-row")
    by_follows = _ranking({who[1]: len(r) for who, (r, _) in FOLLOWS.items()})
    expect(rows).to_have_count(len(seed.DEMO_CREATORS))
    for n, login in enumerate(by_follows):
        expect(rows.nth(n)).to_have_attribute("data-creator", ids[login])
    expect(rows.first.get_by_test_id("leaderboard-value")).to_have_text(str(len(FOLLOWS[NOVA][0])))
    name, table = _download(page, "export-leaderboard")
    assert name.startswith("leaderboard_follows_") and name.endswith(".csv")
    assert table[0] == ["rank", "creator", "login", "follows", "previous"]
    names = {login: name for _, login, name in seed.DEMO_CREATORS}
    counts = {who[1]: (len(r), len(b)) for who, (r, b) in FOLLOWS.items()}
    assert [
        (int(rank), creator, login, _number(value), _number(previous))
        for rank, creator, login, value, previous in table[1:]
    ] == [
        (n + 1, names[login], login, *counts.get(login, (0, 0)))
        for n, login in enumerate(by_follows)
    ]
    expect(page.locator(".an-plot canvas").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "analytics-overview.png"))
    page.get_by_test_id("more-figures").click()  # every figure in a table, read by the scan too
    expect(page.get_by_test_id("figure-raids_out")).to_be_visible()
    assert _accessibility_violations(page) == []
    page.get_by_test_id("more-figures").click()

    page.get_by_test_id("leaderboard-metric").select_option("bits")
    by_bits = _ranking({who[1]: sum(a) for who, a in CHEERS.items()})
    for n, login in enumerate(by_bits):
        expect(rows.nth(n)).to_have_attribute("data-creator", ids[login])
    expect(rows.first.get_by_test_id("leaderboard-value")).to_have_text(f"{sum(CHEERS[NOVA]):,}")

    # a creator's drill-down, from the leaderboard
    rows.filter(has_text="Cool_User").get_by_test_id("leaderboard-creator").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("analytics-heading")).to_be_focused()
    assert page.url.endswith(f"#/analytics/{ids['cool_user']}")
    expect(page.get_by_test_id("analytics-heading")).to_contain_text("Cool_User")
    expect(page.get_by_test_id("leaderboard")).to_have_count(0)
    expect(_value(page, "follows")).to_have_text("3", timeout=LIVE)
    expect(_card(page, "follows").get_by_test_id("card-delta")).to_contain_text("+1 (+50%)")
    expect(_value(page, "bits")).to_have_text("500")
    expect(_value(page, "viewers_peak")).to_have_text("1,720")
    name, table = _download(page, "export-summary")
    assert name.startswith("summary_") and name.endswith(".csv")
    figures = {row[0]: row[1:] for row in table[1:]}
    assert table[0] == ["metric", "value", "previous"]
    assert [_number(cell) for cell in figures["follows"]] == [3, 2]
    assert [_number(cell) for cell in figures["bits"]] == [500, 0]
    assert figures["viewers_peak"] == ["1720", ""]  # no samples the day before: empty, not 0
    name, table = _download(page, "export-series")
    assert table[0][0] == "bucket" and "follows" in table[0]
    column = table[0].index("follows")
    assert sum(_number(row[column]) for row in table[1:]) == 3

    # live: one more follow reaches the card without a reload
    page.evaluate("window.__same_page = true")
    _follow(env, COOL, 0)
    expect(_value(page, "follows")).to_have_text("4", timeout=LIVE)
    assert page.evaluate("window.__same_page") is True
    page.screenshot(path=str(SCREENSHOTS / "analytics-creator.png"))

    # a creator the pulse never saw live: the viewer figures say so, not 0
    page.get_by_test_id("analytics-creator").select_option(ids["streamer"])
    assert page.url.endswith(f"#/analytics/{ids['streamer']}")
    expect(_value(page, "follows")).to_have_text("5", timeout=LIVE)
    expect(_value(page, "viewers_peak")).to_have_text("—")
    expect(_card(page, "viewers_peak").get_by_test_id("card-note")).to_have_text("no pulse samples")
    expect(page.get_by_test_id("chart-viewers_avg").get_by_test_id("chart-empty")).to_be_visible()
    assert _accessibility_violations(page) == []

    # back to every creator; the address opens the same view on a fresh load
    page.get_by_test_id("analytics-back").click()
    assert page.url.endswith("#/analytics")
    page.goto(f"{stack.endpoints.relay_url}/#/analytics/{ids['cool_user']}")
    page.reload()
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    expect(page.get_by_test_id("analytics-heading")).to_contain_text("Cool_User")
    context.close()


def test_a_custom_range_and_a_viewer_of_another_company_sees_none_of_it(
    browser: Browser, stack: LocalStack, rival: uuid.UUID
) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    token = stack.keys.token("rival-viewer", rival, "viewer")
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=LIVE)
    page.get_by_test_id("nav-analytics").click()
    page.get_by_test_id("period-custom").check()
    today = datetime.now(UTC).date()
    page.get_by_test_id("custom-from").fill((today - timedelta(days=3)).isoformat())
    page.get_by_test_id("custom-to").fill(today.isoformat())
    page.get_by_test_id("custom-apply").click()
    expect(page.get_by_test_id("analytics-zone")).to_have_text("Days in UTC")
    expect(_value(page, "follows")).to_have_text("0", timeout=LIVE)
    expect(_value(page, "bits")).to_have_text("0")
    rows = page.get_by_test_id("leaderboard-row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("leaderboard-creator")).to_have_text("RivalStar")
    expect(page.get_by_test_id("interval-1h")).to_be_checked()
    # the wrong order is said before anything is asked
    page.get_by_test_id("custom-from").fill(today.isoformat())
    page.get_by_test_id("custom-to").fill((today - timedelta(days=2)).isoformat())
    page.get_by_test_id("custom-apply").click()
    expect(page.get_by_test_id("custom-range").get_by_role("alert")).to_have_text(
        "The end date is before the start date."
    )
    context.close()
