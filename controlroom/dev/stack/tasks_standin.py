"""A local Cloud Tasks (v2) that behaves like Cloud Tasks where our code and the soak rely on it.

Served over plain gRPC on 127.0.0.1 (the Python client's CloudTasksGrpcTransport talks to it),
with the methods of `google.cloud.tasks.v2.CloudTasks` except IAM:

- HTTP tasks are dispatched as soon as they are due (CreateTask wakes the dispatcher), up to
  the queue's `max_concurrent_dispatches` at once and at most `max_dispatches_per_second`
  (a token bucket of `max_burst_size` tokens, which the service derives from the rate).
- A 2xx answer completes a task; anything else (or no answer within the task's
  `dispatch_deadline`) is retried after the queue's backoff: `min_backoff`, doubled
  `max_doublings` times, then growing linearly, capped at `max_backoff`; the task is dropped
  once both `max_attempts` and `max_retry_duration` are spent (see `retry_delay`).
- Task names are deduplicated: CreateTask with the name of a task that exists, or that
  completed or was deleted within the deduplication window (an hour, as Cloud Tasks documents
  for queues it created; `--dedup-window`), answers ALREADY_EXISTS.
- Each request carries the task's headers and body plus the X-CloudTasks-* headers
  (QueueName, TaskName, TaskRetryCount, TaskExecutionCount, TaskETA). No OIDC token is added:
  locally nothing checks one.
- Requests go over kept-alive connections (one per dispatch thread and target), as a
  function behind Google's front end sees them; a new connection per task cost the target
  twice the CPU of its request. A kept connection the target closed while idle is replaced
  and the request sent again at once; no answer on a fresh one is a failed attempt.

Queues, tasks and remembered names live in memory. With `--state FILE` a graceful stop
(SIGTERM) refuses new tasks, lets the dispatches in flight end, saves everything and exits;
the next start loads it, so a restart loses nothing a caller was told was created.

Run as a script (`python tasks_standin.py --port N`): it imports nothing from controlroom.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import http.client
import itertools
import json
import math
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.cloud import tasks_v2

SERVICE = "google.cloud.tasks.v2.CloudTasks"

# Cloud Tasks' defaults for a queue created without rate limits or a retry config
DEFAULT_RATE = 500.0
DEFAULT_CONCURRENCY = 1000
DEFAULT_MAX_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 3600.0
DEFAULT_MAX_DOUBLINGS = 16
DEFAULT_DEADLINE = 600.0  # an HTTP task's dispatch_deadline: 15 s to 30 min, 10 min if unset
DEDUP_WINDOW = 3600.0
DRAIN_SECONDS = 10.0  # a graceful stop waits this long for dispatches in flight

_pb = {
    name: getattr(tasks_v2, name).pb()
    for name in (
        "Queue",
        "Task",
        "Attempt",
        "ListQueuesRequest",
        "ListQueuesResponse",
        "GetQueueRequest",
        "CreateQueueRequest",
        "UpdateQueueRequest",
        "DeleteQueueRequest",
        "PurgeQueueRequest",
        "PauseQueueRequest",
        "ResumeQueueRequest",
        "ListTasksRequest",
        "ListTasksResponse",
        "GetTaskRequest",
        "CreateTaskRequest",
        "DeleteTaskRequest",
        "RunTaskRequest",
    )
}
Queue, Task = _pb["Queue"], _pb["Task"]
RUNNING, PAUSED = 1, 2  # Queue.State
_METHODS = {
    0: "POST",
    1: "POST",
    2: "GET",
    3: "HEAD",
    4: "PUT",
    5: "DELETE",
    6: "PATCH",
    7: "OPTIONS",
}
_TASK_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


_kept = threading.local()  # each dispatch thread's connections, by (scheme, host, port)


def _connection(
    target: tuple[str, str, int | None], timeout: float
) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's kept connection to `target` (and True), or a new one (and False)."""
    conns: dict[tuple[str, str, int | None], http.client.HTTPConnection] = (
        _kept.__dict__.setdefault("conns", {})
    )
    conn = conns.get(target)
    if conn is not None:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
            return conn, True
    scheme, host, port = target
    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conns[target] = conn = kind(host, port, timeout=timeout)
    return conn, False


