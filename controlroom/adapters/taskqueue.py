"""Handing tasks to Cloud Tasks (or its emulator): persist tasks, function runs, notify tasks."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import tasks_v2

from controlroom.core.handoff import PersistTask
from controlroom.errors import QueueUnavailableError

_RETRY = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=2.0)
_TIMEOUT = 2.0


class Queue(Protocol):
    def enqueue(self, task: PersistTask) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where tasks go: the queue, the persist URL and (in the cloud) who signs the OIDC token."""

    queue_path: str
    url: str
    service_account: str | None = None


class CloudTasksQueue:
    def __init__(self, client: tasks_v2.CloudTasksClient, target: Target) -> None:
        self._client = client
        self._target = target

    def enqueue(self, task: PersistTask) -> None:
        request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=self._target.url,
            headers={"Content-Type": "application/json"},
            body=task.encode(),
        )
        if self._target.service_account:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._target.service_account
            )
        try:
            self._client.create_task(
                parent=self._target.queue_path,
                task=tasks_v2.Task(
                    name=f"{self._target.queue_path}/tasks/{task.task_id()}", http_request=request
                ),
                retry=_RETRY,
                timeout=_TIMEOUT,
            )
        except gexc.AlreadyExists:
            return  # Cloud Tasks already holds this delivery (names are deduplicated)
        except gexc.GoogleAPIError as exc:
            raise QueueUnavailableError(type(exc).__name__) from exc


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
