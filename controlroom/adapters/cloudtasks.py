"""Cloud Tasks clients: the real service, or the local emulator when one is configured."""

from __future__ import annotations

import contextlib

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2


def client(emulator_host: str | None = None) -> tasks_v2.CloudTasksClient:
    """A Cloud Tasks client; with `emulator_host` it speaks plain gRPC to the emulator."""
    if not emulator_host:
        return tasks_v2.CloudTasksClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(emulator_host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def queue_path(project: str, location: str, queue: str) -> str:
    return tasks_v2.CloudTasksClient.queue_path(project, location, queue)


def ensure_queue(tasks: tasks_v2.CloudTasksClient, project: str, location: str, queue: str) -> str:
    """Create the queue if it does not exist (the emulator's queues die with it)."""
    name = queue_path(project, location, queue)
    with contextlib.suppress(gexc.AlreadyExists):
        tasks.create_queue(
            parent=f"projects/{project}/locations/{location}", queue=tasks_v2.Queue(name=name)
        )
    return name
