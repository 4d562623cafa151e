"""Faults during ingestion, on a stack of their own: nothing valid is lost or stored twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack
from tests.integration.conftest import services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.test_ingestion import stored, watch


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "faults") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


def burst(env: dict[str, str], broadcaster: str, count: int) -> list[str]:
    creator = twitchsim.Broadcaster(broadcaster, f"creator_{broadcaster}")
    ids = []
    for i in range(count):
        body = twitchsim.notification_body("channel.follow" if i % 2 else "channel.cheer", creator)
        delivery = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
        status, _ = twitchsim.post(env["WEBHOOK_URL"], delivery)
        assert status == 204
        ids.append(delivery.message_id)
    return ids


def assert_exactly_once(cfg: settings.DatabaseSettings, company: uuid.UUID, ids: list[str]) -> None:
    rows = stored(cfg, company)
    assert sorted(r["twitch_message_id"] for r in rows) == sorted(ids)
    assert [r["seq"] for r in rows] == list(range(1, len(ids) + 1))


def test_database_down_while_deliveries_arrive(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Outage", ["9100"])
    stack.postgres.stop()
    try:
        ids = burst(env, "9100", 20)  # the webhook needs no database: Twitch still gets 204
        assert stack.persist is not None
        assert wait_for(lambda: '"status": 503' in stack.persist.process.log_tail(200), timeout=10)  # type: ignore[union-attr]
    finally:
        stack.postgres.start()
    assert wait_for(lambda: len(stored(cfg, company)) == 20, timeout=60)
    assert_exactly_once(cfg, company, ids)


def test_redis_down_events_are_stored_and_publish_is_skipped(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "No Redis", ["9200"])
    stack.valkey.stop()
    try:
        ids = burst(env, "9200", 5)
        assert wait_for(lambda: len(stored(cfg, company)) == 5, timeout=60)
        assert stack.persist is not None
        log = stack.persist.process.log_tail(400)  # type: ignore[union-attr]
        assert "publish skipped: dashboards will catch up from PostgreSQL" in log
        assert '"severity": "WARNING"' in log
    finally:
        stack.valkey.start()
    assert_exactly_once(cfg, company, ids)


def test_persist_killed_mid_stream(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    company = watch(cfg, "Crashy", ["9300"])
    assert stack.persist is not None
    ids = burst(env, "9300", 10)
    wait_for(lambda: len(stored(cfg, company)) >= 3, timeout=30)
    stack.persist.kill()  # SIGKILL, wherever it was
    ids += burst(env, "9300", 10)
    stack.persist.start()
    assert wait_for(lambda: len(stored(cfg, company)) >= 20, timeout=60)
    assert not wait_for(lambda: len(stored(cfg, company)) > 20, timeout=1.0)
    assert_exactly_once(cfg, company, ids)


def test_stack_env_database_reconnects(cfg: settings.DatabaseSettings) -> None:
    # after the restarts above, a fresh connection works as the runtime role
    with db.connect(cfg) as conn:
        assert conn.execute("SELECT current_user AS u").fetchone() == {"u": "controlroom_app"}
