"""The relay's reconcile loop fills gaps for every company on an instance: one failure must
not end it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from controlroom.usecases import history
from controlroom.usecases import members as members_usecase
from realtime.relay import Relay


def test_an_unexpected_error_does_not_end_the_reconcile_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    class Feed:
        head = 0

        async def catch_up(self, upto: int) -> None:
            calls.append(upto)
            raise RuntimeError("a bug in catching up")

    @contextlib.asynccontextmanager
    async def connection() -> AsyncIterator[object]:
        yield object()

    async def head(_conn: object, _company: uuid.UUID) -> Any:
        return SimpleNamespace(last_seq=5)

    async def members(_conn: object, _company: uuid.UUID) -> members_usecase.CurrentMembers:
        return members_usecase.CurrentMembers(frozenset(), suspended=False)

    async def no_revocations(_company: uuid.UUID, _current: object) -> None:
        return None

    monkeypatch.setattr(history, "head", head)
    monkeypatch.setattr(members_usecase, "current_members", members)
    relay = SimpleNamespace(
        cfg=SimpleNamespace(reconcile_seconds=0),
        feeds={uuid.uuid4(): Feed()},
        pool=SimpleNamespace(connection=connection),
        _end_revoked=no_revocations,
    )

    async def run() -> None:
        loop = asyncio.ensure_future(Relay._reconcile_loop(relay))  # type: ignore[arg-type]
        for _ in range(1000):  # bounded: the loop runs many rounds in far fewer steps
            if len(calls) >= 3:
                break
            await asyncio.sleep(0)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert len(calls) >= 3  # it kept going after the first failure
    assert "reconcile failed" in caplog.text
