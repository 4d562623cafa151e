"""The function entrypoints through functions-framework's own test client, with fakes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest
from functions_framework import create_app

from controlroom import edge, services
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev.twitchsim import sign_delivery
from controlroom.errors import HandoffError, LedgerUnavailableError
from tests.samples import load
from tests.unit.test_receiver import SECRET, FakeLedger, FakeQueue

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.fixture
def webhook_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FakeLedger, FakeQueue]]:
    ledger, queue = FakeLedger(), FakeQueue()
    fake = services.WebhookService(secrets=(SECRET.encode(),), ledger=ledger, queue=queue)  # type: ignore[arg-type]
    monkeypatch.setattr(services, "webhook", lambda: fake)
    app = create_app("webhook", str(FUNCTIONS / "webhook" / "main.py"))
    yield app.test_client(), ledger, queue


def test_webhook_answers_twitch(webhook_client: tuple[Any, FakeLedger, FakeQueue]) -> None:
    client, _ledger, queue = webhook_client
    d = sign_delivery(load("stream.online"), SECRET)
    response = client.post("/", data=d.body, headers=d.headers)
    assert response.status_code == 204
    assert len(queue.tasks) == 1


def test_webhook_refusals_are_honest_and_terse(
    webhook_client: tuple[Any, FakeLedger, FakeQueue],
) -> None:
    client, ledger, queue = webhook_client
    d = sign_delivery(load("stream.online"), "not-the-right-secret")
    forged = client.post("/", data=d.body, headers=d.headers)
    assert forged.status_code == 403
    assert forged.get_json() == {"error": "forbidden"}
    big = client.post("/", data=b"x" * (eventsub.MAX_BODY_BYTES + 10), headers=d.headers)
    assert big.status_code == 413
    assert client.get("/").status_code == 405
    ledger.down = True
    good = sign_delivery(load("stream.online"), SECRET)
    down = client.post("/", data=good.body, headers=good.headers)
    assert down.status_code == 503
    assert down.get_json() == {"error": "unavailable"}
    # its task was created before the ledger failed: nothing says "enqueued", so Twitch's
    # retry is taken, and the task's name keeps it from being queued twice
    assert ledger.entries == {} and len(queue.tasks) == 1


def test_unexpected_errors_become_a_generic_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        status, body = edge.to_http(
            RuntimeError("secret detail /etc/passwd"), logging.getLogger("t")
        )
    assert status == 500
    assert json.loads(body) == {"error": "internal"}
    assert b"secret" not in body
    assert "secret detail" in caplog.text  # logged once, with the traceback, for us only


def test_handoff_rejects_what_is_not_a_task() -> None:
    for raw in (b"", b"{}", b'{"schema": 1}', b'{"schema": 2, "body": ""}', b"\x00"):
        with pytest.raises(HandoffError):
            PersistTask.decode(raw)


def test_subscriptions_without_twitch_credentials_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controlroom import settings

    cfg = settings.SubscriptionsSettings.from_env({"DATABASE_URL": "postgresql://unused"})
    assert not cfg.configured
    fake = services.SubscriptionsService(cfg=cfg, pool=None, helix=None)  # type: ignore[arg-type]
    monkeypatch.setattr(services, "subscriptions", lambda: fake)
    app = create_app("subscriptions", str(FUNCTIONS / "subscriptions" / "main.py"))
    response = app.test_client().post("/")
    assert response.status_code == 200
    assert response.get_json() == {"status": "not configured"}
    assert app.test_client().get("/").status_code == 405


def test_the_webhook_refuses_to_start_with_a_bad_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlroom import settings

    for key, value in {
        "EVENTSUB_SECRET": "short",
        "GOOGLE_CLOUD_PROJECT": "p",
        "CLOUD_TASKS_LOCATION": "l",
        "CLOUD_TASKS_QUEUE": "q",
        "PERSIST_URL": "http://127.0.0.1:9/",
    }.items():
        monkeypatch.setenv(key, value)
    settings.webhook.cache_clear()
    services.webhook.cache_clear()
    try:
        with pytest.raises(ValueError, match="10 to 100 ASCII"):
            create_app("webhook", str(FUNCTIONS / "webhook" / "main.py"))
    finally:
        settings.webhook.cache_clear()
        services.webhook.cache_clear()


def test_refusals_name_their_cause_for_alerts(caplog: pytest.LogCaptureFixture) -> None:
    # docs/operations.md groups 503s by `cause`: Firestore, Cloud Tasks or PostgreSQL
    with caplog.at_level(logging.WARNING):
        status, body = edge.to_http(
            LedgerUnavailableError("ServiceUnavailable"), logging.getLogger("t")
        )
    assert status == 503
    assert json.loads(body) == {"error": "unavailable"}  # the cause stays in our logs
    record = caplog.records[-1]
    assert record.getMessage() == "request refused"
    assert record.fields == {  # type: ignore[attr-defined]
        "status": 503,
        "error": "unavailable",
        "cause": "LedgerUnavailableError",
        "exception": "LedgerUnavailableError",
    }
    edge.to_http(psycopg_pool.PoolTimeout("no connection"), logging.getLogger("t"))
    pool_down = caplog.records[-1].fields  # type: ignore[attr-defined]
    assert (pool_down["cause"], pool_down["exception"]) == ("OperationalError", "PoolTimeout")
