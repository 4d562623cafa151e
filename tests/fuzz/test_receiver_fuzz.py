"""The webhook's use case under fuzzing, with our fake ports and the entrypoint's error table."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given

from controlroom import edge
from controlroom.core import eventsub
from controlroom.usecases import receiver
from tests.fuzz.budget import Counter, run_for_budget
from tests.fuzz.strategies import (
    NOW,
    OLD_SECRET,
    SECRET,
    arbitrary_headers,
    bodies,
    signed_deliveries,
)
from tests.unit.test_receiver import FakeLedger, FakeQueue

pytestmark = pytest.mark.budgeted
log = logging.getLogger("fuzz.webhook")
# what functions/webhook answers with both ports up; 503 needs a port down, 500 is a bug
DOCUMENTED_STATUSES = {200, 204, 400, 403, 413}


def _answer(headers: dict[str, str], body: bytes) -> tuple[int, bytes, FakeLedger, FakeQueue]:
    """receive() with the error table of functions/webhook, as the transport would answer."""
    ledger, queue = FakeLedger(), FakeQueue()
    try:
        reply = receiver.receive(
            headers,
            body,
            secrets=[SECRET, OLD_SECRET],
            ledger=ledger,  # type: ignore[arg-type]
            queue=queue,  # type: ignore[arg-type]
            clock=lambda: NOW,
        )
    except Exception as exc:  # noqa: BLE001 - the entrypoint's catch-all, mapped by the table
        status, answer = edge.to_http(exc, log)
        return status, answer, ledger, queue
    return reply.status, reply.body, ledger, queue


def _check(headers: dict[str, str], body: bytes) -> None:
    status, answer, ledger, queue = _answer(headers, body)
    assert status in DOCUMENTED_STATUSES, (status, answer)
    if status >= 300 or status == 200:
        # refused, or a verification challenge: nothing recorded, nothing enqueued
        assert ledger.entries == {} and queue.tasks == [], status
        return
    (task,) = queue.tasks
    assert task.body == body
    assert ledger.entries == {task.message_id: "enqueued"}
    assert task.message_type in {eventsub.NOTIFICATION, eventsub.REVOCATION}


def test_arbitrary_deliveries_get_documented_answers() -> None:
    seen = Counter()

    @given(arbitrary_headers(), bodies)
    def prop(headers: dict[str, str], body: bytes) -> None:
        seen()
        _check(headers, body)

    run_for_budget("receiver: arbitrary deliveries", prop, seen)


def test_signed_deliveries_get_documented_answers() -> None:
    seen = Counter()

    @given(signed_deliveries())
    def prop(delivery: tuple[dict[str, str], bytes]) -> None:
        seen()
        _check(*delivery)

    run_for_budget("receiver: signed deliveries of any shape", prop, seen)
