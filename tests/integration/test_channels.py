"""Per-company Redis channels: a relay instance receives only the companies its sockets watch.

Relay managers in this process, on the stack's real Redis, count what each receives per
channel; real relay instances show their subscriptions in Redis (PUBSUB NUMSUB) as sockets
come and go; and clients connecting while events are published, again and again, each get
every event past their starting point once, in order.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import socketio

from controlroom import settings
from controlroom.adapters.emitter import CHANNEL, SocketIOPublisher, company_channel
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from realtime.transport import FeedRedisManager
from tests.integration.conftest import services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.relay_client import FeedClient
from tests.integration.test_relay import Producer, agency, token

ROUNDS = 40  # watch, check, unwatch: again and again while events are published
CONNECTS = 30  # real clients connecting under live traffic, one at a time


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "channels") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


@pytest.fixture(scope="module")
def relays(stack: LocalStack) -> tuple[RelayServer, RelayServer]:
    return stack.relays[0], stack.start_relay()


class Instance:
    """A relay instance's Redis manager, in this process, recording what it decodes."""

    def __init__(self, redis_url: str) -> None:
        self.manager = FeedRedisManager(redis_url)
        self.server = socketio.AsyncServer(async_mode="asgi", client_manager=self.manager)
        self.decoded: list[tuple[uuid.UUID, int]] = []
        self.manager.deliver(
            lambda company, _name, data: self.decoded.append((company, data["seq"])),
            frozenset({"event"}),
        )

    def start(self) -> None:
        self.manager.initialize()  # its listener, on the running loop

    def seqs(self, company: uuid.UUID) -> list[int]:
        return [seq for c, seq in self.decoded if c == company]


