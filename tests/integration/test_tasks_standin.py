"""The local Cloud Tasks stand-in behaves like Cloud Tasks where the soak and our code rely on
it: concurrent dispatch within the queue's limits, the queue's retry backoff, named-task
deduplication, and nothing lost across a graceful restart.

The tests share one stand-in (each with queues of its own) against HTTP targets on loopback
that the tests control; assertions are on what was dispatched (counts, order, names), never
on how fast. One stand-in, started before this module opens a gRPC channel, because forking
the test process while gRPC's threads run can hang in gRPC's fork handlers."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, field_mask_pb2

from controlroom.adapters import cloudtasks
from controlroom.dev.stack.emulators import TasksEmulator
from controlroom.dev.stack.process import free_port
from controlroom.dev.stack.tasks_standin import retry_delay
from tests.integration.listener import wait_for

PARENT = "projects/test/locations/here"
WAIT = 30.0  # generous: only ever reached when something is wrong
WINDOW = 15.0  # the stand-in's deduplication window here (an hour by default)


@dataclass
class Target:
    """An HTTP endpoint that counts requests in flight, can hold them, and answers `status`."""

    status: int = 204
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    peak: int = 0
    received: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    keep_alive: bool = False  # HTTP/1.1, connections kept open between requests
    hang_up: bool = False  # ... yet closed after each answer without saying so
    peers: list[int] = field(default_factory=list)  # each request's client port

    def __post_init__(self) -> None:
        self.release.set()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if target.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with target.lock:
                    target.received.append((time.monotonic(), dict(self.headers), body))
                    target.peers.append(self.client_address[1])
                    target.running += 1
                    target.peak = max(target.peak, target.running)
                target.release.wait(WAIT)
                with target.lock:
                    target.running -= 1
                self.send_response(target.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if target.hang_up:
                    self.close_connection = True

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/run"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def eventually(check: Callable[[], bool], what: str) -> None:
    assert wait_for(check, timeout=WAIT, interval=0.02), f"never happened: {what}"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TasksEmulator]:
    logs = tmp_path_factory.mktemp("tasks") / "logs"
    server = TasksEmulator(Path(sys.executable), logs, free_port(), dedup_window=WINDOW)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(stand_in: TasksEmulator) -> tasks_v2.CloudTasksClient:
    return cloudtasks.client(stand_in.host)


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def make_queue(
    client: tasks_v2.CloudTasksClient,
    *,
    concurrent: int = 0,
    rate: float = 0.0,
    retry: tasks_v2.RetryConfig | None = None,
) -> str:
    name = f"{PARENT}/queues/q-{uuid.uuid4().hex[:12]}"
    queue = tasks_v2.Queue(
        name=name,
        rate_limits=tasks_v2.RateLimits(
            max_concurrent_dispatches=concurrent, max_dispatches_per_second=rate
        ),
    )
    if retry is not None:
        queue.retry_config = retry
    client.create_queue(parent=PARENT, queue=queue)
    return name


def http_task(target: Target, name: str | None = None, body: bytes = b"{}") -> tasks_v2.Task:
    return tasks_v2.Task(
        name=name or "",
        http_request=tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=target.url,
            headers={"Content-Type": "application/json"},
            body=body,
        ),
    )


def tasks_left(client: tasks_v2.CloudTasksClient, queue: str) -> int:
    return len(list(client.list_tasks(parent=queue)))


def test_concurrency_reaches_max_concurrent_dispatches_and_never_exceeds_it(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    queue = make_queue(client, concurrent=4, rate=500)
    assert client.get_queue(name=queue).rate_limits.max_concurrent_dispatches == 4
    target.release.clear()  # every request waits until the test lets it go
    for i in range(12):
        client.create_task(parent=queue, task=http_task(target, body=str(i).encode()))
    eventually(lambda: target.running == 4, "four dispatches at once")
    time.sleep(0.5)  # room for a fifth, were the limit not kept
    assert target.count() == 4
    assert target.peak == 4
    target.release.set()
    eventually(lambda: tasks_left(client, queue) == 0, "every task completed")
    assert target.count() == 12
    assert target.peak == 4
    assert sorted(int(body) for _, _, body in target.received) == list(range(12))


def test_the_rate_limit_holds_dispatches_back(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    # 0.05/s: a bucket of one token, the next one 20 s later
    queue = make_queue(client, rate=0.05)
    assert client.get_queue(name=queue).rate_limits.max_burst_size == 1
    for _ in range(3):
        client.create_task(parent=queue, task=http_task(target))
    eventually(lambda: target.count() == 1, "the first dispatch")
    time.sleep(1.0)
    assert target.count() == 1  # the others wait for tokens
    client.update_queue(
        queue=tasks_v2.Queue(
            name=queue, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=500)
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"]),
    )
    eventually(lambda: target.count() == 3, "the rest once the rate is raised")


def test_retry_delay_follows_cloud_tasks_documented_example() -> None:
    # min_backoff 10 s, max_backoff 300 s, max_doublings 3: 10, 20, 40, 80, then +80 each
    # time (160, 240), then 300 from there on
    delays = [retry_delay(n, 10, 300, 3) for n in range(1, 10)]
    assert delays == [10, 20, 40, 80, 160, 240, 300, 300, 300]
    assert [retry_delay(n, 0.1, 3600, 16) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]


def test_failed_attempts_back_off_per_the_queue_and_stop_at_max_attempts(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    min_b, max_b, doublings, attempts = 0.2, 0.8, 1, 5  # 0.2, 0.4, 0.8 (linear), 0.8 (cap)
    queue = make_queue(
        client,
        retry=tasks_v2.RetryConfig(
            max_attempts=attempts,
            min_backoff=duration_pb2.Duration(nanos=200_000_000),
            max_backoff=duration_pb2.Duration(nanos=800_000_000),
            max_doublings=doublings,
        ),
    )
    config = client.get_queue(name=queue).retry_config
    assert config.max_attempts == attempts and config.max_doublings == doublings
    target.status = 503
    name = f"{queue}/tasks/failing"
    client.create_task(parent=queue, task=http_task(target, name))
    eventually(lambda: tasks_left(client, queue) == 0, "the task dropped after max_attempts")
    time.sleep(1.0)  # longer than any backoff: a sixth attempt would have come
    assert target.count() == attempts
    arrivals = [at for at, _, _ in target.received]
    headers = [h for _, h, _ in target.received]
    assert [h["X-CloudTasks-TaskRetryCount"] for h in headers] == ["0", "1", "2", "3", "4"]
    assert [h["X-CloudTasks-TaskExecutionCount"] for h in headers] == ["0", "1", "2", "3", "4"]
    assert {h["X-CloudTasks-TaskName"] for h in headers} == {"failing"}
    # never sooner than the backoff after the previous attempt (ends after it arrived)
    for n, (earlier, later) in enumerate(itertools.pairwise(arrivals), start=1):
        assert later - earlier >= retry_delay(n, min_b, max_b, doublings) - 0.005
    # and the name stays taken after the task was dropped
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue, task=http_task(target, name))


def test_a_task_name_is_refused_while_it_exists_and_after_it_completed_or_was_deleted(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    queue = make_queue(client)
    name = f"{queue}/tasks/twitch-message-{uuid.uuid4()}"
    target.release.clear()
    created = client.create_task(parent=queue, task=http_task(target, name))
    assert created.name == name
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue, task=http_task(target, name))  # queued or running
    target.release.set()
    eventually(lambda: tasks_left(client, queue) == 0, "the task completed")
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue, task=http_task(target, name))  # completed
    assert target.count() == 1

    later = f"{queue}/tasks/later"
    task = http_task(target, later)
    task.schedule_time = datetime.now(UTC) + timedelta(hours=1)
    client.create_task(parent=queue, task=task)
    client.delete_task(name=later)
    with pytest.raises(gexc.NotFound):
        client.get_task(name=later)
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue, task=http_task(target, later))  # deleted

    # unnamed tasks get names of their own and are never refused
    names = {client.create_task(parent=queue, task=http_task(target)).name for _ in range(3)}
    assert len(names) == 3
    eventually(lambda: target.count() == 4, "the unnamed tasks ran")


def test_a_name_is_taken_again_once_the_dedup_window_is_over(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    queue = make_queue(client)
    name = f"{queue}/tasks/again"
    client.create_task(parent=queue, task=http_task(target, name))
    eventually(lambda: tasks_left(client, queue) == 0, "the task completed")
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue, task=http_task(target, name))
    time.sleep(WINDOW)
    client.create_task(parent=queue, task=http_task(target, name))  # the window is over
    eventually(lambda: target.count() == 2, "the name ran again")


def test_a_graceful_restart_keeps_queues_tasks_and_refused_names(
    stand_in: TasksEmulator, client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    server = stand_in
    queue = make_queue(client, concurrent=2)
    client.pause_queue(name=queue)  # queued tasks stay queued through the restart
    queued = [f"{queue}/tasks/queued-{i}" for i in range(5)]
    for name in queued:
        client.create_task(parent=queue, task=http_task(target, name))
    done = f"{queue}/tasks/done"
    client.create_task(parent=queue, task=http_task(target, done))
    client.run_task(name=done)  # RunTask dispatches even on a paused queue
    eventually(lambda: target.count() == 1, "the run task")
    eventually(lambda: tasks_left(client, queue) == 5, "the run task completed")

    # a dispatch in flight when the stop comes is let finish, not cut off and rerun
    target.release.clear()
    client.resume_queue(name=queue)
    eventually(lambda: target.running == 2, "two dispatches in flight")
    probe_client = cloudtasks.client(server.host)

    def release_once_refusing() -> None:
        # CreateTask answers NOT_FOUND for a missing queue until the stop begins, then
        # UNAVAILABLE: only then do the two dispatches in flight get their answers
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                probe_client.create_task(
                    parent=f"{PARENT}/queues/missing", task=http_task(target), timeout=5
                )
            except gexc.ServiceUnavailable:
                break
            except gexc.GoogleAPIError:  # NOT_FOUND (or a slow answer): not stopping yet
                time.sleep(0.02)
        target.release.set()

    probe = threading.Thread(target=release_once_refusing)
    probe.start()
    client.transport.close()
    server.stop()  # SIGTERM: refuse new tasks, let the running ones finish, save
    probe.join()
    probe_client.transport.close()
    assert target.count() == 3  # nothing more was started after the stop began
    server.start()
    client = cloudtasks.client(server.host)
    with pytest.raises(gexc.AlreadyExists):  # completed before the restart: still refused
        client.create_task(parent=queue, task=http_task(target, done))
    restored = client.get_queue(name=queue)
    assert restored.rate_limits.max_concurrent_dispatches == 2
    eventually(lambda: tasks_left(client, queue) == 0, "the restored tasks ran")
    bodies = [h["X-CloudTasks-TaskName"] for _, h, _ in target.received]
    assert sorted(bodies) == sorted(["done", *(n.rsplit("/", 1)[1] for n in queued)])
    for name in queued:
        with pytest.raises(gexc.AlreadyExists):
            client.create_task(parent=queue, task=http_task(target, name))


# --- connections ---------------------------------------------------------------------------
def test_dispatches_reuse_kept_alive_connections(client: tasks_v2.CloudTasksClient) -> None:
    # as a function behind Google's front end sees them: not a new connection per task
    target = Target(keep_alive=True)
    try:
        queue = make_queue(client, concurrent=1)
        for _ in range(20):
            client.create_task(parent=queue, task=http_task(target))
        eventually(lambda: target.count() == 20, "twenty dispatches")
        eventually(lambda: tasks_left(client, queue) == 0, "all completed")
        assert len(set(target.peers)) <= 10, target.peers  # a new connection each: 20
    finally:
        target.close()


def test_a_kept_connection_closed_by_the_target_is_replaced_without_a_failed_attempt(
    client: tasks_v2.CloudTasksClient,
) -> None:
    target = Target(keep_alive=True, hang_up=True)
    try:
        queue = make_queue(client, concurrent=1)
        names = [f"{queue}/tasks/hangup-{i}" for i in range(12)]
        for name in names:
            client.create_task(parent=queue, task=http_task(target, name))
        eventually(lambda: tasks_left(client, queue) == 0, "all completed")
        sent = [headers["X-CloudTasks-TaskName"] for _, headers, _ in target.received]
        assert sorted(sent) == sorted(n.rsplit("/", 1)[1] for n in names)  # each once
        retries = {headers["X-CloudTasks-TaskRetryCount"] for _, headers, _ in target.received}
        assert retries == {"0"}  # the dead connection cost no attempt
        assert len(set(target.peers)) == 12  # every answer really did close its connection
    finally:
        target.close()
