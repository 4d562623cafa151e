"""Handing tasks to Cloud Tasks (or its emulator): persist tasks, function runs, notify tasks."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.api_core.retry import Retry
from google.cloud import tasks_v2
from google.cloud.tasks_v2.types import cloudtasks as _cloudtasks
from google.cloud.tasks_v2.types import target as _target
from google.cloud.tasks_v2.types import task as _task

from controlroom.core.handoff import PersistTask
from controlroom.errors import QueueUnavailableError

_RETRY = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=2.0)
_TIMEOUT = 2.0
# google.api_core's own mapping and routing header (untyped there)
_from_grpc_error: Callable[[grpc.RpcError], Exception] = gexc.from_grpc_error
_routing_header: Callable[[tuple[tuple[str, str], ...]], tuple[str, str]] = (
    gapic_v1.routing_header.to_grpc_metadata
)
_CreateTaskRequest: Any = _cloudtasks.CreateTaskRequest.pb()
_Task: Any = _task.Task.pb()
_HttpRequest: Any = _target.HttpRequest.pb()


class Queue(Protocol):
    def enqueue(self, task: PersistTask) -> bool:
        """Hand `task` over; False when the queue already held a task of its name."""


@dataclass(frozen=True)
class Target:
    """Where tasks go: the queue, the persist URL and (in the cloud) who signs the OIDC token."""

    queue_path: str
    url: str
    service_account: str | None = None


def _call(rpc: Callable[[], object]) -> object:
    """One attempt, with gRPC's error turned into google.api_core's (what _RETRY reads)."""
    try:
        return rpc()
    except grpc.RpcError as exc:
        raise _from_grpc_error(exc) from exc


def shard_paths(queue_path: str, shards: int) -> tuple[str, ...]:
    """The persist queue's shards: the queue itself, then `<queue>-1` to `<queue>-<n-1>`, so
    going from one queue to several keeps the one that exists (and the tasks in it)."""
    return (queue_path, *(f"{queue_path}-{i}" for i in range(1, shards)))


def shard_of(task_id: str, shards: int) -> int:
    """Which shard a task goes to: from its name (a hash of the message id), so every copy of
    a delivery meets the same queue and is refused there by name."""
    return int(task_id[:8], 16) % shards


class CloudTasksQueue:
    """Persist tasks named after the message id (`PersistTask.task_id`), so Cloud Tasks itself
    refuses a second task for the same delivery (ALREADY_EXISTS) while the name is remembered.

    With `shards` above one, each task goes to one of that many queues (`shard_paths`),
    chosen by its name: one queue dispatches at most 500 tasks a second (docs/capacity.md).

    One CreateTask call made with the generated protobuf messages on the client's own channel
    (its credentials, the same routing header): the client's method builds the same request
    through proto-plus wrappers, which cost the webhook more CPU than the call itself."""

    def __init__(self, client: tasks_v2.CloudTasksClient, target: Target, shards: int = 1) -> None:
        self._client = client
        self._target = target
        transport: Any = client.transport  # the gRPC transport (the client's default)
        self._create = transport.grpc_channel.unary_unary(
            "/google.cloud.tasks.v2.CloudTasks/CreateTask",
            request_serializer=_CreateTaskRequest.SerializeToString,
            response_deserializer=_Task.FromString,
        )
        self.queue_paths = shard_paths(target.queue_path, shards)
        self._metadata = [(_routing_header((("parent", path),)),) for path in self.queue_paths]

    def enqueue(self, task: PersistTask) -> bool:
        request = _HttpRequest(
            http_method=int(tasks_v2.HttpMethod.POST),
            url=self._target.url,
            headers={"Content-Type": "application/json"},
            body=task.encode(),
        )
        if self._target.service_account:
            request.oidc_token.service_account_email = self._target.service_account
        name = task.task_id()
        shard = shard_of(name, len(self.queue_paths))
        path = self.queue_paths[shard]
        create = _CreateTaskRequest(
            parent=path, task=_Task(name=f"{path}/tasks/{name}", http_request=request)
        )
        metadata = self._metadata[shard]
        try:
            _RETRY(_call)(lambda: self._create(create, timeout=_TIMEOUT, metadata=metadata))
        except gexc.AlreadyExists:
            return False  # Cloud Tasks already holds this delivery (names are deduplicated)
        except gexc.GoogleAPIError as exc:
            raise QueueUnavailableError(type(exc).__name__) from exc
        return True


def request_run(client: tasks_v2.CloudTasksClient, target: Target, reason: str) -> None:
    """Ask a function to run soon (one POST through Cloud Tasks, retried by the queue)."""
    request = tasks_v2.HttpRequest(
        http_method=tasks_v2.HttpMethod.POST,
        url=target.url,
        headers={"Content-Type": "application/json"},
        body=json.dumps({"reason": reason}).encode(),
    )
    if target.service_account:
        request.oidc_token = tasks_v2.OidcToken(service_account_email=target.service_account)
    try:
        client.create_task(
            parent=target.queue_path,
            task=tasks_v2.Task(http_request=request),
            retry=_RETRY,
            timeout=_TIMEOUT,
        )
    except gexc.GoogleAPIError as exc:
        raise QueueUnavailableError(type(exc).__name__) from exc


# --- notification deliveries (functions/notify) ------------------------------------------
_log = logging.getLogger(__name__)


def enqueue_notification(
    client: tasks_v2.CloudTasksClient,
    target: Target,
    company_id: uuid.UUID | str,
    delivery_id: uuid.UUID | str,
    attempt: int | str,
    *,
    not_before: datetime | None = None,
) -> None:
    """One notify task for one delivery, named `<delivery id>-<attempt>` so Cloud Tasks
    refuses the same attempt twice; `not_before` becomes the task's schedule time."""
    request = tasks_v2.HttpRequest(
        http_method=tasks_v2.HttpMethod.POST,
        url=target.url,
        headers={"Content-Type": "application/json"},
        body=json.dumps({"company_id": str(company_id), "delivery_id": str(delivery_id)}).encode(),
    )
    if target.service_account:
        request.oidc_token = tasks_v2.OidcToken(service_account_email=target.service_account)
    task = tasks_v2.Task(
        name=f"{target.queue_path}/tasks/{delivery_id}-{attempt}", http_request=request
    )
    if not_before is not None:
        task.schedule_time = not_before.astimezone(UTC)  # proto-plus takes a datetime
    try:
        client.create_task(parent=target.queue_path, task=task, retry=_RETRY, timeout=_TIMEOUT)
    except gexc.AlreadyExists:
        return  # this attempt is queued already
    except gexc.GoogleAPIError as exc:
        raise QueueUnavailableError(type(exc).__name__) from exc


