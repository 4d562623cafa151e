"""A new agency's first hour, in a real browser against the whole local stack (as `make run`
starts it, development sign-in off): a company created from the CLI, its owner signing in
through the identity stand-in from the mailed invitation, an operator invited and signed in
the same way, a creator connected through the Twitch stand-in's consent page, a revocation,
and the company suspended. Nothing is mocked: every click goes through the real redirects.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev.stack import LocalStack
from tests.e2e.conftest import (
    SCREENSHOTS,
    SLOW,
    controlroom,
    fresh_browser,
    sign_in_at_identity_provider,
)
from tests.integration.conftest import services_stack, stack_env

COMPANY = "Aurora Talent"
OWNER = ("olivia", "owner@aurora.example", "Olivia Owner")
OPERATOR = ("oscar", "operator@aurora.example", "Oscar Operator")
CREATOR_LOGIN = "aurora_star"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """`make run`'s stack: no development sign-in, so only the real flow gets people in."""
    assert os.environ.get("DEV_TOKEN_SIGN_IN") is None
    with services_stack(tmp_path_factory, "walk") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"onboarding-{name}.png"))


def open_mail(page: Page, env: dict[str, str], to: str, name: str) -> None:
    """The mail catcher's page; the newest message to `to`; its link followed by a click."""
    page.goto(env["MAIL_CATCHER_URL"])
    message = page.locator("article").filter(has_text=f"to {to}").first
    expect(message).to_be_visible(timeout=SLOW)
    shot(page, name)
    message.locator("a", has_text="#invite=").first.click()


def accept_invitation(page: Page, name: str) -> None:
    """Back from the identity provider: the invitation again, now signed in; accept it."""
    expect(page.get_by_test_id("invite-accept")).to_be_visible(timeout=SLOW)
    shot(page, f"{name}-accept")
    page.get_by_test_id("invite-accept").click()
    expect(page.get_by_test_id("company-name")).to_have_text(COMPANY, timeout=SLOW)
    expect(page.get_by_test_id("connection")).to_have_text("live", timeout=SLOW)


def twitch_user_id(env: dict[str, str], company: str, login: str) -> str:
    """What Twitch knows the creator as (the stand-in's Helix answered when they were added)."""
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, uuid.UUID(company)):
        row = conn.execute(
            "SELECT twitch_user_id FROM creators WHERE twitch_login = %s", (login,)
        ).fetchone()
    assert row is not None
    return str(row["twitch_user_id"])


def look_again_until(page: Page, seen: Callable[[], bool]) -> None:
    """Consent and subscriptions change elsewhere (the creator's browser, the reconciler): the
    dashboard polls every 30 s and looks again when its window gets the focus, as a person
    coming back to it gives it. Give it the focus until `seen`, for at most about 30 s."""
    for _ in range(15):
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        if seen():
            return
        page.wait_for_timeout(2000)


