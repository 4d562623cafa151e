"""functions/notify through functions-framework's test client: the body it takes, and how
each outcome answers Cloud Tasks (503 retries, everything else 200 or a terse 400)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from controlroom import services
from controlroom.errors import NotificationRetryError
from controlroom.usecases import notifications

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


class FakePool:
    @contextmanager
    def connection(self) -> Iterator[object]:
        yield object()


class FakeService:
    pool = FakePool()
    keyring = object()
    dispatcher = None

    class cfg:  # noqa: N801 - stands in for the settings dataclass
        public_url = "https://control.example"

        class channels:  # noqa: N801
            allow_loopback = False


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any]]]:
    calls: list[Any] = []
    outcome: list[Any] = []

    def deliver(conn: Any, company: Any, delivery: Any, now: Any, **kw: Any) -> Any:
        calls.append((company, delivery, kw["public_url"]))
        if outcome and isinstance(outcome[0], Exception):
            raise outcome[0]
        return notifications.DeliveryOutcome(str(delivery), "delivered", 1, 204)

    monkeypatch.setattr(services, "notify", FakeService)
    monkeypatch.setattr(notifications, "deliver", deliver)
    app = create_app("notify", str(FUNCTIONS / "notify" / "main.py"))
    yield app.test_client(), [calls, outcome]


def test_delivers_the_named_delivery(client: tuple[Any, list[Any]]) -> None:
    http, (calls, _) = client
    company, delivery = uuid.uuid4(), uuid.uuid4()
    answer = http.post("/", json={"company_id": str(company), "delivery_id": str(delivery)})
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "delivered"
    assert calls == [(company, delivery, "https://control.example")]


def test_a_retryable_failure_answers_503(client: tuple[Any, list[Any]]) -> None:
    http, (_, outcome) = client
    outcome.append(NotificationRetryError("the channel answered 502"))
    body = {"company_id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4())}
    answer = http.post("/", json=body)
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "unavailable"}  # nothing of the cause


@pytest.mark.parametrize(
    "body", [None, [], {"company_id": "x", "delivery_id": "y"}, {"company_id": str(uuid.uuid4())}]
)
def test_malformed_bodies_are_refused(client: tuple[Any, list[Any]], body: Any) -> None:
    http, (calls, _) = client
    answer = http.post("/", json=body)
    assert answer.status_code == 400
    assert calls == []
    assert http.get("/").status_code == 405
