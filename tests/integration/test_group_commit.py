"""Group commit in persist: concurrent deliveries for one company share a transaction and a
commit, and every promise of one delivery per transaction still holds (stored once, seq
gap-free in commit order, answered only once committed, published once in seq order, one
bad delivery failing alone, nothing answered 2xx lost when the connection drops)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import tuple_row

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.errors import StoreUnavailableError
from controlroom.usecases import incidents, ingest
from tests.integration.conftest import services_stack, stack_env
from tests.integration.listener import Listener, wait_for
from tests.integration.test_ingestion import stored, watch

ROUNDS = 10  # each race test repeats this many times, on a fresh company each time


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "group") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


def task(env: dict[str, str], broadcaster: str, kind: str = "channel.cheer") -> tuple[str, bytes]:
    """A persist task as the webhook enqueues it: (message id, body)."""
    creator = twitchsim.Broadcaster(broadcaster, f"creator_{broadcaster}")
    d = twitchsim.sign_delivery(twitchsim.notification_body(kind, creator), env["EVENTSUB_SECRET"])
    delivery = eventsub.verify_delivery(
        d.headers, d.body, [env["EVENTSUB_SECRET"].encode()], datetime.now(UTC)
    )
    return d.message_id, PersistTask.from_delivery(delivery, datetime.now(UTC)).encode()


def is_stored(cfg: settings.DatabaseSettings, company: uuid.UUID, message_id: str) -> bool:
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        row = conn.execute(
            "SELECT count(*) AS n FROM events WHERE twitch_message_id = %s", (message_id,)
        ).fetchone()
    return bool(row and row["n"] == 1)


def post(url: str, body: bytes) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def assert_once_in_order(
    cfg: settings.DatabaseSettings, company: uuid.UUID, message_ids: set[str]
) -> None:
    rows = stored(cfg, company)
    assert sorted(r["twitch_message_id"] for r in rows) == sorted(message_ids)
    assert [r["seq"] for r in rows] == list(range(1, len(message_ids) + 1))
    # seq in commit order: a later seq never committed before an earlier one
    stamps = [r["stored_at"] for r in rows]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sixteen_concurrent_deliveries_over_http_are_stored_once_and_answered_after_commit(
    round_: int, stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    broadcaster = str(7_100_000 + round_)
    company = watch(cfg, f"Burst {round_}", [broadcaster])
    tasks = [task(env, broadcaster) for _ in range(16)]
    # four of them redelivered inside the same burst (Twitch or Cloud Tasks retrying)
    sends = tasks + tasks[:4]
    assert stack.endpoints is not None and stack.endpoints.persist_url
    url = stack.endpoints.persist_url
    seen_after_answer: dict[str, bool] = {}

    def deliver(message_id: str, body: bytes) -> int:
        status = post(url, body)
        if status == 204:
            # read from another connection the moment the answer arrives: committed already
            seen_after_answer[message_id] = is_stored(cfg, company, message_id)
        return status

    barrier = threading.Barrier(len(sends))

    def go(pair: tuple[str, bytes]) -> int:
        barrier.wait()
        return deliver(*pair)

    with concurrent.futures.ThreadPoolExecutor(len(sends)) as pool:
        statuses = list(pool.map(go, sends))
    assert statuses == [204] * len(sends)
    assert seen_after_answer == {m: True for m, _ in tasks}
    assert_once_in_order(cfg, company, {m for m, _ in tasks})

    # the same sixteen again, concurrently: a second group, nothing new stored
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda p: deliver(*p), tasks)) == [204] * 16
    assert_once_in_order(cfg, company, {m for m, _ in tasks})


# --- in-process: the group committer itself, on the real database ------------------------
class _Recorder:
    """Publishes nowhere; records (company, name, data) in order (a fake of our own port)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, Any]] = []

    def publish(self, company_id: uuid.UUID | str, name: str, data: Any) -> None:
        with self.lock:
            self.calls.append((str(company_id), name, data))