async def until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def test_an_instance_receives_and_decodes_only_the_companies_it_watches(
    env: dict[str, str],
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    publisher = SocketIOPublisher(env["REDIS_URL"])

    async def run() -> None:
        first, second = Instance(env["REDIS_URL"]), Instance(env["REDIS_URL"])
        for instance in (first, second):
            instance.start()
        first.manager.watch(a)
        second.manager.watch(b)
        assert await first.manager.ready(a)
        assert await second.manager.ready(b)
        for seq in range(1, 51):
            publisher.publish(a, "event", {"seq": seq})
            publisher.publish(b, "event", {"seq": seq})
        assert await until(lambda: len(first.decoded) == 50 and len(second.decoded) == 50)
        assert first.seqs(a) == list(range(1, 51)) and first.seqs(b) == []
        assert second.seqs(b) == list(range(1, 51)) and second.seqs(a) == []
        # what each received from Redis at all, not only what reached its feeds
        assert first.manager.received_for(a) == 50 and first.manager.received_for(b) == 0
        assert second.manager.received_for(b) == 50 and second.manager.received_for(a) == 0
        assert first.manager.received[CHANNEL] == 0  # nothing of theirs on the shared channel

        # the first instance's last socket of A leaves and one of B arrives
        first.manager.unwatch(a)
        first.manager.watch(b)
        assert await first.manager.ready(b)  # UNSUBSCRIBE went first, on the same connection
        for seq in range(51, 61):
            publisher.publish(a, "event", {"seq": seq})
            publisher.publish(b, "event", {"seq": seq})
        assert await until(lambda: len(first.seqs(b)) == 10 and len(second.seqs(b)) == 60)
        await asyncio.sleep(0.2)  # room for a wrongly received A message to show
        assert first.manager.received_for(a) == 50
        assert first.seqs(b) == list(range(51, 61))
        assert second.manager.received_for(a) == 0

    asyncio.run(run())


def test_no_event_slips_between_subscribing_and_reading_the_head(env: dict[str, str]) -> None:
    """Persist stores, then publishes. The relay subscribes, waits for Redis to confirm, then
    reads the head: every event stored after that head must come through the channel. Here
    the "head" is the last seq the publisher counted as stored, read right after `ready`, and
    the instance watches and unwatches again and again (sometimes twice in a row, so replies
    to an earlier SUBSCRIBE are in flight) while events are published at a steady rate."""
    company = uuid.uuid4()
    publisher = SocketIOPublisher(env["REDIS_URL"])
    stored = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal stored
        while not stop.is_set():
            stored += 1  # committed ...
            publisher.publish(company, "event", {"seq": stored})  # ... then published
            time.sleep(0.001)

    async def run() -> None:
        instance = Instance(env["REDIS_URL"])
        instance.start()
        rng = random.Random(20)
        for _ in range(ROUNDS):
            instance.decoded.clear()
            instance.manager.watch(company)
            if rng.random() < 0.3:  # SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE in flight together
                instance.manager.unwatch(company)
                instance.manager.watch(company)
            assert await instance.manager.ready(company)
            head = stored
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            end = stored
            wanted = set(range(head + 1, end + 1))
            assert await until(lambda w=wanted: w <= set(instance.seqs(company)))
            got = [s for s in instance.seqs(company) if s > head]
            assert got == sorted(set(got))  # each once, in order
            assert got[: end - head] == list(range(head + 1, end + 1))
            instance.manager.unwatch(company)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        asyncio.run(run())
    finally:
        stop.set()
        thread.join(5)


def numsub(client: redis.Redis, company: uuid.UUID) -> int:
    ((_, count),) = client.pubsub_numsub(company_channel(CHANNEL, company))
    return int(count)


def test_subscriptions_follow_connects_and_disconnects(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
) -> None:
    a, _ = agency(cfg, "channels-a", ["7100"])
    b, _ = agency(cfg, "channels-b", ["7200"])
    watch = redis.Redis.from_url(env["REDIS_URL"])
    made: list[FeedClient] = []

    def connect(relay: RelayServer) -> FeedClient:
        c = FeedClient(relay.url)
        made.append(c)
        assert c.connect({"token": token(stack, a, "channels-a")})
        c.wait_live()
        return c

    try:
        assert numsub(watch, a) == 0
        first = connect(relays[0])
        assert numsub(watch, a) == 1  # subscribed before `live`: connect waited for it
        second = connect(relays[0])
        third = connect(relays[1])
        assert numsub(watch, a) == 2  # one subscription per instance, not per socket
        assert numsub(watch, b) == 0  # nobody of B is connected anywhere
        third.close()
        assert wait_for(lambda: numsub(watch, a) == 1)
        first.close()
        assert not wait_for(lambda: numsub(watch, a) != 1, timeout=0.5)  # second is still there
        second.close()
        assert wait_for(lambda: numsub(watch, a) == 0)
    finally:
        for c in made:
            c.close()


def test_clients_connecting_under_live_traffic_get_each_event_once(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
) -> None:
    """Each client is the only socket of its company on its instance, so every connect is a
    fresh subscription racing the producer; it must get every event after the head it was
    given (or after its `last_seq`), each once, in order."""
    company, _ = agency(cfg, "channels-race", ["7300"])
    producer = Producer(cfg, env["REDIS_URL"], company)
    producer.store(20)
    producer.keep_going(rate=100)
    rng = random.Random(7)
    watch = redis.Redis.from_url(env["REDIS_URL"])
    try:
        for i in range(CONNECTS):
            c = FeedClient(relays[i % 2].url)
            auth: dict[str, Any] = {"token": token(stack, company, "channels-race")}
            after = None
            if rng.random() < 0.5:
                after = max(0, producer.last - rng.randint(0, 30))
                auth["last_seq"] = after
            try:
                assert c.connect(auth)
                live = c.wait_live()
                target = producer.last + 20
                assert wait_for(lambda c=c, t=target: bool(c.seqs()) and c.seqs()[-1] >= t)
                seqs = c.seqs()
                # from its last_seq, or from the head its instance had (events held during
                # its replay come before `live`, the rest after it)
                start = after if after is not None else seqs[0] - 1
                assert start <= live["last_seq"]
                assert seqs == list(range(start + 1, seqs[-1] + 1)), (i, start, seqs)
            finally:
                c.close()
            # the instance lets go of the company before the next one connects
            assert wait_for(lambda: numsub(watch, company) == 0)
    finally:
        producer.halt()
