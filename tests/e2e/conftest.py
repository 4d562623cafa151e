"""The end-to-end tier: the whole local stack (as `make run` starts it) and a real Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

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
def service_environment(**values: str) -> Iterator[None]:
    """Settings for the services a stack starts meanwhile: they take their environment from
    ours (the stack's own endpoints and credentials come on top)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def dev_token_sign_in() -> contextlib.AbstractContextManager[None]:
    """The dashboard's development sign-in (`#token=` links, token pasting): off by default,
    as in a newcomer's `make run`; these tests sign in with tokens from `stack.keys`."""
    return service_environment(DEV_TOKEN_SIGN_IN="true")


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


# --- the real sign-in, as a person clicks through it ------------------------------------------
CONTROLROOM = str(Path(sys.executable).with_name("controlroom"))
SLOW = 20_000  # ms: a step that waits for a function, the reconciler or a poll


def controlroom(env: dict[str, str], *args: str) -> str:
    """The operator's CLI, as a person runs it with the stack's environment."""
    done = subprocess.run(
        [CONTROLROOM, *args],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"controlroom {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def fresh_browser(browser: Browser) -> tuple[BrowserContext, Page]:
    """A person of their own: their own cookies and storage."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    return context, context.new_page()


def sign_in_at_identity_provider(page: Page, who: tuple[str, str, str]) -> None:
    """The identity stand-in's page: type who you are, press Sign in, follow the redirects."""
    subject, email, name = who
    page.get_by_test_id("sign-in").click()
    page.locator("#sub").wait_for(timeout=SLOW)
    page.locator("#sub").fill(subject)
    page.locator("#email").fill(email)
    page.locator("#name").fill(name)
    page.get_by_role("button", name="Sign in", exact=True).click()


def api(stack: LocalStack, token: str, method: str, path: str, body: Any = None) -> Any:
    """One call to the stack's REST API as the token's holder; the answer's JSON."""
    assert stack.endpoints is not None and stack.endpoints.relay_url
    request = urllib.request.Request(
        f"{stack.endpoints.relay_url}/api{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read() or b"null")
