"""The persist queue's shards: names, the choice of a shard, and the setting."""

from __future__ import annotations

import collections
import hashlib

import pytest

from controlroom import errors, settings
from controlroom.adapters.taskqueue import shard_of, shard_paths

BASE = {
    "EVENTSUB_SECRET": "s" * 32,
    "GOOGLE_CLOUD_PROJECT": "p",
    "CLOUD_TASKS_LOCATION": "l",
    "CLOUD_TASKS_QUEUE": "cr-prod-persist",
    "PERSIST_URL": "https://example.invalid/persist",
}


def test_one_shard_is_the_queue_itself_and_more_keep_it_first() -> None:
    assert shard_paths("q", 1) == ("q",)
    assert shard_paths("projects/p/locations/l/queues/q", 3) == (
        "projects/p/locations/l/queues/q",
        "projects/p/locations/l/queues/q-1",
        "projects/p/locations/l/queues/q-2",
    )


def test_a_delivery_always_gets_the_same_shard_and_shards_share_the_load() -> None:
    names = [hashlib.sha256(f"message-{i}".encode()).hexdigest()[:40] for i in range(4000)]
    counts = collections.Counter(shard_of(name, 4) for name in names)
    assert set(counts) == {0, 1, 2, 3}
    assert all(850 <= n <= 1150 for n in counts.values()), counts  # 1,000 each, give or take
    assert [shard_of(name, 4) for name in names] == [shard_of(name, 4) for name in names]
    assert {shard_of(name, 1) for name in names} == {0}


def test_the_webhook_reads_its_shards_and_refuses_fewer_than_one() -> None:
    assert settings.WebhookSettings.from_env(BASE).tasks_queue_shards == 1
    four = settings.WebhookSettings.from_env({**BASE, "CLOUD_TASKS_QUEUE_SHARDS": "4"})
    assert four.tasks_queue_shards == 4
    for bad in ("0", "-2", "many"):
        with pytest.raises(errors.SettingsError, match="CLOUD_TASKS_QUEUE_SHARDS"):
            settings.WebhookSettings.from_env({**BASE, "CLOUD_TASKS_QUEUE_SHARDS": bad})
