"""Helix Get Streams: 100 ids a request, and Twitch's rate-limit headers honored.

The unit tier opens no sockets: Helix's one request primitive is pointed at the Twitch
stand-in's own request logic (controlroom/dev/twitchstub.py) in process, with a fake clock
whose sleeps move time forward.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import pytest

from controlroom.adapters.helix import Helix, HelixConfig
from controlroom.dev.twitchstub import TwitchStub
from controlroom.errors import RetryLaterError
from controlroom.settings import Secret

CLIENT, SECRET = "client-1", "secret-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class InProcessTwitch:
    """The stand-in's handlers for the token and Get Streams, without HTTP."""

    def __init__(self, clock: Clock) -> None:
        self.stub = TwitchStub(clients={CLIENT: SECRET}, clock=clock)
        self.requests: list[dict[str, list[str]]] = []  # each Get Streams query

    def exchange(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], Any]:
        parts = urllib.parse.urlsplit(url)
        if parts.path.endswith("/oauth2/token"):
            form = {k: v[0] for k, v in urllib.parse.parse_qs((data or b"").decode()).items()}
            status, body = self.stub.exchange(form)
            return status, {}, body
        assert (method, parts.path) == ("GET", "/helix/streams")
        token = self.stub.token(headers["Authorization"])
        if token is None or headers.get("Client-Id") != token.client_id:
            return 401, {}, {"status": 401}
        allowed, limits = self.stub.take_point(token.client_id)
        lowered = {k.lower(): v for k, v in limits.items()}
        if not allowed:
            return 429, lowered, {"status": 429}
        query = urllib.parse.parse_qs(parts.query)
        self.requests.append(query)
        status, body = self.stub.get_streams(query)
        return status, lowered, body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def twitch(clock: Clock) -> InProcessTwitch:
    return InProcessTwitch(clock)


@pytest.fixture
def helix(twitch: InProcessTwitch, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Helix:
    client = Helix(
        HelixConfig(
            CLIENT, Secret(SECRET), "http://twitch.test/helix", "http://twitch.test/oauth2/token"
        ),
        sleep=clock.sleep,
        clock=clock,
    )
    monkeypatch.setattr(client, "_exchange", twitch.exchange)
    return client


def test_250_ids_take_three_requests_of_at_most_100(helix: Helix, twitch: InProcessTwitch) -> None:
    ids = [str(1000 + i) for i in range(250)]
    for user_id, viewers in (("1000", 10), ("1150", 1500), ("1249", 7)):
        twitch.stub.set_stream({"user_id": user_id, "viewers": viewers})

    found = helix.streams([*ids, "1000"])  # a repeated id is asked for once

    assert [len(q["user_id"]) for q in twitch.requests] == [100, 100, 50]
    assert all(q["first"] == ["100"] for q in twitch.requests)
    assert sorted(u for q in twitch.requests for u in q["user_id"]) == sorted(ids)
    assert {s["user_id"]: s["viewer_count"] for s in found} == {
        "1000": 10,
        "1150": 1500,
        "1249": 7,
    }
    assert all(s["type"] == "live" for s in found)


def test_an_empty_bucket_waits_for_its_reset(
    helix: Helix, twitch: InProcessTwitch, clock: Clock
) -> None:
    twitch.stub.rate_limit, twitch.stub.rate_window = 1, 5.0
    reset = int(clock.now + 5.0 + 0.999)

    helix.streams([str(i) for i in range(1, 201)])

    # the first answer said 0 remaining: the second request waited until the reset
    assert len(twitch.requests) == 2
    assert twitch.stub.stream_refusals == 0
    assert clock.slept == [pytest.approx(reset - 1_800_000_000.0)]


def test_a_429_with_a_near_reset_is_retried_after_it(
    helix: Helix, twitch: InProcessTwitch, clock: Clock
) -> None:
    twitch.stub.rate_limit, twitch.stub.rate_window = 1, 3.0
    twitch.stub.take_point(CLIENT)  # another process of ours emptied the bucket

    helix.streams(["1", "2"])

    assert len(twitch.requests) == 1
    assert len(clock.slept) == 1


def test_a_far_reset_is_left_to_the_next_run(
    helix: Helix, twitch: InProcessTwitch, clock: Clock
) -> None:
    twitch.stub.rate_limit, twitch.stub.rate_window = 1, 60.0

    with pytest.raises(RetryLaterError):
        helix.streams([str(i) for i in range(1, 151)])
    assert len(twitch.requests) == 1
    assert clock.slept == []

    twitch.stub.take_point(CLIENT)
    clock.now += 61  # a minute later, the next run is served again
    assert helix.streams(["1"]) == []
