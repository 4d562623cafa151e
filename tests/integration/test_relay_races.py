"""Races between connect, resume, replay and live on the relay, interleaved on purpose.

Hundreds of real Socket.IO clients connect or resume in waves, at random `last_seq` values
and on both relay instances, some of them dropping their connection in the middle of a
replay and coming back from the last event they got, while a producer stores and publishes
events at a steady rate. Each socket must receive exactly the events after its `last_seq`,
each once, in order. Sockets stay for a bounded number of live events, so the test is
bounded in time and in the clients' own CPU.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from controlroom import settings
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from tests.integration.conftest import services_stack, stack_env
from tests.integration.test_relay import Producer, agency, token

WAVES = 15
PER_WAVE = 20  # 300 sockets in all
WAVE_GAP_SECONDS = 1.0
RATE = 100  # events stored and published a second while the waves run
HISTORY = 1_500  # stored before the waves start, so replays span several pages
REPLAY_PAGE = 100
LIVE_EVENTS = 25  # how far past `live` a socket stays before it leaves
WAIT_SECONDS = 30  # the most any one step of a socket may take


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "relay-races") as running:
        yield running


@pytest.fixture(scope="module")
def relays(stack: LocalStack) -> tuple[RelayServer, RelayServer]:
    """Two instances with small replay pages: a replay spans many round trips to PostgreSQL,
    so there is room for everything else to happen in between."""
    page = {"RELAY_REPLAY_PAGE": str(REPLAY_PAGE)}
    return stack.start_relay(extra_env=page), stack.start_relay(extra_env=page)


@dataclass
class Probe:
    """One socket and everything it received, in the order its handlers ran."""

    url: str
    auth: dict[str, Any]
    seqs: list[int] = field(default_factory=list)
    live: dict[str, Any] | None = None
    resyncs: int = 0
    frames: int = 0

    def __post_init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.changed = asyncio.Event()
        self.client.on("event", lambda e: self._add([e]))
        self.client.on("events", self._add)
        self.client.on("live", self._live)
        self.client.on("resync", self._resync)

    def _add(self, events: list[dict[str, Any]]) -> None:
        self.seqs.extend(e["seq"] for e in events)
        self.frames += 1
        self.changed.set()

    def _live(self, data: dict[str, Any]) -> None:
        self.live = data
        self.changed.set()

    def _resync(self, _data: Any) -> None:
        self.resyncs += 1

    async def connect(self) -> None:
        await self.client.connect(
            self.url, auth=self.auth, transports=["websocket"], wait_timeout=WAIT_SECONDS
        )

    async def until(self, done: Any) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), WAIT_SECONDS)
        except TimeoutError:
            tail = self.seqs[-3:]
            raise AssertionError(
                f"stalled: auth last_seq {self.auth.get('last_seq')}, live {self.live}, "
                f"{len(self.seqs)} events, last {tail}, connected {self.client.connected}"
            ) from None

    async def close(self) -> None:
        await self.client.disconnect()


def contiguous_after(seqs: list[int], last_seq: int) -> bool:
    return seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))


@dataclass
class Tally:
    sockets: int = 0
    left_mid_replay: int = 0
    resumed_in_place: int = 0
    events: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, what: str, probe: Probe, after: int, seqs: list[int] | None = None) -> None:
        got = probe.seqs if seqs is None else seqs
        self.sockets += 1
        self.events += len(got)
        if probe.resyncs or not contiguous_after(got, after):
            shown = got[:6] + (["..."] if len(got) > 6 else [])
            self.failures.append(f"{what} after {after}: resync={probe.resyncs} got {shown}")


async def resume_on_connect(url: str, auth: dict[str, Any], last_seq: int, tally: Tally) -> None:
    probe = Probe(url, {**auth, "last_seq": last_seq})
    await probe.connect()
    await probe.until(lambda: probe.live is not None)
    assert probe.live is not None
    upto = probe.live["last_seq"] + LIVE_EVENTS
    await probe.until(lambda: bool(probe.seqs) and probe.seqs[-1] >= upto)
    await probe.close()
    tally.check("connect", probe, last_seq)


async def leave_mid_replay(url: str, auth: dict[str, Any], last_seq: int, tally: Tally) -> None:
    """Drop the connection at the first replayed page, then come back from what arrived."""
    probe = Probe(url, {**auth, "last_seq": last_seq})
    await probe.connect()
    await probe.until(lambda: probe.frames > 0 or probe.live is not None)
    if probe.live is None:
        tally.left_mid_replay += 1
    await probe.close()
    tally.check("left mid-replay", probe, last_seq)
    await resume_on_connect(url, auth, probe.seqs[-1] if probe.seqs else last_seq, tally)


async def resume_in_place(url: str, auth: dict[str, Any], rng: random.Random, tally: Tally) -> None:
    """A live socket asks for a replay from an earlier seq with `resume`."""
    probe = Probe(url, dict(auth))
    await probe.connect()
    await probe.until(lambda: probe.live is not None and len(probe.seqs) >= 3)
    assert probe.live is not None
    start = probe.live["last_seq"]
    last_seq = rng.randint(max(0, probe.seqs[-1] - 2 * HISTORY // 3), probe.seqs[-1])
    answered: list[tuple[Any, int]] = []
    # the answer is handled in order with the frames: what came before it is the old stream
    await probe.client.emit(
        "resume", {"last_seq": last_seq}, callback=lambda a: answered.append((a, len(probe.seqs)))
    )
    await probe.until(lambda: bool(answered))
    answer, mark = answered[0]
    assert answer == {"ok": True}, answer
    before = probe.seqs[mark - 1]
    await probe.until(lambda: len(probe.seqs) > mark and probe.seqs[-1] >= before + LIVE_EVENTS)
    await probe.close()
    tally.resumed_in_place += 1
    tally.check("live before resume", probe, start, probe.seqs[:mark])
    tally.check("resume", probe, last_seq, probe.seqs[mark:])


async def waves(urls: list[str], auth: dict[str, Any], producer: Producer, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    running: list[asyncio.Task[None]] = []
    for wave in range(WAVES):
        head = producer.last
        for i in range(PER_WAVE):
            url = urls[(wave + i) % len(urls)]
            kind = rng.random()
            if kind < 0.5:
                step = resume_on_connect(url, auth, rng.randint(head - HISTORY, head), tally)
            elif kind < 0.75:
                step = leave_mid_replay(
                    url, auth, rng.randint(head - HISTORY, head - HISTORY // 2), tally
                )
            else:
                step = resume_in_place(url, auth, rng, tally)
            running.append(asyncio.ensure_future(step))
        await asyncio.sleep(WAVE_GAP_SECONDS)
    results = await asyncio.gather(*running, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    tally.failures.extend(errors)
    return tally


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sockets_resuming_in_waves_under_live_traffic_get_each_event_once_in_order(
    stack: LocalStack, relays: tuple[RelayServer, RelayServer], seed: int
) -> None:
    env = stack_env(stack)
    cfg = settings.DatabaseSettings.from_env(env)
    name = f"races-{uuid.uuid4().hex[:6]}"
    company, _ = agency(cfg, name, [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    try:
        producer.last = producer.store(HISTORY)
        producer.keep_going(rate=RATE)
        auth = {"token": token(stack, company, name)}
        tally = asyncio.run(waves([r.url for r in relays], auth, producer, seed))
    finally:
        producer.halt()
    print(  # the figures for the record (pytest -s shows them)
        f"seed {seed}: {tally.sockets} socket streams checked, {tally.events} events, "
        f"{tally.left_mid_replay} left mid-replay, {tally.resumed_in_place} resumed in place, "
        f"head {producer.last}"
    )
    assert not tally.failures, f"{len(tally.failures)} streams wrong, e.g. {tally.failures[:5]}"
    assert tally.sockets >= WAVES * PER_WAVE
    # the interleavings the test is for did happen
    assert tally.left_mid_replay > 0
    assert tally.resumed_in_place > 0
    assert producer.last > HISTORY