def _drop(target: tuple[str, str, int | None]) -> None:
    conn = _kept.__dict__.get("conns", {}).pop(target, None)
    if conn is not None:
        conn.close()


class RefusedError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _seconds(duration: Any) -> float:
    return float(duration.seconds + duration.nanos / 1e9)


def _set_seconds(duration: Any, value: float) -> None:
    duration.seconds = int(value)
    duration.nanos = round((value - int(value)) * 1e9)


def burst_size(rate: float) -> int:
    """The token bucket's size for a rate (Cloud Tasks picks it from the rate; at most 500)."""
    return max(1, min(500, math.ceil(rate / 5)))


def retry_delay(attempts: int, min_backoff: float, max_backoff: float, max_doublings: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: min_backoff, doubled
    max_doublings times, then growing by the last doubled interval each time, capped at
    max_backoff. (10 s, 300 s, 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300, ...)"""
    n = max(1, attempts) - 1
    if n <= max_doublings:
        interval = min_backoff * 2**n
    else:
        step = min_backoff * 2**max_doublings
        interval = step * (1 + n - max_doublings)
    return float(min(interval, max_backoff))


@dataclass
class _Entry:
    task: Any  # tasks_v2 Task (protobuf)
    due: float  # wall-clock seconds
    seq: int = 0  # the heap entry that is current; older ones are stale
    running: bool = False
    deleted: bool = False
    forced: bool = False  # RunTask: dispatch now, whatever the rate


@dataclass
class _Queue:
    queue: Any  # tasks_v2 Queue (protobuf)
    tasks: dict[str, _Entry] = field(default_factory=dict)
    heap: list[tuple[float, int, str]] = field(default_factory=list)
    running: int = 0
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return float(self.queue.rate_limits.max_dispatches_per_second)

    def refill(self, now: float) -> None:
        burst = self.queue.rate_limits.max_burst_size
        self.tokens = min(burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now


def _with_defaults(queue: Any) -> None:
    limits, retry = queue.rate_limits, queue.retry_config
    if limits.max_dispatches_per_second <= 0:
        limits.max_dispatches_per_second = DEFAULT_RATE
    if limits.max_concurrent_dispatches <= 0:
        limits.max_concurrent_dispatches = DEFAULT_CONCURRENCY
    limits.max_burst_size = burst_size(limits.max_dispatches_per_second)
    if retry.max_attempts == 0:
        retry.max_attempts = DEFAULT_MAX_ATTEMPTS
    if not retry.HasField("min_backoff"):
        _set_seconds(retry.min_backoff, DEFAULT_MIN_BACKOFF)
    if not retry.HasField("max_backoff"):
        _set_seconds(retry.max_backoff, DEFAULT_MAX_BACKOFF)
    if retry.max_doublings == 0:
        retry.max_doublings = DEFAULT_MAX_DOUBLINGS  # (0 reads as unset, as in the proto)
    if queue.state == 0:
        queue.state = RUNNING


class CloudTasks:
    """The queues, their tasks, the names still refused, and the dispatcher thread."""

    def __init__(self, dedup_window: float = DEDUP_WINDOW) -> None:
        self.dedup_window = dedup_window
        self._queues: dict[str, _Queue] = {}
        self._gone: dict[str, float] = {}  # task name -> when it completed or was deleted
        self._prune_at = 10_000
        self._lock = threading.Condition()
        self._seq = itertools.count(1)
        self._accepting = True
        self._dispatching = True
        self._pool = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="dispatch")
        self._thread = threading.Thread(target=self._schedule, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # --- queues -----------------------------------------------------------------------
    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise RefusedError(grpc.StatusCode.NOT_FOUND, f"queue {name} does not exist")
        return q

    def list_queues(self, request: Any) -> Any:
        queues = [q.queue for n, q in self._queues.items() if n.startswith(request.parent + "/")]
        return _pb["ListQueuesResponse"](queues=queues)

    def get_queue(self, request: Any) -> Any:
        with self._lock:
            return self._queue(request.name).queue

    def create_queue(self, request: Any) -> Any:
        queue = Queue()
        queue.CopyFrom(request.queue)
        if not queue.name.startswith(request.parent + "/queues/"):
            raise RefusedError(grpc.StatusCode.INVALID_ARGUMENT, "queue name not under parent")
        _with_defaults(queue)
        with self._lock:
            if queue.name in self._queues:
                raise RefusedError(grpc.StatusCode.ALREADY_EXISTS, f"queue {queue.name} exists")
            self._queues[queue.name] = _Queue(queue, tokens=queue.rate_limits.max_burst_size)
            self._lock.notify_all()
            return queue

    def update_queue(self, request: Any) -> Any:
        """Changes the fields in the update mask (all given ones without a mask); creates the
        queue when it does not exist, as Cloud Tasks does."""
        with self._lock:
            q = self._queues.get(request.queue.name)
            if q is None:
                queue = Queue()
                queue.CopyFrom(request.queue)
                _with_defaults(queue)
                q = self._queues[queue.name] = _Queue(
                    queue, tokens=queue.rate_limits.max_burst_size
                )
            elif request.update_mask.paths:
                request.update_mask.MergeMessage(request.queue, q.queue)
            else:
                q.queue.MergeFrom(request.queue)
            _with_defaults(q.queue)
            q.tokens = min(q.tokens, q.queue.rate_limits.max_burst_size)
            self._lock.notify_all()
            return q.queue

    def delete_queue(self, request: Any) -> Any:
        with self._lock:
            q = self._queue(request.name)
            self._forget(q, list(q.tasks))
            del self._queues[request.name]
        return None

    def purge_queue(self, request: Any) -> Any:
        with self._lock:
            q = self._queue(request.name)
            self._forget(q, list(q.tasks))
            q.queue.purge_time.GetCurrentTime()
            return q.queue

    def pause_queue(self, request: Any) -> Any:
        with self._lock:
            q = self._queue(request.name)
            q.queue.state = PAUSED
            return q.queue

    def resume_queue(self, request: Any) -> Any:
        with self._lock:
            q = self._queue(request.name)
            q.queue.state = RUNNING
            self._lock.notify_all()
            return q.queue

    # --- tasks ------------------------------------------------------------------------
    def list_tasks(self, request: Any) -> Any:
        with self._lock:
            entries = list(self._queue(request.parent).tasks.values())
        start = int(request.page_token or 0)
        size = request.page_size or 1000
        page = entries[start : start + size]
        token = str(start + size) if start + size < len(entries) else ""
        return _pb["ListTasksResponse"](tasks=[e.task for e in page], next_page_token=token)

    def get_task(self, request: Any) -> Any:
        with self._lock:
            return self._task(request.name).task

    def _task(self, name: str) -> _Entry:
        q = self._queue(name.split("/tasks/", maxsplit=1)[0])
        entry = q.tasks.get(name)
        if entry is None or entry.deleted:
            raise RefusedError(grpc.StatusCode.NOT_FOUND, f"task {name} does not exist")
        return entry

    def create_task(self, request: Any) -> Any:
        task = Task()
        task.CopyFrom(request.task)
        if not task.HasField("http_request") or not task.http_request.url:
            raise RefusedError(grpc.StatusCode.INVALID_ARGUMENT, "only HTTP tasks with a url")
        if task.name:
            prefix, _, task_id = task.name.partition("/tasks/")
            if prefix != request.parent or not task_id or not set(task_id) <= _TASK_ID:
                raise RefusedError(grpc.StatusCode.INVALID_ARGUMENT, f"bad task name {task.name}")
        else:
            task.name = f"{request.parent}/tasks/{uuid.uuid4().int}"
        now = time.time()
        task.create_time.FromNanoseconds(int(now * 1e9))
        if not task.HasField("schedule_time"):
            task.schedule_time.FromNanoseconds(int(now * 1e9))
        if not task.HasField("dispatch_deadline"):
            _set_seconds(task.dispatch_deadline, DEFAULT_DEADLINE)
        task.view = 1  # BASIC
        with self._lock:
            if not self._accepting:
                raise RefusedError(grpc.StatusCode.UNAVAILABLE, "the stand-in is stopping")
            q = self._queue(request.parent)
            if task.name in q.tasks or self._remembered(task.name, now):
                raise RefusedError(grpc.StatusCode.ALREADY_EXISTS, f"task {task.name} exists")
            self._put(q, _Entry(task, due=_seconds(task.schedule_time)))
            self._lock.notify_all()
        return task

    def delete_task(self, request: Any) -> Any:
        with self._lock:
            entry = self._task(request.name)
            self._forget(self._queue(request.name.split("/tasks/", maxsplit=1)[0]), [request.name])
            entry.deleted = True
        return None

    def run_task(self, request: Any) -> Any:
        """Dispatches the task now, whatever its schedule or the queue's rate."""
        with self._lock:
            entry = self._task(request.name)
            if entry.running:
                raise RefusedError(grpc.StatusCode.FAILED_PRECONDITION, "the task is running")
            entry.forced = True
            self._put(
                self._queue(request.name.split("/tasks/", maxsplit=1)[0]), entry, due=time.time()
            )
            self._lock.notify_all()
            return entry.task

    def _remembered(self, name: str, now: float) -> bool:
        gone = self._gone.get(name)
        return gone is not None and now - gone < self.dedup_window

    def _put(self, q: _Queue, entry: _Entry, due: float | None = None) -> None:
        if due is not None:
            entry.due = due
        entry.seq = next(self._seq)
        q.tasks[entry.task.name] = entry
        heapq.heappush(q.heap, (entry.due, entry.seq, entry.task.name))

    def _forget(self, q: _Queue, names: list[str]) -> None:
        now = time.time()
        for name in names:
            entry = q.tasks.pop(name, None)
            if entry is not None:
                entry.deleted = True
            self._gone[name] = now
        if len(self._gone) > self._prune_at:  # names past the window are forgotten in bulk
            self._gone = {n: t for n, t in self._gone.items() if now - t < self.dedup_window}
            self._prune_at = max(10_000, 2 * len(self._gone))

    # --- dispatch ---------------------------------------------------------------------
    def _schedule(self) -> None:
        with self._lock:
            while self._dispatching:
                wake = self._start_due()
                self._lock.wait(timeout=max(0.0, min(wake - time.time(), 1.0)))

    def _start_due(self) -> float:
        """Starts every dispatch that is due and allowed; returns when to look again."""
        now, mono = time.time(), time.monotonic()
        wake = now + 1.0
        for q in self._queues.values():
            if q.queue.state != RUNNING:  # RunTask still dispatches on a paused queue
                for forced in [e for e in q.tasks.values() if e.forced and not e.running]:
                    self._start(q, forced)
                continue
            q.refill(mono)
            limits = q.queue.rate_limits
            while q.heap and q.running < limits.max_concurrent_dispatches:
                due, seq, name = q.heap[0]
                entry = q.tasks.get(name)
                if entry is None or entry.seq != seq or entry.running:
                    heapq.heappop(q.heap)  # completed, deleted or rescheduled since
                    continue
                if due > now:
                    wake = min(wake, due)
                    break
                if q.tokens < 1 and not entry.forced:
                    wake = min(wake, now + (1 - q.tokens) / q.rate)
                    break
                heapq.heappop(q.heap)
                if not entry.forced:
                    q.tokens -= 1
                self._start(q, entry)
        return wake

    def _start(self, q: _Queue, entry: _Entry) -> None:
        entry.forced = False
        entry.running = True
        q.running += 1
        self._pool.submit(self._dispatch, q, entry)

    def _dispatch(self, q: _Queue, entry: _Entry) -> None:
        task = entry.task
        started = time.time()
        status = self._send(q, task)
        ended = time.time()
        with self._lock:
            q.running -= 1
            attempt = _pb["Attempt"]()
            attempt.schedule_time.FromNanoseconds(int(entry.due * 1e9))
            attempt.dispatch_time.FromNanoseconds(int(started * 1e9))
            attempt.response_time.FromNanoseconds(int(ended * 1e9))
            attempt.response_status.code = 0 if 200 <= status < 300 else 2  # OK / UNKNOWN
            task.dispatch_count += 1
            if status:
                task.response_count += 1
            if not task.HasField("first_attempt"):
                task.first_attempt.CopyFrom(attempt)
            task.last_attempt.CopyFrom(attempt)
            entry.running = False
            if entry.deleted:
                pass  # deleted while it ran: its name is remembered already
            elif 200 <= status < 300 or self._spent(q, task, ended):
                self._forget(q, [task.name])
            else:
                retry = q.queue.retry_config
                delay = retry_delay(
                    task.dispatch_count,
                    _seconds(retry.min_backoff),
                    _seconds(retry.max_backoff),
                    retry.max_doublings,
                )
                task.schedule_time.FromNanoseconds(int((ended + delay) * 1e9))
                self._put(q, entry, due=ended + delay)
            self._lock.notify_all()
        if not 200 <= status < 300:
            answer = f"answered {status}" if status else "got no answer"
            print(f"attempt {task.dispatch_count} of {task.name} {answer}", flush=True)

    @staticmethod
    def _spent(q: _Queue, task: Any, now: float) -> bool:
        retry = q.queue.retry_config
        limit, age_limit = retry.max_attempts, _seconds(retry.max_retry_duration)
        if limit == -1 and age_limit == 0:
            return False
        attempts_done = limit == -1 or task.dispatch_count >= limit
        age = now - _seconds(task.first_attempt.dispatch_time)
        return attempts_done and (age_limit == 0 or age >= age_limit)

    @staticmethod
    def _send(q: _Queue, task: Any) -> int:
        """One HTTP request for the task; its status, or 0 when no answer came."""
        request = task.http_request
        url = urlsplit(request.url)
        queue_id = q.queue.name.rsplit("/", 1)[1]
        headers = dict(request.headers)
        headers.update(
            {
                "User-Agent": "Google-Cloud-Tasks",
                "X-CloudTasks-QueueName": queue_id,
                "X-CloudTasks-TaskName": task.name.rsplit("/", 1)[1],
                "X-CloudTasks-TaskRetryCount": str(task.dispatch_count),
                "X-CloudTasks-TaskExecutionCount": str(task.response_count),
                "X-CloudTasks-TaskETA": f"{_seconds(task.schedule_time):.6f}",
            }
        )
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        target = (url.scheme, url.hostname or "127.0.0.1", url.port)
        deadline = _seconds(task.dispatch_deadline)
        while True:
            conn, kept = _connection(target, deadline)
            try:
                conn.request(
                    _METHODS.get(request.http_method, "POST"), path, request.body or None, headers
                )
                response = conn.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                _drop(target)
                if kept:
                    continue  # closed while idle (or just then): once more on a fresh one
                return 0
            except (OSError, http.client.HTTPException):  # refused, timed out, garbled
                _drop(target)
                return 0
            if response.will_close:
                _drop(target)
            return response.status

    # --- stopping and state -----------------------------------------------------------
    def quiesce(self, drain: float = DRAIN_SECONDS) -> int:
        """Refuse new tasks, start no more dispatches, wait (up to `drain` s) for the running
        ones; returns how many were still running (they are saved as queued)."""
        with self._lock:
            self._accepting = False
            self._dispatching = False
            self._lock.notify_all()
            deadline = time.monotonic() + drain
            while (left := sum(q.running for q in self._queues.values())) and (
                time.monotonic() < deadline
            ):
                self._lock.wait(timeout=0.1)
            return left

    def save(self, path: Path) -> int:
        now = time.time()
        with self._lock:
            queues = [
                {
                    "queue": _b64(q.queue),
                    "tasks": [_b64(e.task) for e in q.tasks.values() if not e.deleted],
                }
                for q in self._queues.values()
            ]
            saved = {
                "queues": queues,
                "gone": {n: t for n, t in self._gone.items() if now - t < self.dedup_window},
            }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved))
        tmp.replace(path)
        return sum(len(q["tasks"]) for q in queues)

    def load(self, path: Path) -> int:
        """Restores a saved state, then removes the file: were this process killed later, a
        stale copy must not bring back tasks that have completed since."""
        if not path.exists():
            return 0
        saved = json.loads(path.read_text())
        count = 0
        with self._lock:
            for item in saved["queues"]:
                queue = Queue.FromString(base64.b64decode(item["queue"]))
                q = self._queues[queue.name] = _Queue(
                    queue, tokens=queue.rate_limits.max_burst_size
                )
                for raw in item["tasks"]:
                    task = Task.FromString(base64.b64decode(raw))
                    self._put(q, _Entry(task, due=_seconds(task.schedule_time)))
                    count += 1
            self._gone.update(saved["gone"])
        path.unlink()
        return count

    # --- gRPC -------------------------------------------------------------------------
    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable[[Any], Any], str]] = {
            "ListQueues": (self.list_queues, "ListQueuesRequest"),
            "GetQueue": (self.get_queue, "GetQueueRequest"),
            "CreateQueue": (self.create_queue, "CreateQueueRequest"),
            "UpdateQueue": (self.update_queue, "UpdateQueueRequest"),
            "DeleteQueue": (self.delete_queue, "DeleteQueueRequest"),
            "PurgeQueue": (self.purge_queue, "PurgeQueueRequest"),
            "PauseQueue": (self.pause_queue, "PauseQueueRequest"),
            "ResumeQueue": (self.resume_queue, "ResumeQueueRequest"),
            "ListTasks": (self.list_tasks, "ListTasksRequest"),
            "GetTask": (self.get_task, "GetTaskRequest"),
            "CreateTask": (self.create_task, "CreateTaskRequest"),
            "DeleteTask": (self.delete_task, "DeleteTaskRequest"),
            "RunTask": (self.run_task, "RunTaskRequest"),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    _answer(method),
                    request_deserializer=_pb[request].FromString,
                    response_serializer=_serialize,
                )
                for name, (method, request) in methods.items()
            },
        )


def _serialize(message: Any) -> bytes:
    return b"" if message is None else bytes(message.SerializeToString())  # None: Empty


def _b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def _answer(method: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request)
        except RefusedError as exc:
            context.abort(exc.code, str(exc))

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, help="where queues and tasks wait across a restart")
    parser.add_argument(
        "--dedup-window",
        type=float,
        default=DEDUP_WINDOW,
        help="seconds a completed or deleted task's name stays refused",
    )
    args = parser.parse_args(argv)
    tasks = CloudTasks(args.dedup_window)
    if args.state is not None:
        print(f"restored {tasks.load(args.state)} queued task(s)", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server = grpc.server(ThreadPoolExecutor(max_workers=32, thread_name_prefix="grpc"))
    server.add_generic_rpc_handlers((tasks.handler(),))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    tasks.start()
    server.start()
    print(f"cloud tasks stand-in on 127.0.0.1:{args.port}", flush=True)
    stopping.wait()
    left = tasks.quiesce()  # CreateTask answers UNAVAILABLE from here on (callers retry)
    if args.state is not None:
        print(f"saved {tasks.save(args.state)} queued task(s), {left} of them cut off", flush=True)
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
