"""The relay on the real stack, two instances sharing Redis, with real Socket.IO clients."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core.events import compact
from controlroom.dev import devkeys, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from tests.integration.conftest import new_company, services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.relay_client import FeedClient
from tests.integration.tenant_data import sample_event


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "relay") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


@pytest.fixture(scope="module")
def relays(stack: LocalStack) -> tuple[RelayServer, RelayServer]:
    second = stack.start_relay()
    return stack.relays[0], second


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


def token(stack: LocalStack, company: uuid.UUID, name: str, **kw: Any) -> str:
    return stack.keys.token(f"user-{name}", company, "viewer", **kw)


@pytest.fixture
def clients() -> Iterator[list[FeedClient]]:
    made: list[FeedClient] = []
    yield made
    for c in made:
        c.close()


def client(clients: list[FeedClient], relay: RelayServer) -> FeedClient:
    c = FeedClient(relay.url)
    clients.append(c)
    return c


def test_an_event_reaches_the_company_on_both_instances_and_nobody_else(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    a, _ = agency(cfg, "relay-a", ["6100"])
    b, _ = agency(cfg, "relay-b", ["6200"])
    a1, a2, b1 = client(clients, relays[0]), client(clients, relays[1]), client(clients, relays[0])
    assert a1.connect({"token": token(stack, a, "relay-a")})
    assert a2.connect({"token": token(stack, a, "relay-a")})
    assert b1.connect({"token": token(stack, b, "relay-b")})
    for c in (a1, a2, b1):
        c.wait_live()
    body = twitchsim.notification_body("channel.raid", twitchsim.Broadcaster("6100", "c_6100"))
    assert (
        twitchsim.post(env["WEBHOOK_URL"], twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"]))[0]
        == 204
    )
    assert wait_for(lambda: a1.seqs() == [1] and a2.seqs() == [1])
    assert not wait_for(lambda: len(a1.seqs()) > 1 or len(a2.seqs()) > 1 or b1.seqs(), timeout=1.0)
    assert a1.events[0]["type"] == "channel.raid"
    assert b1.events == [] and b1.states == []


def _forge_hs256(public_pem: str, claims: dict[str, Any]) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(
        public_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_bad_tokens_are_refused_with_a_reason(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
    tmp_path: Path,
) -> None:
    company, _ = agency(cfg, "relay-auth", ["6300"])
    now = int(time.time())
    claims = {
        "sub": "user-relay-auth",
        "company_id": str(company),
        "role": "viewer",
        "iss": devkeys.ISSUER,
        "aud": devkeys.AUDIENCE,
        "nbf": now - 5,
        "exp": now + 600,
    }
    stranger = devkeys.DevKeys.create(tmp_path / "other-idp")
    none_token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    attacks = {
        "wrong key": stranger.token("user-relay-auth", company, "viewer"),
        "alg none": none_token,
        "HS256 with the public key": _forge_hs256(stack.keys.public_pem(), claims),
        "expired": token(stack, company, "relay-auth", ttl=timedelta(seconds=-120)),
        "wrong audience": token(stack, company, "relay-auth", audience="someone-else"),
        "wrong issuer": token(stack, company, "relay-auth", issuer="https://evil.example"),
        "not a member": stack.keys.token("user-nobody", company, "viewer"),
        "garbage": "not.a.token",
        "missing": "",
    }
    for name, bad in attacks.items():
        c = client(clients, relays[0])
        assert not c.connect({"token": bad}), name
        assert c.refused, name
        assert "Traceback" not in c.refused
    reasons = {name: c.refused for name, c in zip(attacks, clients, strict=True)}
    assert reasons["wrong key"] == "unknown signing key"
    assert reasons["alg none"] == "algorithm not allowed"
    assert reasons["HS256 with the public key"] == "algorithm not allowed"
    assert reasons["expired"] == "token expired"
    assert reasons["wrong audience"] == "token not for this service"
    assert reasons["not a member"] == "not a member of this company"


def test_a_removed_member_is_refused(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, _ = agency(cfg, "relay-removed", ["6400"])
    good = token(stack, company, "relay-removed")
    first = client(clients, relays[1])
    assert first.connect({"token": good})
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute("DELETE FROM members")
    again = client(clients, relays[1])
    assert not again.connect({"token": good})
    assert again.refused == "not a member of this company"
    ack = first.call("refresh_token", {"token": good})
    assert ack == {"ok": False, "error": "not a member of this company"}


def test_subscribing_to_another_company_creator_is_refused(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    a, a_creators = agency(cfg, "relay-sub-a", ["6500", "6501"])
    _, b_creators = agency(cfg, "relay-sub-b", ["6502"])
    c = client(clients, relays[0])
    assert c.connect({"token": token(stack, a, "relay-sub-a")})
    c.wait_live()
    assert c.call("subscribe", {"creator_id": str(b_creators["6502"])}) == {
        "ok": False,
        "error": "no such creator",
    }
    assert c.call("subscribe", {"creator_id": "not-a-uuid"}) == {
        "ok": False,
        "error": "no such creator",
    }
    assert c.call("subscribe", {"creator_id": str(a_creators["6501"])}) == {"ok": True}
    for b in ("6500", "6501"):
        body = twitchsim.notification_body("channel.follow", twitchsim.Broadcaster(b, f"c_{b}"))
        twitchsim.post(env["WEBHOOK_URL"], twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"]))
    assert wait_for(lambda: len(c.events) >= 1)
    assert not wait_for(lambda: len(c.events) > 1, timeout=1.5)
    assert c.events[0]["creator_id"] == str(a_creators["6501"])


def test_a_socket_narrowed_at_connect_is_replayed_and_sent_only_its_creators_events(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    a, creators = agency(cfg, "relay-narrow-a", ["6510", "6511"])
    _, others = agency(cfg, "relay-narrow-b", ["6512"])
    chosen = str(creators["6511"])

    def follow(broadcaster: str) -> None:
        body = twitchsim.notification_body(
            "channel.follow", twitchsim.Broadcaster(broadcaster, f"c_{broadcaster}")
        )
        twitchsim.post(env["WEBHOOK_URL"], twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"]))

    everything = client(clients, relays[0])
    assert everything.connect({"token": token(stack, a, "relay-narrow-a")})
    everything.wait_live()
    for b in ("6510", "6511", "6510", "6511", "6510"):
        follow(b)
    assert wait_for(lambda: everything.seqs() == [1, 2, 3, 4, 5])

    def chosen_seqs() -> list[int]:
        # the queue dispatches concurrently, as Cloud Tasks does, so which seqs the chosen
        # creator's follows got is read from what was stored, not from the posting order
        return [e["seq"] for e in everything.events if e["creator_id"] == chosen]

    mine = chosen_seqs()
    assert len(mine) == 2

    # named at connect, the filter holds for the replay the connection starts (from seq 0)
    narrow = client(clients, relays[1])
    assert narrow.connect(
        {"token": token(stack, a, "relay-narrow-a"), "creators": [chosen], "last_seq": 0}
    )
    live = narrow.wait_live()
    assert narrow.seqs() == mine
    # the cursor passed the events it left out: resuming from here skips and repeats nothing
    assert live["last_seq"] == 5
    # and live: another creator's event never arrives, the chosen one's does
    follow("6510")
    follow("6511")
    assert wait_for(lambda: everything.seqs()[-2:] == [6, 7])
    mine = chosen_seqs()
    assert len(mine) == 3 and mine[2] in (6, 7)
    assert wait_for(lambda: narrow.seqs() == mine)
    assert all(e["creator_id"] == chosen for e in narrow.events)
    # a cut narrowed socket resumes from the last seq it saw, through the same filter
    again = client(clients, relays[0])
    assert again.connect(
        {"token": token(stack, a, "relay-narrow-a"), "creators": [chosen], "last_seq": mine[1]}
    )
    again.wait_live()
    assert again.seqs() == [mine[2]]

    refused = client(clients, relays[0])
    assert not refused.connect(
        {"token": token(stack, a, "relay-narrow-a"), "creators": [str(others["6512"])]}
    )
    assert refused.refused == "no such creator"
    malformed = client(clients, relays[0])
    assert not malformed.connect({"token": token(stack, a, "relay-narrow-a"), "creators": chosen})
    assert malformed.refused == "creators must be a list of 1 to 50 creator ids"


class Producer:
    """Stores events for a company and publishes them, as persist does, from a thread."""

    def __init__(self, cfg: settings.DatabaseSettings, redis_url: str, company: uuid.UUID) -> None:
        self.cfg, self.company = cfg, company
        self.publisher = SocketIOPublisher(redis_url)
        self.conn = db.connect(cfg, autocommit=True)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.last = 0  # the last seq stored by keep_going

    def store(self, count: int, publish: bool = True) -> int:
        events = [sample_event(f"p-{uuid.uuid4()}", "1", None) for _ in range(count)]
        last = 0
        for event in events:
            with db.tenant_transaction(self.conn, self.company):
                (result,) = eventstore.append(self.conn, self.company, [event])
            last = result.seq
            if publish:
                row = {
                    "seq": result.seq,
                    "type": event.type,
                    "version": event.version,
                    "topic": event.topic,
                    "creator_id": None,
                    "broadcaster_user_id": event.broadcaster_user_id,
                    "occurred_at": event.occurred_at,
                    **event.summary,
                }
                self.publisher.publish(self.company, "event", compact(row))
        return last

    def keep_going(self, pause: float = 0.01, rate: float | None = None) -> None:
        """Store one event at a time until halted: a pause after each, or `rate` a second."""

        def run() -> None:
            due = time.monotonic()
            while not self.stop.is_set():
                self.last = self.store(1)
                if rate is None:
                    time.sleep(pause)
                else:
                    due += 1 / rate
                    time.sleep(max(0.0, due - time.monotonic()))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(10)
        self.conn.close()


def test_resume_replays_exactly_what_was_missed_while_events_keep_coming(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, _ = agency(cfg, "relay-resume", [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    first = client(clients, relays[0])
    assert first.connect({"token": token(stack, company, "relay-resume")})
    first.wait_live()
    producer.store(5)
    assert wait_for(lambda: first.seqs() == [1, 2, 3, 4, 5])
    first.close()
    last_seq = first.seqs()[-1]
    producer.store(1000)  # missed while away
    producer.keep_going()  # and more keep arriving during the replay
    try:
        again = client(clients, relays[1])
        assert again.connect({"token": token(stack, company, "relay-resume"), "last_seq": last_seq})
        again.wait_live()
        assert wait_for(lambda: len(again.seqs()) >= 1100, timeout=60)
    finally:
        producer.halt()
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        final = conn.execute("SELECT max(seq) AS m FROM events").fetchone()["m"]
    assert wait_for(lambda: again.seqs()[-1:] == [final], timeout=15)
    assert again.seqs() == list(range(last_seq + 1, final + 1))


def test_a_lost_publish_is_filled_from_postgres(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, _ = agency(cfg, "relay-gap", [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    c = client(clients, relays[0])
    assert c.connect({"token": token(stack, company, "relay-gap")})
    c.wait_live()
    try:
        producer.store(1)
        producer.store(2, publish=False)  # persist stored them but Redis never got them
        producer.store(1)  # seq 4 arrives: the relay sees the gap and fetches 2 and 3
        assert wait_for(lambda: c.seqs() == [1, 2, 3, 4], timeout=10)
        producer.store(1, publish=False)  # and with no later event, the reconciler finds it
        assert wait_for(lambda: c.seqs() == [1, 2, 3, 4, 5], timeout=10)
    finally:
        producer.halt()


def test_resync_when_history_is_gone_or_the_epoch_changed(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, _ = agency(cfg, "relay-resync", [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    producer.store(10, publish=False)
    producer.halt()
    assert stack.endpoints is not None
    admin = stack.endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
    with psycopg.connect(admin, autocommit=True) as su:  # as the archive's prune would
        su.execute("DELETE FROM events WHERE company_id = %s AND seq <= 5", (company,))
    pruned = client(clients, relays[0])
    assert pruned.connect({"token": token(stack, company, "relay-resync"), "last_seq": 2})
    assert wait_for(lambda: any(n == "resync" for n, _ in pruned.control))
    assert pruned.events == []  # never a partial recovery
    assert pruned.wait_live()["last_seq"] == 10
    fine = client(clients, relays[0])
    assert fine.connect({"token": token(stack, company, "relay-resync"), "last_seq": 5})
    fine.wait_live()
    assert fine.seqs() == [6, 7, 8, 9, 10]
    other_epoch = client(clients, relays[1])
    auth = {
        "token": token(stack, company, "relay-resync"),
        "last_seq": 7,
        "epoch": str(uuid.uuid4()),
    }
    assert other_epoch.connect(auth)
    assert wait_for(lambda: any(n == "resync" for n, _ in other_epoch.control))
    assert other_epoch.events == []


def test_snapshot_and_token_expiry_and_refresh(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, creators = agency(cfg, "relay-expiry", ["6600", "6601"])
    short = token(stack, company, "relay-expiry", ttl=timedelta(seconds=3))
    expiring = client(clients, relays[0])
    assert expiring.connect({"token": short, "snapshot": True})
    assert wait_for(lambda: len(expiring.states) == 2)
    assert {s["creator_id"] for s in expiring.states} == {str(c) for c in creators.values()}
    refreshed = client(clients, relays[0])
    assert refreshed.connect({"token": short})
    ack = refreshed.call("refresh_token", {"token": token(stack, company, "relay-expiry")})
    assert ack["ok"] is True
    other, _ = agency(cfg, "relay-expiry-other", [])
    assert refreshed.call(
        "refresh_token", {"token": token(stack, other, "relay-expiry-other")}
    ) == {"ok": False, "error": "token is for someone else"}
    assert wait_for(lambda: not expiring.client.connected, timeout=45)
    assert ("session_expired", {}) in expiring.control
    assert refreshed.client.connected  # it outlived the token it connected with


def test_token_and_watch_commands(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from controlroom.dev import cli

    company, _ = agency(cfg, "relay-cli", ["6700"])
    for key in ("JWT_DEV_PRIVATE_KEY", "RELAY_URL"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("DEMO_COMPANY_ID", str(company))
    assert cli.main(["token", "--user", "user-relay-cli", "--role", "viewer"]) == 0
    issued = capsys.readouterr().out.strip()
    assert stack.keys and jwt.get_unverified_header(issued)["alg"] == "RS256"
    assert cli.main(["token", "--user", "x", "--company", "nope"]) == 2
    producer = Producer(cfg, env["REDIS_URL"], company)
    producer.store(3)
    producer.halt()
    assert (
        cli.main(
            ["watch", "--user", "user-relay-cli", "--last-seq", "0", "--snapshot", "--seconds", "2"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert sum(1 for line in lines if line.startswith("events")) == 3
    assert any(line.startswith("creator_state") for line in lines)
    assert any(line.startswith("live") for line in lines)


def test_a_second_resume_during_a_replay_is_refused_and_nothing_interleaves(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    relays: tuple[RelayServer, RelayServer],
    clients: list[FeedClient],
) -> None:
    company, _ = agency(cfg, "relay-double-resume", [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    try:
        # enough history that the first replay is still running when the second resume
        # arrives, even on a loaded machine (2,000 once finished first in CI)
        last = producer.store(20_000, publish=False)
    finally:
        producer.halt()
    feed = client(clients, relays[0])
    auth = {"token": token(stack, company, "relay-double-resume"), "last_seq": last}
    assert feed.connect(auth)
    feed.wait_live()
    answers: list[Any] = []
    for _ in range(2):  # back to back, without waiting for the first answer
        feed.client.emit("resume", {"last_seq": 0}, callback=answers.append)
    assert wait_for(lambda: len(answers) == 2, timeout=15)
    assert {"ok": True} in answers
    assert {"ok": False, "error": "a replay is running; resume after live"} in answers
    assert wait_for(lambda: len(feed.control) >= 2 and feed.control[-1][0] == "live", timeout=30)
    assert feed.seqs() == list(range(1, last + 1))  # one replay, in order, each event once