def test_a_new_agency_from_the_cli_to_a_suspension(
    browser: Browser, stack: LocalStack, env: dict[str, str]
) -> None:
    # --- a platform operator creates the company; its owner's invitation is mailed ---------
    created = controlroom(env, "company", "create", "--name", COMPANY, "--owner-email", OWNER[1])
    company_id = created.split()[0]
    assert re.fullmatch(r"[0-9a-f-]{36}", company_id), created

    # --- the owner: mail, invitation, sign-in through the identity stand-in, the wall ------
    owner_ctx, owner = fresh_browser(browser)
    refused: list[str] = []  # the strict CSP costs the new pages nothing either
    owner_ctx.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    open_mail(owner, env, OWNER[1], "01-owner-mail")
    expect(owner.get_by_test_id("invitation")).to_contain_text(f"Join {COMPANY}", timeout=SLOW)
    expect(owner.get_by_test_id("invitation")).to_contain_text("owner")
    shot(owner, "02-owner-invitation")
    sign_in_at_identity_provider(owner, OWNER)
    accept_invitation(owner, "03-owner")
    expect(owner.get_by_test_id("who")).to_contain_text("Olivia Owner · owner")
    shot(owner, "04-owner-wall")

    # --- the owner invites an operator; the mail arrives at the catcher --------------------
    owner.get_by_test_id("nav-admin").click()
    owner.get_by_test_id("invite-email").fill(OPERATOR[1])
    owner.get_by_test_id("invite-role").select_option("operator")
    owner.get_by_test_id("invite-send").click()
    expect(owner.get_by_test_id("invite-sent")).to_contain_text(OPERATOR[1], timeout=SLOW)
    row = owner.get_by_test_id(f"invitation-{OPERATOR[1]}")
    expect(row.get_by_test_id("invitation-status")).to_have_text("pending")
    owner.get_by_test_id("invitations").scroll_into_view_if_needed()
    shot(owner, "05-owner-invites")

    # --- the operator, in a browser of their own -------------------------------------------
    operator_ctx, operator = fresh_browser(browser)
    open_mail(operator, env, OPERATOR[1], "06-operator-mail")
    expect(operator.get_by_test_id("invitation")).to_contain_text("operator", timeout=SLOW)
    sign_in_at_identity_provider(operator, OPERATOR)
    accept_invitation(operator, "07-operator")
    expect(operator.get_by_test_id("who")).to_contain_text("Oscar Operator · operator")
    expect(operator.get_by_test_id("nav-admin")).to_have_count(0)
    expect(operator.get_by_test_id("wall")).to_be_visible()
    shot(operator, "08-operator-wall")
    owner.reload()  # the owner sees the invitation used
    owner.get_by_test_id("nav-admin").click()
    expect(row.get_by_test_id("invitation-status")).to_have_text("accepted", timeout=SLOW)

    # --- an invitation sent by mistake is revoked: its link no longer lets anyone in --------
    owner.get_by_test_id("invite-email").fill("mistake@aurora.example")
    owner.get_by_test_id("invite-send").click()
    mistaken = owner.get_by_test_id("invite-link").input_value(timeout=SLOW)
    wrong = owner.get_by_test_id("invitation-mistake@aurora.example")
    wrong.get_by_test_id("invite-revoke").click()
    expect(wrong.get_by_test_id("invitation-status")).to_have_text("revoked", timeout=SLOW)
    stranger_ctx, stranger = fresh_browser(browser)
    stranger.goto(mistaken)
    expect(stranger.get_by_test_id("invitation")).to_contain_text("revoked", timeout=SLOW)
    expect(stranger.get_by_test_id("sign-in")).to_have_count(0)
    stranger_ctx.close()

    # --- a creator, connected through the Twitch stand-in's consent page -------------------
    creators = owner.get_by_test_id("creators")
    creators.get_by_label("Twitch login").fill(CREATOR_LOGIN)
    creators.get_by_role("button", name="Add creator").click()
    creator_row = owner.get_by_test_id(f"creator-{CREATOR_LOGIN}")
    expect(creator_row).to_be_visible(timeout=SLOW)
    expect(creator_row.get_by_test_id("authorization")).to_have_attribute(
        "data-status", "not_connected"
    )
    # the reconciler tried: what the creator has not granted yet is named
    needs = creator_row.get_by_test_id("needs")
    # the reconciler records refusals type by type: wait until the labels below are all there
    look_again_until(
        owner,
        lambda: all(
            label in (needs.all_text_contents() or [""])[0]
            for label in ("follows", "subscriptions", "bits")
        ),
    )
    expect(needs).to_contain_text("needs authorization: ")
    expect(needs).to_contain_text("follows")
    expect(needs).to_contain_text("subscriptions")
    expect(needs).to_contain_text("bits")
    # and the wall says it too: what needs no consent (stream up/down, raids) is subscribed
    owner.get_by_test_id("nav-wall").click()
    before = owner.get_by_test_id(f"tile-{CREATOR_LOGIN}").get_by_test_id("link")
    look_again_until(owner, lambda: before.get_attribute("data-state") == "partial")
    expect(before).to_have_attribute("data-state", "partial")
    expect(before).to_contain_text("needs authorization: follows")
    shot(owner, "09-tile-partial")
    owner.get_by_test_id("nav-admin").click()
    creator_row.get_by_test_id("make-connect-link").click()
    link = creator_row.get_by_test_id("connect-link")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/connect"), timeout=SLOW)
    creator_row.scroll_into_view_if_needed()
    shot(owner, "10-owner-connect-link")
    connect_url = link.input_value()

    creator_ctx, creator = fresh_browser(browser)  # the creator's own browser
    creator.goto(connect_url)
    shot(creator, "11-creator-connect")
    creator.get_by_role("link", name=re.compile("Twitch", re.I)).or_(
        creator.get_by_role("button", name=re.compile("Twitch", re.I))
    ).first.click()
    # the Twitch stand-in's consent page: who you are, what you grant
    creator.get_by_role("button", name=re.compile("^Authorize", re.I)).wait_for(timeout=SLOW)
    creator.get_by_label(re.compile("signed in to Twitch as")).fill(CREATOR_LOGIN)
    shot(creator, "12-twitch-consent")
    creator.get_by_role("button", name=re.compile("^Authorize", re.I)).click()
    expect(creator.locator("body")).to_contain_text(re.compile("connected", re.I), timeout=SLOW)
    shot(creator, "13-creator-connected")
    creator_ctx.close()

    # the reconciler subscribes; the wall shows it (polled, and looked at again on focus)
    owner.get_by_test_id("nav-wall").click()
    tile = owner.get_by_test_id(f"tile-{CREATOR_LOGIN}")
    expect(tile).to_be_visible()
    state = tile.get_by_test_id("link")
    look_again_until(owner, lambda: state.get_attribute("data-state") == "healthy")
    expect(tile.get_by_test_id("link")).to_have_attribute("data-state", "healthy")
    expect(tile).to_contain_text("Subscriptions healthy")
    shot(owner, "14-tile-healthy")

    # --- the creator revokes our access at Twitch: the tile turns disconnected -------------
    user_id = twitch_user_id(env, company_id, CREATOR_LOGIN)
    controlroom(
        env,
        "trigger",
        "user.authorization.revoke",
        "--broadcaster",
        user_id,
        "--login",
        CREATOR_LOGIN,
    )
    expect(tile.get_by_test_id("link")).to_have_attribute(
        "data-state", "disconnected", timeout=SLOW
    )
    expect(tile).to_contain_text("Disconnected")
    shot(owner, "15-tile-disconnected")

    # --- the platform suspends the company: everyone in it is signed out, and told why -----
    controlroom(env, "company", "suspend", company_id)
    for page, name in ((owner, "16-owner-suspended"), (operator, "17-operator-suspended")):
        reason = page.get_by_test_id("signed-out-reason")
        expect(reason).to_contain_text("suspended", timeout=SLOW)
        expect(page.get_by_test_id("wall")).to_have_count(0)
        shot(page, name)
    # and signing in again does not get round it
    operator.reload()
    expect(operator.get_by_test_id("signed-out-reason")).to_contain_text("suspended", timeout=SLOW)
    assert refused == []
    owner_ctx.close()
    operator_ctx.close()
