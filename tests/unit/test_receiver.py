"""The webhook's use case with fakes for our own ports (ledger, queue)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlroom import errors
from controlroom.adapters.ledger import ENQUEUED, Entry
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev.twitchsim import sign_delivery
from controlroom.errors import LedgerUnavailableError, QueueUnavailableError
from controlroom.usecases import receiver
from tests.samples import load, message

SECRET = "s3cret-for-tests-only"
NOW = datetime.now(UTC)


class FakeLedger:
    """The ledger's promise: one entry per message id, created once, never overwritten."""

    def __init__(self, down: bool = False) -> None:
        self.entries: dict[str, str] = {}
        self.reads = 0
        self.down = down

    def record(self, entry: Entry, enqueued_at: datetime) -> bool:
        if self.down:
            raise LedgerUnavailableError("down")
        if entry.message_id in self.entries:
            return False
        self.entries[entry.message_id] = ENQUEUED
        return True

    def enqueued(self, message_id: str) -> bool:
        if self.down:
            raise LedgerUnavailableError("down")
        self.reads += 1
        return self.entries.get(message_id) == ENQUEUED


class FakeQueue:
    """Cloud Tasks' promise: a task name is refused while it is remembered (`dedup=False` is a
    stand-in that forgets names, as gcloud-tasks-emulator did)."""

    def __init__(self, down: bool = False, dedup: bool = True) -> None:
        self.tasks: list[PersistTask] = []
        self.down = down
        self.dedup = dedup

    def enqueue(self, task: PersistTask) -> bool:
        if self.down:
            raise QueueUnavailableError("down")
        if self.dedup and any(t.task_id() == task.task_id() for t in self.tasks):
            return False
        self.tasks.append(task)
        return True


def call(
    headers: dict[str, str], body: bytes, ledger: FakeLedger, queue: FakeQueue
) -> receiver.Reply:
    return receiver.receive(headers, body, secrets=[SECRET.encode()], ledger=ledger, queue=queue)


def test_challenge_is_answered_byte_exact() -> None:
    raw = message("webhook_callback_verification")
    d = sign_delivery(raw, SECRET, message_type=eventsub.VERIFICATION)
    ledger, queue = FakeLedger(), FakeQueue()
    reply = call(d.headers, d.body, ledger, queue)
    assert reply == receiver.Reply(200, b"pogchamp-kappa-360noscope-vohiyo", "text/plain")
    assert ledger.entries == {} and queue.tasks == []


def test_notification_is_recorded_enqueued_and_acknowledged() -> None:
    d = sign_delivery(load("channel.raid"), SECRET, retry=3)
    ledger, queue = FakeLedger(), FakeQueue()
    assert call(d.headers, d.body, ledger, queue).status == 204
    assert ledger.entries == {d.message_id: ENQUEUED}
    (task,) = queue.tasks
    assert task.message_id == d.message_id
    assert task.body == d.body
    assert task.retry == 3
    assert task.subscription_type == "channel.raid"
    assert PersistTask.decode(task.encode()) == task


def test_duplicate_of_an_enqueued_delivery_does_nothing() -> None:
    d = sign_delivery(load("channel.follow"), SECRET)
    ledger, queue = FakeLedger(), FakeQueue()
    call(d.headers, d.body, ledger, queue)
    assert call(d.headers, d.body, ledger, queue).status == 204  # the task's name refuses it
    assert len(queue.tasks) == 1
    assert ledger.entries == {d.message_id: ENQUEUED}


def test_first_delivery_costs_no_ledger_read() -> None:
    d = sign_delivery(load("channel.follow"), SECRET)
    ledger, queue = FakeLedger(), FakeQueue()
    call(d.headers, d.body, ledger, queue)
    assert ledger.reads == 0


def test_redelivery_of_an_enqueued_delivery_is_refused_by_the_ledger() -> None:
    # even where the queue forgets task names (a stand-in, or Cloud Tasks past its window)
    d = sign_delivery(load("channel.follow"), SECRET)
    ledger, queue = FakeLedger(), FakeQueue(dedup=False)
    call(d.headers, d.body, ledger, queue)
    again = sign_delivery(d.body, SECRET, message_id=d.message_id, retry=1)
    assert call(again.headers, again.body, ledger, queue).status == 204
    assert [t.message_id for t in queue.tasks] == [d.message_id]