class CloudTasksDispatcher:
    """Hands notification deliveries to functions/notify through its own queue.

    `dispatch` never raises: a delivery left pending is re-dispatched by the pulse's sweep."""

    def __init__(self, client: tasks_v2.CloudTasksClient, target: Target) -> None:
        self._client = client
        self._target = target

    def dispatch(self, company_id: uuid.UUID | str, delivery_ids: Sequence[uuid.UUID]) -> None:
        for delivery_id in delivery_ids:
            self.dispatch_attempt(company_id, delivery_id, 0)

    def dispatch_attempt(
        self,
        company_id: uuid.UUID | str,
        delivery_id: uuid.UUID | str,
        attempt: int | str,
        not_before: datetime | None = None,
    ) -> bool:
        """One task for attempt `attempt` of a delivery; False (logged) when it was not taken."""
        try:
            enqueue_notification(
                self._client, self._target, company_id, delivery_id, attempt, not_before=not_before
            )
        except Exception as exc:  # noqa: BLE001 - never fail the caller: the sweep retries
            _log.warning(
                "notification dispatch failed",
                extra={
                    "fields": {
                        "company_id": str(company_id),
                        "delivery_id": str(delivery_id),
                        "error": type(exc).__name__,
                    }
                },
            )
            return False
        return True
