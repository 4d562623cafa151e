"""Each stand-in answers its official client, exactly as the cloud service would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from google.api_core import exceptions as gexc
from google.cloud import firestore, tasks_v2

from controlroom.adapters import cloudtasks, s3
from controlroom.dev.stack import Endpoints, local
from tests.integration.listener import Recorder


def test_postgres_is_the_embedded_server_on_loopback(app_conn: Any) -> None:
    row = app_conn.execute(
        "SELECT current_setting('listen_addresses') AS listen, current_user AS who, "
        "current_setting('server_version_num')::int AS version"
    ).fetchone()
    assert row["listen"] == "127.0.0.1"
    assert row["who"] == "controlroom_app"
    assert row["version"] >= 150000


def test_redis_pub_sub(endpoints: Endpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe("company:test")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    assert client.publish("company:test", b"hello") == 1
    message = pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == b"hello"
    pubsub.close()
    client.close()


@pytest.fixture
def task_target() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def test_cloud_tasks_emulator_delivers_http_tasks(
    endpoints: Endpoints, task_target: Recorder
) -> None:
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    queue = cloudtasks.queue_path(local.PROJECT, local.LOCATION, local.QUEUE)
    assert client.get_queue(name=queue).name == queue
    port = task_target.server.server_address[1]
    body = json.dumps({"hello": "persist"}).encode()
    task = client.create_task(
        parent=queue,
        task=tasks_v2.Task(
            name=f"{queue}/tasks/t-{uuid.uuid4().hex}",
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=f"http://127.0.0.1:{port}/persist",
                headers={"Content-Type": "application/json"},
                body=body,
            ),
        ),
    )
    assert task.name.startswith(queue)
    deadline = time.monotonic() + 10
    while not task_target.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task_target.received, "the emulator never delivered the task"
    path, headers, received = task_target.received[0]
    assert path == "/persist"
    assert received == body
    assert headers["x-cloudtasks-queuename"].endswith(local.QUEUE)
    assert headers["x-cloudtasks-taskretrycount"] == "0"


def test_firestore_emulator(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", endpoints.firestore_emulator_host)
    client = firestore.Client(project=local.PROJECT)
    doc = client.collection("deliveries").document(f"msg-{uuid.uuid4()}")
    doc.create({"state": "received", "attempts": 1})
    with pytest.raises(gexc.Conflict):
        doc.create({"state": "received"})  # a precondition the ledger relies on
    doc.update({"state": "enqueued", "attempts": firestore.Increment(1)})
    snapshot = doc.get()
    assert snapshot.exists
    assert snapshot.to_dict() == {"state": "enqueued", "attempts": 2}
    assert not client.collection("deliveries").document("missing").get().exists


def test_s3_buckets_and_lifecycle(endpoints: Endpoints) -> None:
    client = s3.client(endpoints.s3_endpoint_url, credentials=("local", "local"))
    names = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert {local.ARCHIVE_BUCKET, local.BRANDING_BUCKET} <= names
    rules = client.get_bucket_lifecycle_configuration(Bucket=local.ARCHIVE_BUCKET)["Rules"]
    by_id = {r["ID"]: r for r in rules}
    # Parquet stays where Athena reads it; the NDJSON copy may go to Glacier
    for rule, cold in (("parquet-tiering", "GLACIER_IR"), ("ndjson-tiering", "GLACIER")):
        transitions = {t["StorageClass"]: t["Days"] for t in by_id[rule]["Transitions"]}
        assert transitions == {"STANDARD_IA": 30, cold: 90}
    assert by_id["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    key = "events/parquet/company_id=x/date=2026-01-01/probe.txt"
    client.put_object(
        Bucket=local.ARCHIVE_BUCKET, Key=key, Body=b"archived", ChecksumAlgorithm="SHA256"
    )
    head = client.head_object(Bucket=local.ARCHIVE_BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == 8
    assert head.get("ChecksumSHA256")


def test_tasks_queued_in_the_emulator_survive_its_restart(
    local_stack: local.LocalStack, endpoints: Endpoints
) -> None:
    # Cloud Tasks keeps a task until it succeeds; the stand-in must not lose queued tasks
    # when it is restarted (make chaos restarts it under load).
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    queue = cloudtasks.queue_path(local.PROJECT, local.LOCATION, local.QUEUE)
    name = f"{queue}/tasks/later-{uuid.uuid4().hex}"
    client.create_task(
        parent=queue,
        task=tasks_v2.Task(
            name=name,
            schedule_time=datetime.now(UTC) + timedelta(hours=1),  # stays queued meanwhile
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST, url="http://127.0.0.1:9/", body=b"{}"
            ),
        ),
    )
    local_stack.tasks.stop()
    local_stack.tasks.start()
    client = cloudtasks.client(endpoints.tasks_emulator_host)
    names = [t.name for t in client.list_tasks(parent=queue)]
    assert name in names  # (the emulator has no DeleteTask; it waits out the session)


def test_the_twitch_stand_in_takes_a_client_secret_that_begins_with_a_dash(
    tmp_path: Any,
) -> None:
    """Generated secrets are URL-safe base64, so one in 64 begins with "-"; the stand-in must
    still start and accept it (CI met one: argparse took it for an option)."""
    import urllib.parse
    import urllib.request

    from controlroom.dev.stack.process import free_port
    from controlroom.dev.stack.twitch import TwitchStandIn

    stand_in = TwitchStandIn(tmp_path, free_port(), "-dash-first-secret")
    stand_in.start()
    try:
        form = urllib.parse.urlencode(
            {
                "client_id": stand_in.client_id,
                "client_secret": "-dash-first-secret",
                "grant_type": "client_credentials",
            }
        ).encode()
        with urllib.request.urlopen(
            f"{stand_in.url}/oauth2/token", data=form, timeout=10
        ) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["access_token"]
    finally:
        stand_in.stop()
