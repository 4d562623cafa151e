"""The audience pulse on the real stack: the Twitch stand-in's Get Streams steered, samples
stored per company under RLS, the counts pushed to the right company's dashboards only."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.adapters.helix import Helix, HelixConfig
from controlroom.dev import twitchsim, twitchstub
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.process import free_port
from controlroom.dev.stack.scheduler import SchedulerJob
from controlroom.usecases import pulse
from tests.integration.conftest import new_company, stack_env
from tests.integration.listener import wait_for
from tests.integration.relay_client import FeedClient

# every broadcaster this module's companies watch comes from these 150 ids
POOL = [str(7_100_000 + i) for i in range(150)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # the scheduler's stand-in runs the pulse every 2 s, as `make run` does every minute
    before = os.environ.get("PULSE_INTERVAL_SECONDS")
    os.environ["PULSE_INTERVAL_SECONDS"] = "2"
    stack = LocalStack(Path(tmp_path_factory.mktemp("pulse")), services=True)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if before is None:
            os.environ.pop("PULSE_INTERVAL_SECONDS", None)
        else:
            os.environ["PULSE_INTERVAL_SECONDS"] = before


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


@pytest.fixture(scope="module")
def twitch_url(env: dict[str, str]) -> str:
    return env["HELIX_API_URL"].removesuffix("/helix")


def agency(
    cfg: settings.DatabaseSettings, name: str, broadcasters: list[str]
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        creators = {}
        with db.tenant_transaction(conn, company):
            user = conn.execute(
                "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                (company, f"user-{name}"),
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
                (company, user),
            )
            for b in broadcasters:
                creators[b] = conn.execute(
                    "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (company, b, f"c_{b}", f"C{b}"),
                ).fetchone()["id"]
    return company, creators


def latest(conn: psycopg.Connection[Any], company: uuid.UUID) -> dict[uuid.UUID, tuple[bool, int]]:
    """The newest sample of each creator, read as the runtime role for `company`."""
    with db.tenant_transaction(conn, company):
        rows = conn.execute(
            "SELECT DISTINCT ON (creator_id) creator_id, live, viewers FROM viewer_samples "
            "ORDER BY creator_id, sampled_at DESC"
        ).fetchall()
    return {r["creator_id"]: (r["live"], r["viewers"]) for r in rows}


class ViewersClient(FeedClient):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.viewers: list[dict[str, Any]] = []
        self.client.on("viewers", self.viewers.append)

    def seen(self, creator: uuid.UUID, viewers: int | None) -> bool:
        return any(
            s["creator_id"] == str(creator) and s["viewers"] == viewers
            for m in list(self.viewers)
            for s in m["samples"]
        )


@pytest.fixture
def clients() -> Iterator[list[ViewersClient]]:
    made: list[ViewersClient] = []
    yield made
    for c in made:
        c.close()


def test_samples_per_company_under_rls_and_pushed_to_that_company_only(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    twitch_url: str,
    clients: list[ViewersClient],
) -> None:
    shared, only_a, only_b = POOL[0], POOL[1], POOL[2]
    a, a_creators = agency(cfg, "pulse-a", [shared, only_a])
    b, b_creators = agency(cfg, "pulse-b", [shared, only_b])
    relay = stack.relays[0]
    a_client, b_client = ViewersClient(relay.url), ViewersClient(relay.url)
    clients += [a_client, b_client]
    assert a_client.connect({"token": stack.keys.token("user-pulse-a", a, "viewer")})
    assert b_client.connect({"token": stack.keys.token("user-pulse-b", b, "viewer")})
    a_client.wait_live()
    b_client.wait_live()

    twitchsim.set_stream(twitch_url, shared, 4321)
    twitchsim.set_stream(twitch_url, only_a, 120)
    twitchsim.set_stream(twitch_url, only_b, 0, live=False)
    assert stack.pulse_job is not None
    assert stack.pulse_job.run_once() == 200

    with db.connect(cfg) as conn:
        assert latest(conn, a) == {
            a_creators[shared]: (True, 4321),
            a_creators[only_a]: (True, 120),
        }
        # offline: a sample with 0 viewers, and no count on the creator row
        assert latest(conn, b) == {
            b_creators[shared]: (True, 4321),
            b_creators[only_b]: (False, 0),
        }
        with db.tenant_transaction(conn, b):
            seen = conn.execute("SELECT DISTINCT company_id FROM viewer_samples").fetchall()
            rows = conn.execute("SELECT id, viewers, viewers_at FROM creators").fetchall()
        assert [r["company_id"] for r in seen] == [b]
        counts = {r["id"]: r["viewers"] for r in rows}
        assert counts == {b_creators[shared]: 4321, b_creators[only_b]: None}
        assert all(r["viewers_at"] is not None for r in rows)
        # without a tenant the runtime role reads no samples at all
        assert conn.execute("SELECT count(*) AS n FROM viewer_samples").fetchone()["n"] == 0

    assert wait_for(lambda: a_client.seen(a_creators[shared], 4321), timeout=10)
    assert wait_for(lambda: b_client.seen(b_creators[only_b], None), timeout=10)
    mine_a = {str(c) for c in a_creators.values()}
    mine_b = {str(c) for c in b_creators.values()}
    for message in list(a_client.viewers):
        assert {s["creator_id"] for s in message["samples"]} == mine_a
        datetime.fromisoformat(message["at"])
    for message in list(b_client.viewers):
        assert {s["creator_id"] for s in message["samples"]} == mine_b

    # the scheduler's stand-in keeps sampling without anyone asking: a new count arrives
    twitchsim.set_stream(twitch_url, shared, 5000)
    assert wait_for(lambda: b_client.seen(b_creators[shared], 5000), timeout=15)


class OwnTwitch:
    """A Twitch stand-in of a test's own (in this process), so the stack's scheduled runs
    neither count against it nor see what it is steered to."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = twitchstub.serve(self.port, {"pulse-client": "pulse-secret"})
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.helix = Helix(
            HelixConfig(
                "pulse-client",
                settings.Secret("pulse-secret"),
                f"{self.origin}/helix",
                f"{self.origin}/oauth2/token",
            )
        )

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.origin}/control/streams", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def own_twitch() -> Iterator[OwnTwitch]:
    twitch = OwnTwitch()
    yield twitch
    twitch.close()


