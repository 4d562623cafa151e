"""The end-to-end tier: the whole local stack (as `make run` starts it) and a real Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from tests.integration.conftest import services_stack, stack_env

CHROMIUM = (
    os.environ.get("CHROMIUM_PATH")
    or shutil.which("chromium")
    or shutil.which("google-chrome")
    or "/usr/bin/chromium"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# `make screenshots` refreshes the README's pictures; otherwise they go to a scratch folder,
# so a test run leaves the working tree as it found it
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("CONTROLROOM_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="screenshots-"))
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@contextmanager
def dev_token_sign_in() -> Iterator[None]:
    """Turns on the dashboard's development sign-in (`#token=` links, token pasting) for the
    services a stack starts meanwhile: they take their environment from ours. Off by default,
    as in a newcomer's `make run`; these tests sign in with tokens from `stack.keys`."""
    saved = os.environ.get("DEV_TOKEN_SIGN_IN")
    os.environ["DEV_TOKEN_SIGN_IN"] = "true"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["DEV_TOKEN_SIGN_IN"]
        else:
            os.environ["DEV_TOKEN_SIGN_IN"] = saved


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with dev_token_sign_in(), services_stack(tmp_path_factory, "e2e") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def demo(env: dict[str, str]) -> seed.SeedResult:
    with db.connect(settings.DatabaseSettings.from_env(env)) as conn:
        return seed.seed_demo(conn)


@pytest.fixture(scope="module")
def rival(env: dict[str, str]) -> uuid.UUID:
    """A second agency, with a viewer and creators of its own."""
    company = uuid.uuid4()
    cfg = settings.DatabaseSettings.from_env(env)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, 'Rival Agency', 'rival')",
            (company,),
        )
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'rival-viewer') RETURNING id",
            (company,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (company, user),
        )
        conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, '7777001', 'rival_star', 'RivalStar')",
            (company,),
        )
    return company


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt) first")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def open_dashboard(
    browser: Browser, stack: LocalStack, subject: str, company: uuid.UUID, role: str
) -> Page:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    token = stack.keys.token(subject, company, role)
    page.goto(f"{stack.endpoints.relay_url}/#token={token}")
    page.get_by_test_id("connection").filter(has_text="live").wait_for(timeout=15_000)
    return page


def send(env: dict[str, str], sub_type: str, broadcaster: str, login: str, **event: Any) -> None:
    body = twitchsim.notification_body(sub_type, twitchsim.Broadcaster(broadcaster, login))
    body["event"].update(event)
    status, _ = twitchsim.post(
        env["WEBHOOK_URL"], twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
    )
    assert status == 204