def _items(env: dict[str, str], conn: psycopg.Connection[Any], broadcaster: str) -> Any:
    """A task's routed items for one company, as ingest builds them."""
    message_id, raw = task(env, broadcaster)
    t = PersistTask.decode(raw)
    (event,) = ingest._normalize(t)
    ((company, creator),) = (
        conn.cursor(row_factory=tuple_row)
        .execute("SELECT company_id, creator_id FROM route_broadcaster(%s)", (broadcaster,))
        .fetchall()
    )
    return (
        message_id,
        company,
        ingest._Item(creator, event, ingest._new_event(event, creator, message_id, t)),
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_deliveries_are_grouped_and_published_once_in_seq_order(
    round_: int, env: dict[str, str], cfg: settings.DatabaseSettings, stack: LocalStack
) -> None:
    broadcaster = str(7_150_000 + round_)
    company = watch(cfg, f"Order {round_}", [broadcaster])
    tasks = [
        task(env, broadcaster, "channel.follow" if i % 3 else "channel.cheer") for i in range(160)
    ]
    # every eighth task delivered twice, the second time somewhere else in the stream
    sends = tasks + tasks[::8]
    group = ingest.GroupCommit()
    pool = db.Pool(cfg, max_idle=16)
    recorder = _Recorder()
    sizes: list[int] = []
    store = ingest._store_items

    def counting(conn: Any, company: Any, items: Any) -> Any:
        sizes.append(len(items))
        return store(conn, company, items)

    def one(pair: tuple[str, bytes]) -> ingest.Outcome:
        with pool.connection() as conn:
            return ingest.ingest(pair[1], conn, recorder, None, group)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "_store_items", counting)
        with concurrent.futures.ThreadPoolExecutor(16) as threads:
            outcomes = list(threads.map(one, sends))
    pool.close()
    assert sum(o.stored for o in outcomes) == 160
    assert sum(o.duplicates for o in outcomes) == len(sends) - 160
    assert max(sizes) > 1  # they did share transactions
    assert_once_in_order(cfg, company, {m for m, _ in tasks})
    published = [data["seq"] for _, name, data in recorder.calls if name == "event"]
    assert published == list(range(1, 161))  # each once, in seq order


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_poisoned_delivery_fails_alone_and_the_rest_of_its_group_is_stored(
    round_: int,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    stack: LocalStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broadcaster = str(7_200_000 + round_)
    company = watch(cfg, f"Poison {round_}", [broadcaster])
    group = ingest.GroupCommit()
    recorder = _Recorder()
    with db.connect(cfg, autocommit=True) as conn:
        members = [_items(env, conn, broadcaster) for _ in range(17)]
    # the poison: its creator is gone by the time it is stored (deleted after routing), so
    # the foreign key refuses its row, and with it the whole group's INSERT
    mid, _, item = members[9]
    gone = uuid.uuid4()
    members[9] = (
        mid,
        company,
        ingest._Item(gone, item.event, dataclasses.replace(item.new, creator_id=gone)),
    )
    results: dict[str, Any] = {}

    def store(member: tuple[str, uuid.UUID, Any]) -> None:
        message_id, comp, item = member
        with db.connect(cfg, autocommit=True) as own:
            try:
                results[message_id] = group.store(own, comp, [item], recorder, message_id)
            except Exception as exc:  # noqa: BLE001 - recorded for the asserts
                results[message_id] = exc

    threads = [threading.Thread(target=store, args=(m,)) for m in members]
    with caplog.at_level(logging.WARNING):
        # hold the company's counter row, so that the first delivery's leader waits and the
        # other sixteen queue up behind it: they then form one group
        with db.connect(cfg) as holder, db.tenant_transaction(holder, company):
            holder.execute(
                "INSERT INTO event_sequences (company_id) VALUES (%s) ON CONFLICT (company_id) "
                "DO UPDATE SET last_seq = event_sequences.last_seq",
                (company,),
            )
            threads[0].start()
            assert wait_for(lambda: company in group._companies)
            for t in threads[1:]:
                t.start()
            assert wait_for(lambda: len(group._companies[company].pending) == 16)
        # the holder committed: the queue drains
        for t in threads:
            t.join(60)
            assert not t.is_alive()
    assert "group commit failed: storing its deliveries one by one" in caplog.text
    poisoned = results.pop(mid)
    assert isinstance(poisoned, psycopg.errors.ForeignKeyViolation)
    assert all(isinstance(r, list) and r[0].result.created for r in results.values()), results
    assert_once_in_order(cfg, company, set(results))
    published = [data["seq"] for _, name, data in recorder.calls if name == "event"]
    assert published == list(range(1, 17))


@pytest.mark.parametrize("round_", range(3))
def test_connections_killed_mid_group_lose_nothing_that_was_answered(
    round_: int,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    stack: LocalStack,
) -> None:
    broadcaster = str(7_300_000 + round_)
    company = watch(cfg, f"Killed {round_}", [broadcaster])
    tasks = [task(env, broadcaster) for _ in range(400)]
    group = ingest.GroupCommit()
    pool = db.Pool(cfg, max_idle=16)
    recorder = _Recorder()
    answered: list[str] = []
    failed: list[tuple[str, bytes]] = []
    errors: set[str] = set()
    lock = threading.Lock()
    cursor = iter(tasks)
    done = threading.Event()

    def worker() -> None:
        while True:
            with lock:
                pair = next(cursor, None)
            if pair is None:
                return
            try:
                with pool.connection() as conn:
                    ingest.ingest(pair[1], conn, recorder, None, group)
            except Exception as exc:  # noqa: BLE001 - each kind is asserted below
                with lock:
                    failed.append(pair)
                    errors.add(type(exc).__name__)
                continue
            with lock:
                answered.append(pair[0])

    assert stack.endpoints is not None
    admin = stack.endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"

    def killer() -> None:
        # drop the runtime role's connections again and again, wherever they are
        with psycopg.connect(admin, autocommit=True) as conn:
            while not done.is_set():
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = 'controlroom_app' AND pid <> pg_backend_pid() "
                    "AND state <> 'idle'"
                )
                time.sleep(0.03)

    kill = threading.Thread(target=killer)
    kill.start()
    workers = [threading.Thread(target=worker) for _ in range(16)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
        assert not t.is_alive()
    done.set()
    kill.join(10)
    assert failed, "the killer never hit a delivery: the test proved nothing"
    # answered 503 (persist's answer to StoreUnavailableError), so Cloud Tasks retries
    assert errors == {StoreUnavailableError.__name__}
    for message_id in answered:
        assert is_stored(cfg, company, message_id), message_id
    # Cloud Tasks retries whatever was not answered 2xx
    with db.connect(cfg, autocommit=True) as conn:
        for _message_id, body in failed:
            ingest.ingest(body, conn, recorder, None, group)
    pool.close()
    assert_once_in_order(cfg, company, {m for m, _ in tasks})


@pytest.mark.parametrize("round_", range(3))
def test_groups_reach_dashboards_once_each_in_seq_order_through_redis(
    round_: int, env: dict[str, str], cfg: settings.DatabaseSettings, stack: LocalStack
) -> None:
    # the real publisher: a group's leader publishes the whole group in one pipelined
    # round trip (publish_many), on the company's channel, with publish's very messages
    broadcaster = str(7_170_000 + round_)
    company = watch(cfg, f"Dashboards {round_}", [broadcaster])
    tasks = [task(env, broadcaster) for _ in range(80)]
    group = ingest.GroupCommit()
    pool = db.Pool(cfg, max_idle=16)
    publisher = SocketIOPublisher(env["REDIS_URL"])
    listener = Listener(env["REDIS_URL"])
    listener.start()
    try:
        with listener.client(str(company)) as seen:

            def one(pair: tuple[str, bytes]) -> ingest.Outcome:
                with pool.connection() as conn:
                    return ingest.ingest(pair[1], conn, publisher, None, group)

            with concurrent.futures.ThreadPoolExecutor(16) as threads:
                outcomes = list(threads.map(one, tasks + tasks[:8]))
            assert wait_for(lambda: len([e for e in seen if e[0] == "event"]) >= 80)
            time.sleep(0.3)  # anything published twice would arrive by now
            received = [data for name, data in seen if name == "event"]
    finally:
        listener.stop()
        pool.close()
    assert sum(o.stored for o in outcomes) == 80
    assert [data["seq"] for data in received] == list(range(1, 81))
    assert_once_in_order(cfg, company, {m for m, _ in tasks})


# --- detection over a group: a hype train's gift bombs -----------------------------------------
def gift_task(env: dict[str, str], broadcaster: str, gifts: int) -> tuple[str, bytes]:
    """A persist task for a gift of `gifts` subs by a named gifter."""
    creator = twitchsim.Broadcaster(broadcaster, f"creator_{broadcaster}")
    body = twitchsim.notification_body("channel.subscription.gift", creator)
    body["event"].update(
        total=gifts, is_anonymous=False, user_id="4242", user_login="gifter", user_name="Gifter"
    )
    d = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
    delivery = eventsub.verify_delivery(
        d.headers, d.body, [env["EVENTSUB_SECRET"].encode()], datetime.now(UTC)
    )
    return d.message_id, PersistTask.from_delivery(delivery, datetime.now(UTC)).encode()


def _bombs_and_incidents(
    cfg: settings.DatabaseSettings, company: uuid.UUID
) -> tuple[dict[uuid.UUID, list[tuple[int, datetime]]], list[dict[str, Any]]]:
    """Each creator's stored gift bombs (seq, occurred_at) in seq order, and the company's
    gift-bomb incidents with the seqs linked to them."""
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        bombs: dict[uuid.UUID, list[tuple[int, datetime]]] = {}
        for row in conn.execute(
            "SELECT seq, creator_id, occurred_at FROM events WHERE type = "
            "'channel.subscription.gift' AND (payload->>'total')::int >= 50 ORDER BY seq"
        ):
            bombs.setdefault(row["creator_id"], []).append((row["seq"], row["occurred_at"]))
        found = conn.execute(
            "SELECT i.creator_id, i.status, i.title, i.details, "
            "array(SELECT seq FROM incident_events ie WHERE ie.incident_id = i.id "
            "ORDER BY seq) AS seqs FROM incidents i WHERE i.rule = 'gift_bomb'"
        ).fetchall()
    return bombs, found


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "one-by-one"])
@pytest.mark.parametrize("round_", range(3))
def test_a_burst_of_gift_bombs_opens_one_incident_per_creator_and_counts_every_bomb(
    round_: int, grouped: bool, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    # the same assertions hold with and without group commit: the group's detection (all
    # of its gift bombs at once) leaves what detection one event at a time leaves
    base = 7_400_000 + round_ * 10 + (0 if grouped else 5)  # no other test watches these
    a, b = str(base), str(base + 1)
    company = watch(cfg, f"Hype {round_} {grouped}", [a, b])
    tasks = [gift_task(env, a if i % 2 else b, 50 if i % 4 else 5) for i in range(48)]
    sends = tasks + tasks[::6]  # some redelivered within the burst
    group = ingest.GroupCommit() if grouped else None
    pool = db.Pool(cfg, max_idle=16)
    recorder = _Recorder()

    def one(pair: tuple[str, bytes]) -> ingest.Outcome:
        with pool.connection() as conn:
            return ingest.ingest(pair[1], conn, recorder, None, group)

    batches: list[int] = []
    detect = incidents.on_gift_bombs

    def counting(conn: Any, company: Any, gifts: Any, config: Any) -> Any:
        batches.append(len(gifts))
        return detect(conn, company, gifts, config)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(incidents, "on_gift_bombs", counting)
        with concurrent.futures.ThreadPoolExecutor(16) as threads:
            outcomes = list(threads.map(one, sends))
    assert sum(batches) == 36  # each fresh bomb seen by detection once
    assert (max(batches) > 1) is grouped  # a group's bombs at once; alone, one at a time
    bombs, found = _bombs_and_incidents(cfg, company)
    assert sorted(len(seqs) for seqs in bombs.values()) == [12, 24]  # three of every four
    assert len(found) == 2 and {f["creator_id"] for f in found} == set(bombs)
    for incident in found:
        mine = bombs[incident["creator_id"]]
        assert incident["status"] == "open"
        assert incident["title"] == "Gifter gifted 50 subs"
        assert incident["seqs"] == [seq for seq, _ in mine]  # every bomb linked, no other gift
        assert incident["details"]["occurrences"] == len(mine)
        assert incident["details"]["last_seen_at"] == mine[-1][1].isoformat()  # the last seq's
    transitions = [c.transition for o in outcomes for _, c in o.incidents]
    assert transitions.count("opened") == 2
    assert set(transitions) <= {"opened", "updated"}

    # the whole burst redelivered: nothing is stored, linked or counted again
    with concurrent.futures.ThreadPoolExecutor(16) as threads:
        again = list(threads.map(one, tasks))
    pool.close()
    assert sum(o.stored for o in again) == 0 and not any(o.incidents for o in again)
    assert _bombs_and_incidents(cfg, company) == (bombs, found)