@pytest.fixture
def scheduler_paused(stack: LocalStack) -> Iterator[None]:
    """The stack's scheduled runs stopped for a test that steps the clock itself (a run at
    the real time in between would be a sample out of its order)."""
    job = stack.pulse_job
    assert job is not None
    job.stop()
    yield
    stack.pulse_job = SchedulerJob(job.name, job.url, job.interval, job.progress)
    stack.pulse_job.start()


def run_pulse(
    cfg: settings.DatabaseSettings, env: dict[str, str], twitch: OwnTwitch, now: datetime
) -> pulse.PulseReport:
    with db.connect(cfg, autocommit=True) as conn:
        return pulse.run(conn, twitch.helix, SocketIOPublisher(env["REDIS_URL"]), None, now)


def test_150_watched_broadcasters_take_two_get_streams_requests(
    cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    agency(cfg, "pulse-many", POOL)  # overlaps the other companies': 150 distinct in all
    twitchsim.set_stream(own_twitch.origin, POOL[149], 77)

    report = run_pulse(cfg, env, own_twitch, datetime.now(UTC))

    assert report.broadcasters == 150
    assert report.live == 1
    assert report.failed == []
    state = own_twitch.state()
    assert state["requests"] == 2
    assert state["refused"] == 0


@pytest.mark.usefixtures("scheduler_paused")
def test_a_viewer_collapse_opens_one_incident_and_old_samples_go(
    cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    company, creators = agency(cfg, "pulse-drop", [POOL[10]])
    creator = creators[POOL[10]]
    start = datetime.now(UTC).replace(microsecond=0)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers) "
            "VALUES (%s, %s, %s, true, 5)",
            (company, creator, start - timedelta(hours=25)),
        )

    twitchsim.set_stream(own_twitch.origin, POOL[10], 2000)
    first = run_pulse(cfg, env, own_twitch, start)
    twitchsim.set_stream(own_twitch.origin, POOL[10], 300)  # -85% a minute later
    second = run_pulse(cfg, env, own_twitch, start + timedelta(minutes=1))
    third = run_pulse(cfg, env, own_twitch, start + timedelta(minutes=2))  # still low

    assert first.trimmed >= 1
    assert second.incident_changes >= 1
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        incidents = conn.execute(
            "SELECT rule, status FROM incidents WHERE creator_id = %s", (creator,)
        ).fetchall()
        oldest = conn.execute(
            "SELECT min(sampled_at) AS t FROM viewer_samples WHERE creator_id = %s", (creator,)
        ).fetchone()["t"]
    assert [(i["rule"], i["status"]) for i in incidents] == [("viewer_drop", "open")]
    assert third.failed == []
    assert oldest >= start - timedelta(hours=24)


