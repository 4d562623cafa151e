"""Handing persist tasks to Cloud Tasks (or its emulator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
