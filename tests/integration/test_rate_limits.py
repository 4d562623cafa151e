"""Rate limits against the running services and real Valkey: a burst past each limit is
answered 429 with Retry-After (or a refused socket with `rate_limited`), nothing is changed by
a refused request, and after waiting Retry-After the same caller is served again.

A relay and a webhook of this module's own run with small limits and TRUSTED_PROXY_HOPS=1,
so each test plays its clients from X-Forwarded-For addresses nobody else uses (buckets live
in the session's shared Valkey).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import socketio
from google.cloud import firestore

from controlroom import settings
from controlroom.adapters import db, ratelimit
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack, local
from controlroom.dev.stack.functions import FunctionServer, RelayServer
from controlroom.dev.stack.process import free_port
from tests.integration.conftest import new_company
from tests.integration.listener import Recorder, wait_for
from tests.samples import load

LIMITS = {
    "TRUSTED_PROXY_HOPS": "1",
    "RATE_LIMIT_AUTH_IP": "1/s burst 3",
    "RATE_LIMIT_API_IP": "2/s burst 6",
    "RATE_LIMIT_API_SUBJECT": "1/s burst 3",
    "RATE_LIMIT_CONNECT_IP": "1/s burst 2",
    "RATE_LIMIT_RESUME_SUBJECT": "1/s burst 2",
    "RATE_LIMIT_WEBHOOK_IP": "1/s burst 3",
}


def _ip() -> str:
    """An address of its own for one test's client (TEST-NET-3 and 10/8 are never routed)."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@pytest.fixture(scope="module")
def relay(local_stack: LocalStack) -> RelayServer:
    return local_stack.start_relay(extra_env=LIMITS)


@pytest.fixture(scope="module")
def persist_sink() -> Iterator[str]:
    """Where the webhook's tasks go (this module checks the webhook's answers only)."""
    with Recorder() as recorder:
        yield f"{recorder.url}/"


@pytest.fixture(scope="module")
def webhook(local_stack: LocalStack, persist_sink: str) -> FunctionServer:
    env = {**LIMITS, "PERSIST_URL": persist_sink}
    return local_stack.start_function("webhook", instance="webhook-limited", extra_env=env)


@pytest.fixture(scope="module")
def company(db_settings: settings.DatabaseSettings) -> uuid.UUID:
    with db.connect(db_settings) as conn:
        company = new_company(conn, "Throttled")
        with db.tenant_transaction(conn, company):
            for subject in ("rl-admin", "rl-other-admin"):
                row = conn.execute(
                    "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                    (company, subject),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'admin')",
                    (company, row["id"]),
                )
    return company