def test_delivery_whose_enqueue_failed_records_nothing_and_its_retry_is_enqueued() -> None:
    d = sign_delivery(load("channel.cheer"), SECRET)
    ledger = FakeLedger()
    with pytest.raises(QueueUnavailableError):
        call(d.headers, d.body, ledger, FakeQueue(down=True))
    assert ledger.entries == {}  # nothing says "enqueued", so the retry is not refused
    queue = FakeQueue(dedup=False)
    retry = sign_delivery(d.body, SECRET, message_id=d.message_id, retry=1)
    assert call(retry.headers, retry.body, ledger, queue).status == 204
    assert [t.message_id for t in queue.tasks] == [d.message_id]
    assert ledger.entries == {d.message_id: ENQUEUED}


def test_delivery_enqueued_but_not_recorded_is_answered_503_and_its_retry_queued_once() -> None:
    d = sign_delivery(load("channel.cheer"), SECRET)
    ledger, queue = FakeLedger(), FakeQueue()
    ledger.down = True
    with pytest.raises(LedgerUnavailableError):
        call(d.headers, d.body, ledger, queue)
    assert len(queue.tasks) == 1 and ledger.entries == {}
    ledger.down = False
    retry = sign_delivery(d.body, SECRET, message_id=d.message_id, retry=1)
    assert call(retry.headers, retry.body, ledger, queue).status == 204
    assert len(queue.tasks) == 1  # the task's name refused the second
    assert ledger.entries == {d.message_id: ENQUEUED}


def test_revocation_is_enqueued_like_a_notification() -> None:
    d = sign_delivery(message("revocation"), SECRET, message_type=eventsub.REVOCATION)
    ledger, queue = FakeLedger(), FakeQueue()
    assert call(d.headers, d.body, ledger, queue).status == 204
    assert queue.tasks[0].message_type == eventsub.REVOCATION


def test_forged_delivery_records_nothing() -> None:
    d = sign_delivery(load("channel.ban"), "a-different-secret")
    ledger, queue = FakeLedger(), FakeQueue()
    with pytest.raises(errors.ForgedDeliveryError):
        call(d.headers, d.body, ledger, queue)
    assert ledger.entries == {} and queue.tasks == []


def test_malformed_json_records_nothing() -> None:
    body = b"{not json"
    headers = sign_delivery(b"{}", SECRET).headers
    headers[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(
        SECRET.encode(), headers[eventsub.MESSAGE_ID], headers[eventsub.MESSAGE_TIMESTAMP], body
    )
    ledger, queue = FakeLedger(), FakeQueue()
    with pytest.raises(errors.MalformedDeliveryError):
        call(headers, body, ledger, queue)
    assert ledger.entries == {} and queue.tasks == []


def test_dependencies_down_propagate_for_a_503() -> None:
    d = sign_delivery(load("channel.subscribe"), SECRET)
    with pytest.raises(LedgerUnavailableError):
        call(d.headers, d.body, FakeLedger(down=True), FakeQueue())
    retry = sign_delivery(d.body, SECRET, message_id=d.message_id, retry=2)
    queue = FakeQueue()
    with pytest.raises(LedgerUnavailableError):  # the redelivery's read, before any enqueue
        call(retry.headers, retry.body, FakeLedger(down=True), queue)
    assert queue.tasks == []
    ledger = FakeLedger()
    with pytest.raises(QueueUnavailableError):
        call(d.headers, d.body, ledger, FakeQueue(down=True))
    assert ledger.entries == {}  # so the redelivery enqueues again


def test_signed_body_with_an_unconvertible_integer_is_a_400_that_records_nothing() -> None:
    # found by `make fuzz`: json.loads raised a bare ValueError, which the webhook answered 500
    body = b'{"subscription": {"type": "channel.cheer"}, "event": {"bits": ' + b"9" * 5_000 + b"}}"
    headers = sign_delivery(b"{}", SECRET).headers
    headers[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(
        SECRET.encode(), headers[eventsub.MESSAGE_ID], headers[eventsub.MESSAGE_TIMESTAMP], body
    )
    ledger, queue = FakeLedger(), FakeQueue()
    with pytest.raises(errors.MalformedDeliveryError):
        call(headers, body, ledger, queue)
    assert ledger.entries == {} and queue.tasks == []
