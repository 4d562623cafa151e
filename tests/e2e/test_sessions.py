"""Signed-in sessions in the browser, through the real sign-in (development sign-in off): a
person in two companies picks one with the switcher; access tokens that last seconds are
renewed before they run out and handed to the live socket, in two tabs at once; signing out
ends every tab; an invitation opened by someone else is refused; a removed member is told
why; token links and pasting are not offered."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect

from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import (
    SCREENSHOTS,
    SLOW,
    controlroom,
    fresh_browser,
    service_environment,
    sign_in_at_identity_provider,
)
from tests.integration.conftest import services_stack, stack_env

# access tokens this short are renewed every few seconds (the dashboard renews a minute before
# expiry, and at least 5 s apart), so one test sees several renewals and several expiries
ACCESS_TTL = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with (
        service_environment(ACCESS_TOKEN_TTL_SECONDS=str(ACCESS_TTL)),
        services_stack(tmp_path_factory, "sessions") as running,
    ):
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


def create_company(env: dict[str, str], name: str, owner_email: str) -> tuple[str, str]:
    """(company id, the owner's invitation link) from the CLI's output."""
    out = controlroom(env, "company", "create", "--name", name, "--owner-email", owner_email)
    return out.split()[0], out.strip().splitlines()[-1]


def join(page: Page, link: str, company: str, who: tuple[str, str, str] | None) -> None:
    """Open an invitation link, sign in if asked (`who`), accept, and wait for the wall."""
    page.goto(link)
    if who is not None:
        expect(page.get_by_test_id("invitation")).to_contain_text(f"Join {company}", timeout=SLOW)
        sign_in_at_identity_provider(page, who)
    page.get_by_test_id("invite-accept").click(timeout=SLOW)
    expect(page.get_by_test_id("company-name")).to_have_text(company, timeout=SLOW)
    expect(page.get_by_test_id("connection")).to_have_text("live", timeout=SLOW)


def watch(page: Page) -> tuple[list[int], list[str]]:
    """The statuses of the page's /auth/refresh calls, and what its sockets received."""
    refreshes: list[int] = []
    frames: list[str] = []
    page.on(
        "response",
        lambda r: refreshes.append(r.status) if r.url.endswith("/auth/refresh") else None,
    )

    def socket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", socket)
    return refreshes, frames


def test_two_companies_a_switcher_renewed_tokens_in_two_tabs_and_sign_out(
    browser: Browser, env: dict[str, str]
) -> None:
    pat = ("pat", "pat@two.example", "Pat Two")
    _, alpha = create_company(env, "Alpha Agency", pat[1])
    _, beta = create_company(env, "Beta Agency", pat[1])
    context, first = fresh_browser(browser)
    first_refreshes, first_frames = watch(first)
    join(first, alpha, "Alpha Agency", pat)
    expect(first.get_by_test_id("company-switcher")).to_have_count(0)  # one company so far

    # the second invitation in a second tab: already signed in, so only "accept"
    second = context.new_page()
    refreshes, frames = watch(second)
    join(second, beta, "Beta Agency", None)
    switcher = second.get_by_test_id("company-switcher")
    expect(switcher).to_be_visible()
    second.screenshot(path=str(SCREENSHOTS / "sessions-switcher.png"))
    switcher.select_option(label="Alpha Agency")
    expect(second.get_by_test_id("company-name")).to_have_text("Alpha Agency", timeout=SLOW)
    expect(second.get_by_test_id("connection")).to_have_text("live", timeout=SLOW)

    # past two lifetimes of an access token: both tabs renewed theirs (one at a time: the
    # refresh token rotates on each use, and one used twice would end the whole session),
    # and no socket was ended for an expired token
    second.wait_for_timeout(ACCESS_TTL * 2200)
    tabs = ((first, first_refreshes, first_frames), (second, refreshes, frames))
    for page, seen, received in tabs:
        signed_in = seen[seen.index(200) :]  # before the sign-in, the first one is refused
        assert len(signed_in) >= 3 and set(signed_in) == {200}, seen
        assert not [f for f in received if "session_expired" in f]
        expect(page.get_by_test_id("connection")).to_have_text("live")
    # the REST API takes the renewed token too
    second.get_by_test_id("nav-admin").click()
    expect(second.get_by_test_id(f"member-{pat[1]}")).to_be_visible(timeout=SLOW)

    # signing out in one tab ends the session in the other at its next renewal
    second.get_by_test_id("sign-out").click()
    expect(second.get_by_test_id("signed-out-notice")).to_contain_text(
        "You have signed out", timeout=SLOW
    )
    expect(first.get_by_test_id("signed-out-reason")).to_contain_text(
        "session has ended", timeout=SLOW
    )
    second.reload()
    expect(second.get_by_test_id("sign-in")).to_be_visible(timeout=SLOW)
    expect(second.get_by_test_id("wall")).to_have_count(0)
    context.close()


def test_a_removed_member_is_signed_out_and_told_why(browser: Browser, env: dict[str, str]) -> None:
    gina = ("gina", "gina@gamma.example", "Gina Owner")
    omar = ("omar", "omar@gamma.example", "Omar Operator")
    _, link = create_company(env, "Gamma Group", gina[1])
    owner_ctx, owner = fresh_browser(browser)
    join(owner, link, "Gamma Group", gina)
    owner.get_by_test_id("nav-admin").click()
    owner.get_by_test_id("invite-email").fill(omar[1])
    owner.get_by_test_id("invite-role").select_option("operator")
    owner.get_by_test_id("invite-send").click()
    invite = owner.get_by_test_id("invite-link").input_value(timeout=SLOW)

    # someone else with the link is refused (the invitation binds Omar's verified email), and
    # the link still works for Omar afterwards
    eve_ctx, eve = fresh_browser(browser)
    eve.goto(invite)
    sign_in_at_identity_provider(eve, ("eve", "eve@elsewhere.example", "Eve"))
    eve.get_by_test_id("invite-accept").click(timeout=SLOW)
    expect(eve.get_by_test_id("invitation-error")).to_contain_text(
        f"This invitation is for {omar[1]}", timeout=SLOW
    )
    eve.screenshot(path=str(SCREENSHOTS / "sessions-wrong-person.png"))
    eve_ctx.close()
    operator_ctx, operator = fresh_browser(browser)
    join(operator, invite, "Gamma Group", omar)
    owner.reload()
    owner.get_by_test_id("nav-admin").click()
    owner.get_by_test_id(f"member-{omar[1]}").get_by_test_id("member-remove").click()
    expect(owner.get_by_test_id(f"member-{omar[1]}")).to_have_count(0, timeout=SLOW)

    reason = operator.get_by_test_id("signed-out-reason")
    expect(reason).to_contain_text("no longer a member of Gamma Group", timeout=SLOW)
    operator.screenshot(path=str(SCREENSHOTS / "sessions-removed.png"))
    owner_ctx.close()
    operator_ctx.close()


def test_development_sign_in_is_off_by_default(browser: Browser, stack: LocalStack) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    context, page = fresh_browser(browser)
    config = page.request.get(f"{stack.endpoints.relay_url}/auth/config").json()
    assert config["dev_token_sign_in"] is False, json.dumps(config)
    # a token link is ignored and taken out of the address bar; nothing to paste a token into
    token = stack.keys.token("someone", uuid.uuid4(), "owner")
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    expect(page.get_by_test_id("sign-in")).to_be_visible(timeout=SLOW)
    expect(page.locator("textarea#token")).to_have_count(0)
    assert "token=" not in page.url
    expect(page.get_by_test_id("wall")).to_have_count(0)
    context.close()