def _call(
    url: str,
    *,
    ip: str,
    token: str | None = None,
    method: str = "GET",
    body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    sent = {"X-Forwarded-For": ip, **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None:
        data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            text = response.read()
            return response.status, dict(response.headers), _json(text)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), _json(exc.read())


def _json(text: bytes) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _until_refused(call: Any, attempts: int = 20) -> tuple[list[int], dict[str, str], Any]:
    """Call until a 429 (a bucket refills meanwhile, so how many pass is not exact)."""
    statuses: list[int] = []
    for _ in range(attempts):
        status, headers, body = call()
        statuses.append(status)
        if status == 429:
            return statuses, headers, body
    raise AssertionError(f"never refused: {statuses}")


def _retry_after(headers: dict[str, str]) -> int:
    value = {k.lower(): v for k, v in headers.items()}["retry-after"]
    assert value.isdigit() and int(value) >= 1, value
    return int(value)


def _refused_properly(headers: dict[str, str], body: Any) -> int:
    assert body["error"] == "rate_limited", body
    assert "Traceback" not in json.dumps(body)
    return _retry_after(headers)


# --- the REST API and sign-in, per IP ---------------------------------------------------------
def test_an_ips_burst_on_the_api_is_refused_then_served_after_retry_after(
    relay: RelayServer,
) -> None:
    ip = _ip()
    statuses, headers, body = _until_refused(lambda: _call(f"{relay.url}/api/me", ip=ip))
    assert set(statuses[:-1]) == {401}  # refused before the token was even looked at
    wait = _refused_properly(headers, body)
    assert _call(f"{relay.url}/api/me", ip=_ip())[0] == 401  # another address: served
    time.sleep(wait)
    assert _call(f"{relay.url}/api/me", ip=ip)[0] == 401  # served again (no token)


def test_an_ips_burst_on_sign_in_is_refused_then_served_after_retry_after(
    relay: RelayServer,
) -> None:
    ip = _ip()
    statuses, headers, body = _until_refused(lambda: _call(f"{relay.url}/connect", ip=ip))
    served = statuses[0]
    assert served != 429 and set(statuses[:-1]) == {served}
    wait = _refused_properly(headers, body)
    # /auth/* shares the sign-in bucket; the dashboard's files do not
    assert _call(f"{relay.url}/auth/config", ip=ip)[0] == 429
    assert _call(f"{relay.url}/", ip=ip)[0] != 429
    time.sleep(wait)
    assert _call(f"{relay.url}/connect", ip=ip)[0] == served


# --- the REST API, per subject -----------------------------------------------------------------
def test_one_persons_burst_does_not_throttle_another_and_changes_nothing(
    relay: RelayServer,
    local_stack: LocalStack,
    company: uuid.UUID,
    owner_conn: psycopg.Connection[Any],
) -> None:
    subject, other = "rl-admin", "rl-other-admin"
    token = local_stack.keys.token(subject, company, "admin")
    # each request from a fresh address: only the person's own bucket can run dry
    statuses, headers, body = _until_refused(
        lambda: _call(f"{relay.url}/api/members", ip=_ip(), token=token)
    )
    assert set(statuses[:-1]) == {200}
    wait = _refused_properly(headers, body)
    other_token = local_stack.keys.token(other, company, "admin")
    assert _call(f"{relay.url}/api/members", ip=_ip(), token=other_token)[0] == 200
    # a write refused by the limit stores nothing. The bucket refills a token a second, so
    # on a loaded machine one may be back by the time the write arrives (then it is simply
    # served): empty it again right before each try, and expect a refusal within a few
    for _ in range(5):
        _until_refused(lambda: _call(f"{relay.url}/api/members", ip=_ip(), token=token))
        added = {"subject": f"rl-new-{uuid.uuid4().hex[:8]}", "role": "viewer"}
        status, _, _ = _call(
            f"{relay.url}/api/members", ip=_ip(), token=token, method="POST", body=added
        )
        if status == 429:
            break
        assert status == 201  # a token came back in between: the write was allowed
    assert status == 429
    stored = owner_conn.execute(
        "SELECT count(*) AS n FROM users WHERE company_id = %s AND subject = %s",
        (company, added["subject"]),
    ).fetchone()
    assert stored is not None and stored["n"] == 0
    time.sleep(wait)
    assert _call(f"{relay.url}/api/members", ip=_ip(), token=token)[0] == 200


# --- sockets: connect per IP, resume per subject ----------------------------------------------
class _Socket:
    def __init__(self, url: str, ip: str) -> None:
        self.url, self.ip = url, ip
        self.client = socketio.Client(reconnection=False)
        self.refusal: Any = None
        self.lives = 0
        self.client.on("connect_error", self._refused)
        self.client.on("live", self._live)

    def _refused(self, data: Any) -> None:
        self.refusal = data

    def _live(self, _data: Any) -> None:
        self.lives += 1

    def connect(self, token: str) -> bool:
        try:
            self.client.connect(
                self.url,
                auth={"token": token},
                headers={"X-Forwarded-For": self.ip},
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture
def sockets() -> Iterator[list[_Socket]]:
    opened: list[_Socket] = []
    yield opened
    for socket in opened:
        socket.close()


def test_socket_connects_past_an_ips_burst_are_refused_with_retry_after(
    relay: RelayServer, local_stack: LocalStack, company: uuid.UUID, sockets: list[_Socket]
) -> None:
    ip, token = _ip(), local_stack.keys.token("rl-admin", company, "admin")
    refused = None
    for _ in range(10):
        socket = _Socket(relay.url, ip)
        sockets.append(socket)
        if not socket.connect(token):
            refused = socket
            break
    assert refused is not None, "never refused"
    assert wait_for(lambda: refused.refusal is not None, timeout=5)
    data = refused.refusal.get("data") if isinstance(refused.refusal, dict) else None
    assert isinstance(data, dict) and data["code"] == "rate_limited", refused.refusal
    assert isinstance(data["retry_after"], int) and data["retry_after"] >= 1
    other = _Socket(relay.url, _ip())  # another address connects meanwhile
    sockets.append(other)
    assert other.connect(token)
    time.sleep(data["retry_after"])
    again = _Socket(relay.url, ip)
    sockets.append(again)
    assert again.connect(token)


def test_resumes_past_a_persons_burst_are_refused_and_another_person_resumes(
    relay: RelayServer, local_stack: LocalStack, company: uuid.UUID, sockets: list[_Socket]
) -> None:
    mine = _Socket(relay.url, _ip())
    theirs = _Socket(relay.url, _ip())
    sockets.extend([mine, theirs])
    assert mine.connect(local_stack.keys.token("rl-admin", company, "admin"))
    assert theirs.connect(local_stack.keys.token("rl-other-admin", company, "admin"))
    assert wait_for(lambda: mine.lives >= 1 and theirs.lives >= 1, timeout=15)
    answers = []
    for _ in range(10):
        lives = mine.lives
        answer = mine.client.call("resume", {"last_seq": 0}, timeout=10)
        answers.append(answer)
        if not answer["ok"]:
            break
        assert wait_for(lambda lives=lives: mine.lives > lives, timeout=15)  # replay done
    refused = answers[-1]
    assert refused["ok"] is False and refused["code"] == "rate_limited", answers
    assert isinstance(refused["retry_after"], int) and refused["retry_after"] >= 1
    assert theirs.client.call("resume", {"last_seq": 0}, timeout=10)["ok"] is True
    time.sleep(refused["retry_after"])
    assert wait_for(lambda: mine.client.call("resume", {"last_seq": 0}, timeout=10)["ok"], 10)


# --- the webhook's unauthenticated path ---------------------------------------------------------
def _ledger(monkeypatch: pytest.MonkeyPatch, local_stack: LocalStack) -> Any:
    assert local_stack.endpoints is not None
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", local_stack.endpoints.firestore_emulator_host)
    return firestore.Client(project=local.PROJECT).collection("eventsub_deliveries")


def _deliver(url: str, ip: str, delivery: twitchsim.Delivery) -> tuple[int, dict[str, str]]:
    status, headers, _ = _call(
        url, ip=ip, method="POST", data=delivery.body, headers=delivery.headers
    )
    return status, headers


def test_a_forgery_flood_is_blocked_while_twitchs_deliveries_go_through(
    webhook: FunctionServer, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert local_stack.endpoints is not None
    secret = local_stack.endpoints.eventsub_secret
    attacker, twitch = _ip(), _ip()
    ledger = _ledger(monkeypatch, local_stack)

    def forged() -> tuple[int, dict[str, str], Any]:
        delivery = twitchsim.sign_delivery(load("channel.follow"), "an-attackers-guess-at-it")
        status, headers = _deliver(webhook.url, attacker, delivery)
        return status, headers, {"error": "rate_limited"} if status == 429 else None

    statuses, headers, _ = _until_refused(forged)
    assert set(statuses[:-1]) == {403}
    assert _retry_after(headers) >= 1
    # Twitch's deliveries in the middle of the flood, more of them than the bucket holds
    genuine = [twitchsim.sign_delivery(load("channel.raid"), secret) for _ in range(5)]
    assert [_deliver(webhook.url, twitch, d)[0] for d in genuine] == [204] * 5
    assert all(ledger.document(d.message_id).get().exists for d in genuine)
    # from the blocked address even a genuine delivery is refused unread (documented), and
    # nothing is recorded: Twitch would redeliver it. The bucket refills a token a second,
    # so on a slow machine one may be back before the stray arrives (then it is simply
    # accepted): empty it again right before each try, and expect a refusal within a few
    for _ in range(5):
        _until_refused(forged)
        stray = twitchsim.sign_delivery(load("channel.raid"), secret)
        status, refused = _deliver(webhook.url, attacker, stray)
        if status == 429:
            break
        assert status == 204  # a token came back in between: a genuine delivery goes through
    assert status == 429 and _retry_after(refused) >= 1
    assert not ledger.document(stray.message_id).get().exists
    time.sleep(_retry_after(refused))
    assert _deliver(webhook.url, attacker, stray)[0] == 204


def test_with_its_store_down_the_webhook_fails_open_and_says_so(
    local_stack: LocalStack, persist_sink: str
) -> None:
    assert local_stack.endpoints is not None
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = local_stack.start_function(
        "webhook",
        instance="webhook-no-store",
        extra_env={**LIMITS, "REDIS_URL": dead, "PERSIST_URL": persist_sink},
    )
    try:
        ip = _ip()
        for _ in range(8):  # past the burst: nothing can count them, so nothing refuses
            delivery = twitchsim.sign_delivery(load("channel.follow"), "wrong-secret-entirely")
            assert _deliver(server.url, ip, delivery)[0] == 403
        genuine = twitchsim.sign_delivery(
            load("channel.raid"), local_stack.endpoints.eventsub_secret
        )
        assert _deliver(server.url, ip, genuine)[0] == 204
        log = (server.log_dir / f"{server.name}.log").read_text(errors="replace")
        assert "rate limit store unavailable" in log
    finally:
        server.stop()


# --- the adapter itself, on real Valkey and on none ---------------------------------------------
def test_buckets_in_valkey_are_shared_by_every_limiter_of_a_rule(local_stack: LocalStack) -> None:
    assert local_stack.endpoints is not None
    url = local_stack.endpoints.redis_url
    rate = settings.Rate(1, 1, 2)
    key = _ip()
    one = ratelimit.SyncLimiter("shared-rule", rate, ratelimit.sync_store(url))

    async def other_instance() -> None:  # one event loop, as in the service
        two = ratelimit.Limiter("shared-rule", rate, ratelimit.async_store(url))
        assert one.check(key).allowed
        assert (await two.check(key)).allowed
        refused = one.check(key)
        assert not refused.allowed and refused.retry_after >= 1
        assert not (await two.peek(key)).allowed
        await asyncio.sleep(refused.retry_after)
        assert (await two.check(key)).allowed

    asyncio.run(other_instance())


def test_an_unreachable_store_fails_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limiter = ratelimit.Limiter("dead-store", settings.Rate(1, 1, 1), ratelimit.async_store(dead))

    async def burst() -> list[bool]:
        return [(await limiter.check("k")).allowed for _ in range(5)]

    with caplog.at_level(logging.WARNING, logger="controlroom.adapters.ratelimit"):
        assert asyncio.run(burst()) == [True] * 5
    assert any("store unavailable" in r.getMessage() for r in caplog.records)
