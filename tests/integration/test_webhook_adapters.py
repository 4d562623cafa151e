"""The webhook's two adapters against the Firestore and Cloud Tasks stand-ins: each call is one
round trip made with the generated protobuf messages, so these check that what they send is
what the services accept and that their answers mean what the use case reads."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from controlroom.adapters import cloudtasks
from controlroom.adapters.ledger import ENQUEUED, RETENTION, Entry, FirestoreLedger
from controlroom.adapters.taskqueue import CloudTasksQueue, Target, shard_of
from controlroom.core.handoff import PersistTask
from controlroom.dev.stack import Endpoints, local
from controlroom.dev.stack.process import free_port
from controlroom.errors import LedgerUnavailableError, QueueUnavailableError
from tests.integration.listener import Recorder

NOW = datetime(2026, 12, 3, 12, 0, 0, 123000, tzinfo=UTC)


def _task(message_id: str) -> PersistTask:
    return PersistTask(
        message_id=message_id,
        message_type="notification",
        subscription_type="channel.follow",
        subscription_version="2",
        timestamp="2026-12-03T12:00:00.123Z",
        retry=0,
        received_at=NOW.isoformat(),
        body=b'{"subscription": {}, "event": {}}',
    )


@pytest.fixture
def task_target() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


@pytest.fixture
def fs(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> firestore.Client:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", endpoints.firestore_emulator_host)
    return firestore.Client(project=local.PROJECT)


def test_ledger_records_a_message_once_with_its_expiry(fs: firestore.Client) -> None:
    ledger = FirestoreLedger(fs, "webhook_adapter_test")
    message_id = str(uuid.uuid4())
    entry = Entry(message_id, "channel.follow", 2, NOW)
    assert not ledger.enqueued(message_id)
    assert ledger.record(entry, NOW + timedelta(milliseconds=4))
    assert not ledger.record(entry, NOW + timedelta(seconds=1))  # refused, not overwritten
    assert ledger.enqueued(message_id)
    stored = fs.collection("webhook_adapter_test").document(message_id).get().to_dict()
    assert stored == {
        "state": ENQUEUED,
        "subscription_type": "channel.follow",
        "retry": 2,
        "received_at": NOW,
        "enqueued_at": NOW + timedelta(milliseconds=4),
        "expires_at": NOW + RETENTION,  # the TTL policy's field
    }


def test_ledger_reads_an_entry_in_another_state_as_not_enqueued(fs: firestore.Client) -> None:
    # an entry the previous webhook left at "received" (it died before enqueuing)
    message_id = str(uuid.uuid4())
    fs.collection("webhook_adapter_test").document(message_id).create({"state": "received"})
    assert not FirestoreLedger(fs, "webhook_adapter_test").enqueued(message_id)


def test_ledger_unreachable_is_ledger_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    ledger = FirestoreLedger(firestore.Client(project=local.PROJECT))
    with pytest.raises(LedgerUnavailableError):
        ledger.record(Entry("m", "channel.follow", 0, NOW), NOW)
    with pytest.raises(LedgerUnavailableError):
        ledger.enqueued("m")


def test_queue_creates_the_named_task_once_and_it_is_delivered(
    endpoints: Endpoints, task_target: Recorder
) -> None:
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    port = task_target.server.server_address[1]
    target = Target(
        cloudtasks.queue_path(local.PROJECT, local.LOCATION, local.QUEUE),
        f"http://127.0.0.1:{port}/persist",
    )
    queue = CloudTasksQueue(client, target)
    task = _task(str(uuid.uuid4()))
    assert queue.enqueue(task)
    assert not queue.enqueue(task)  # ALREADY_EXISTS: the name is the deduplication key
    deadline = time.monotonic() + 10
    while not task_target.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a second task, had there been one, is due as soon as the first
    assert len(task_target.received) == 1
    path, headers, body = task_target.received[0]
    assert path == "/persist"
    assert headers["content-type"] == "application/json"
    assert PersistTask.decode(body) == task
    assert json.loads(body)["message_id"] == task.message_id


def test_queue_unreachable_is_queue_unavailable() -> None:
    client = cloudtasks.client(f"127.0.0.1:{free_port()}")
    target = Target(cloudtasks.queue_path(local.PROJECT, local.LOCATION, local.QUEUE), "http://x/")
    with pytest.raises(QueueUnavailableError):
        CloudTasksQueue(client, target).enqueue(_task("m"))


def test_racing_copies_of_a_delivery_make_one_task_and_one_entry(
    endpoints: Endpoints, fs: firestore.Client
) -> None:
    # Twitch's copies of one message can arrive at several instances at once
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    target = Target(
        cloudtasks.queue_path(local.PROJECT, local.LOCATION, local.QUEUE),
        f"http://127.0.0.1:{free_port()}/",  # nobody listens: the task stays queued
    )
    queue = CloudTasksQueue(client, target)
    ledger = FirestoreLedger(fs, "webhook_adapter_test")
    task = _task(str(uuid.uuid4()))
    entry = Entry(task.message_id, "channel.follow", 0, NOW)
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: queue.enqueue(task), range(8)))
        recorded = list(pool.map(lambda _: ledger.record(entry, NOW), range(8)))
    assert created.count(True) == 1
    assert recorded.count(True) == 1


def test_sharded_queue_spreads_deliveries_and_each_copy_meets_its_first_by_name(
    endpoints: Endpoints,
) -> None:
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    base = f"sharded-{uuid.uuid4().hex[:8]}"
    paths = [cloudtasks.ensure_queue(client, local.PROJECT, local.LOCATION, base)]
    paths += [
        cloudtasks.ensure_queue(client, local.PROJECT, local.LOCATION, f"{base}-{i}")
        for i in (1, 2)
    ]
    for path in paths:
        client.pause_queue(name=path)  # the tasks stay where the webhook put them
    try:
        target = Target(paths[0], f"http://127.0.0.1:{free_port()}/")
        queue = CloudTasksQueue(client, target, shards=3)
        assert queue.queue_paths == tuple(paths)
        tasks = [_task(str(uuid.uuid4())) for _ in range(60)]
        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(queue.enqueue, tasks))
            # every delivery again, as a redelivery would come (to any instance)
            again = list(pool.map(queue.enqueue, tasks))
        assert first == [True] * 60
        assert again == [False] * 60  # refused by name in the queue its first copy went to
        held = {path: [t.name for t in client.list_tasks(parent=path)] for path in paths}
        assert sum(len(names) for names in held.values()) == 60  # one task per delivery
        assert all(len(names) >= 5 for names in held.values()), held  # all three used
        for task in tasks:  # each where its name says
            path = paths[shard_of(task.task_id(), 3)]
            assert f"{path}/tasks/{task.task_id()}" in held[path]
    finally:
        for path in paths:
            client.purge_queue(name=path)