class RecordingDispatcher:
    """A fake of our own port (incidents.Dispatcher): what would have become notify tasks."""

    def __init__(self) -> None:
        self.dispatched: list[tuple[str, list[uuid.UUID]]] = []

    def dispatch(self, company_id: uuid.UUID | str, delivery_ids: Any) -> None:
        self.dispatched.append((str(company_id), list(delivery_ids)))


@pytest.mark.usefixtures("scheduler_paused")
def test_pending_notification_deliveries_are_dispatched_again(
    cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    company, _ = agency(cfg, "pulse-redispatch", [POOL[20]])
    now = datetime.now(UTC)
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        channel = conn.execute(
            "INSERT INTO notification_channels (company_id, kind, name, sealed_url, "
            "wrapped_key, key_id, url_hint) VALUES (%s, 'discord', 'ops', '\\x00', '\\x00', "
            "'k1', 'https://discord.com/…abc') RETURNING id",
            (company,),
        ).fetchone()["id"]
        stuck = conn.execute(
            "INSERT INTO notification_deliveries (company_id, channel_id, transition, "
            "next_attempt_at) VALUES (%s, %s, 'test', %s) RETURNING id",
            (company, channel, now - timedelta(minutes=10)),
        ).fetchone()["id"]
    dispatcher = RecordingDispatcher()

    with db.connect(cfg, autocommit=True) as conn:
        publisher = SocketIOPublisher(env["REDIS_URL"])
        report = pulse.run(conn, own_twitch.helix, publisher, dispatcher, now)

    assert (str(company), [stuck]) in dispatcher.dispatched
    assert report.redispatched >= 1


@pytest.mark.usefixtures("scheduler_paused")
def test_a_company_that_fails_keeps_nothing_and_does_not_stop_the_others(
    cfg: settings.DatabaseSettings,
    env: dict[str, str],
    own_twitch: OwnTwitch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken, broken_creators = agency(cfg, "pulse-broken", [POOL[30]])
    fine, fine_creators = agency(cfg, "pulse-fine", [POOL[30]])
    twitchsim.set_stream(own_twitch.origin, POOL[30], 900)
    real = pulse.incidents.on_viewer_sample

    def failing(conn: psycopg.Connection[Any], company: uuid.UUID, *a: Any, **kw: Any) -> Any:
        if company == broken:
            raise RuntimeError("a detection bug")
        return real(conn, company, *a, **kw)

    monkeypatch.setattr(pulse.incidents, "on_viewer_sample", failing)
    now = datetime.now(UTC) + timedelta(hours=1)  # after every other sample of the module

    report = run_pulse(cfg, env, own_twitch, now)

    assert report.failed == [str(broken)]
    with db.connect(cfg) as conn:
        assert latest(conn, fine)[fine_creators[POOL[30]]] == (True, 900)
        assert broken_creators[POOL[30]] not in latest(conn, broken)  # rolled back whole
