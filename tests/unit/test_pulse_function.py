"""functions/pulse through functions-framework's own test client, with fakes for our ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from controlroom import services, settings
from controlroom.errors import RetryLaterError
from controlroom.usecases import pulse

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ENV = {
    "DATABASE_URL": "postgresql://unused",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "TWITCH_CLIENT_ID": "client",
    "TWITCH_CLIENT_SECRET": "secret",
}


class FakePool:
    @contextmanager
    def connection(self) -> Iterator[object]:
        yield object()


def _client(monkeypatch: pytest.MonkeyPatch, helix: object) -> Any:
    cfg = settings.PulseSettings.from_env(ENV)
    fake = services.PulseService(cfg=cfg, pool=FakePool(), helix=helix, publisher=object())  # type: ignore[arg-type]
    monkeypatch.setattr(services, "pulse", lambda: fake)
    return create_app("pulse", str(FUNCTIONS / "pulse" / "main.py")).test_client()


def test_without_twitch_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, None)
    answer = client.post("/")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "not configured"}
    assert client.get("/").status_code == 405


def test_a_run_answers_its_report_and_a_failed_company_fails_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reports = [pulse.PulseReport(broadcasters=3, live=1, companies=2, samples=4)]
    reports.append(pulse.PulseReport(broadcasters=3, companies=1, failed=["c0ffee"]))
    seen: list[datetime] = []

    def run(_conn: object, _helix: object, _pub: object, _disp: object, now: datetime) -> Any:
        seen.append(now)
        return reports.pop(0)

    monkeypatch.setattr(pulse, "run", run)
    client = _client(monkeypatch, object())
    ok = client.post("/")
    assert ok.status_code == 200
    assert ok.get_json()["samples"] == 4
    failed = client.post("/")
    assert failed.status_code == 500
    assert failed.get_json()["failed"] == ["c0ffee"]
    assert all(t.tzinfo is not None for t in seen)


def test_twitch_out_of_reach_is_a_retry_later(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(*_args: object) -> Any:
        raise RetryLaterError(429, "Twitch's rate limit resets in 40 s")

    monkeypatch.setattr(pulse, "run", run)
    answer = _client(monkeypatch, object()).post("/")
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "unavailable"}
