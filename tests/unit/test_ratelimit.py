"""Rate limits without a network: the settings, the client address, token buckets in memory,
failing open, the webhook's unauthenticated path, and the 429 answers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from throttled.exceptions import StoreUnavailableError

from controlroom import edge, errors
from controlroom.adapters import ratelimit
from controlroom.adapters.ratelimit import Decision, Limiter, Limits, SyncLimiter, client_ip
from controlroom.core.roles import Claims
from controlroom.dev.twitchsim import sign_delivery
from controlroom.settings import Rate, RateLimitSettings
from controlroom.usecases import receiver
from realtime import relay
from realtime.middleware import RateLimit
from tests.samples import load
from tests.unit.test_receiver import SECRET, FakeLedger, FakeQueue

# A token back a minute: no bucket refills while a test runs, however slow the machine (a
# refill a second let a loaded CI run's third request through)
SMALL = Rate(limit=1, period_seconds=60, burst=3)


# --- settings ----------------------------------------------------------------------------
def test_defaults_are_generous_and_every_limit_can_be_set_or_switched_off() -> None:
    cfg = RateLimitSettings.from_env({})
    assert cfg == RateLimitSettings()
    assert cfg.api_ip is not None and cfg.api_ip.burst >= 300
    assert cfg.trusted_proxy_hops == 0
    custom = RateLimitSettings.from_env(
        {
            "RATE_LIMIT_API_IP": "5/s burst 10",
            "RATE_LIMIT_AUTH_IP": "off",
            "RATE_LIMIT_WEBHOOK_IP": "120/min",
            "TRUSTED_PROXY_HOPS": "1",
        }
    )
    assert custom.api_ip == Rate(5, 1, 10)
    assert custom.auth_ip is None
    assert custom.webhook_ip == Rate(120, 60, 120)
    assert custom.trusted_proxy_hops == 1
    off = RateLimitSettings.from_env({"RATE_LIMITS": "off"})
    assert off.api_ip is off.api_subject is off.connect_ip is off.webhook_ip is None


@pytest.mark.parametrize(
    "value", ["many", "10/fortnight", "0/s", "10/s burst 0", "30/min", "-1/s", "1/s burst"]
)
def test_a_malformed_or_never_refilling_rate_is_refused_by_name(value: str) -> None:
    with pytest.raises(errors.SettingsError, match="RATE_LIMIT_API_IP"):
        RateLimitSettings.from_env({"RATE_LIMIT_API_IP": value})


def test_negative_proxy_hops_are_refused() -> None:
    with pytest.raises(errors.SettingsError, match="TRUSTED_PROXY_HOPS"):
        RateLimitSettings.from_env({"TRUSTED_PROXY_HOPS": "-1"})


# --- the client's address ------------------------------------------------------------------
def test_the_client_is_the_peer_unless_proxies_are_trusted() -> None:
    spoofed = ["6.6.6.6, 203.0.113.7"]
    assert client_ip("10.0.0.9", spoofed, 0) == "10.0.0.9"  # no proxy: the header is a claim
    assert client_ip("10.0.0.9", spoofed, 1) == "203.0.113.7"  # what our one proxy saw
    assert client_ip("10.0.0.9", ["6.6.6.6", "198.51.100.1, 203.0.113.7"], 2) == "198.51.100.1"
    assert client_ip("10.0.0.9", ["203.0.113.7"], 3) == "203.0.113.7"  # fewer entries: leftmost
    assert client_ip("10.0.0.9", [], 1) == "10.0.0.9"
    assert client_ip(None, [], 0) == "unknown"


# --- buckets ---------------------------------------------------------------------------------
def test_a_bucket_refuses_past_its_burst_with_a_whole_retry_after_per_key() -> None:
    limiter = SyncLimiter("t", SMALL, ratelimit.sync_store(None))
    answers = [limiter.check("a") for _ in range(4)]
    assert answers[:3] == [Decision(True)] * 3
    assert not answers[3].allowed and answers[3].retry_after >= 1
    assert limiter.check("b").allowed  # another key, another bucket
    assert not limiter.peek("a").allowed and limiter.peek("b").allowed


def test_peek_takes_no_token() -> None:
    limiter = SyncLimiter("t", SMALL, ratelimit.sync_store(None))
    for _ in range(10):
        assert limiter.peek("a").allowed
    assert [limiter.check("a").allowed for _ in range(4)] == [True, True, True, False]


def _counting(limiter: SyncLimiter, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    real = limiter._throttle.peek

    def peek(key: str) -> Any:
        asked.append(key)
        return real(key)

    monkeypatch.setattr(limiter._throttle, "peek", peek)
    return asked


def test_a_remembered_peek_spares_the_store_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    limiter = SyncLimiter(
        "t", SMALL, ratelimit.sync_store(None), clock=lambda: now[0], peek_cache_seconds=1.0
    )
    asked = _counting(limiter, monkeypatch)
    assert all(limiter.peek("a").allowed for _ in range(50))
    assert asked == ["t:a"]  # once for fifty deliveries
    now[0] += 1.01
    assert limiter.peek("a").allowed
    assert asked == ["t:a", "t:a"]  # the remembered answer expired: asked again


def test_a_local_failure_forgets_the_remembered_peek_so_a_refusal_is_seen_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    limiter = SyncLimiter(
        "t", SMALL, ratelimit.sync_store(None), clock=lambda: now[0], peek_cache_seconds=1.0
    )
    assert limiter.peek("a").allowed and limiter.peek("b").allowed  # both remembered
    assert [limiter.check("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.peek("a")  # the same instant: a is asked again, and refused
    assert not refused.allowed and refused.retry_after >= 1
    assert limiter.peek("b").allowed


def test_a_bucket_emptied_by_another_instance_is_seen_once_the_memory_expires() -> None:
    now = [100.0]
    store = ratelimit.sync_store(None)  # shared, as Redis is between instances
    here = SyncLimiter("t", SMALL, store, clock=lambda: now[0], peek_cache_seconds=1.0)
    there = SyncLimiter("t", SMALL, store, clock=lambda: now[0], peek_cache_seconds=1.0)
    assert here.peek("a").allowed
    assert [there.check("a").allowed for _ in range(4)] == [True, True, True, False]
    assert here.peek("a").allowed  # remembered: within the window, one more may pass
    now[0] += 1.01
    assert not here.peek("a").allowed


def test_the_remembered_peeks_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "PEEK_CACHE_KEYS", 100)
    now = [100.0]
    limiter = SyncLimiter(
        "t", SMALL, ratelimit.sync_store(None), clock=lambda: now[0], peek_cache_seconds=1.0
    )
    for i in range(1000):
        assert limiter.peek(f"10.0.{i // 256}.{i % 256}").allowed
        now[0] += 0.001
    assert 0 < len(limiter._allowed_until) <= 100


def test_the_webhook_limiter_remembers_peeks_and_the_others_do_not() -> None:
    cfg = RateLimitSettings()
    webhook = ratelimit.webhook_limiter(cfg, None)
    assert webhook is not None
    assert webhook._peek_cache_seconds == ratelimit.PEEK_CACHE_SECONDS > 0
    assert SyncLimiter("t", SMALL, ratelimit.sync_store(None))._peek_cache_seconds == 0


def test_the_async_limiter_behaves_the_same() -> None:
    async def run() -> list[Decision]:
        limiter = Limiter("t", SMALL, ratelimit.async_store(None))
        return [await limiter.check("a") for _ in range(4)] + [await limiter.peek("b")]

    answers = asyncio.run(run())
    assert [a.allowed for a in answers] == [True, True, True, False, True]
    assert answers[3].retry_after >= 1


def test_a_failing_store_lets_requests_through_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    limiter = SyncLimiter("t", SMALL, ratelimit.sync_store(None), clock=lambda: now[0])
    asked = []

    def down(key: str) -> None:
        asked.append(key)
        raise StoreUnavailableError("Store backend is unavailable.")

    monkeypatch.setattr(limiter._throttle, "limit", down)
    monkeypatch.setattr(limiter._throttle, "peek", down)
    with caplog.at_level(logging.WARNING, logger="controlroom.adapters.ratelimit"):
        assert all(limiter.check("a").allowed for _ in range(10))
        assert limiter.peek("a").allowed
    assert asked == ["t:a"]  # then left alone for the pause
    warnings = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(warnings) == 1
    now[0] += ratelimit.PAUSE_SECONDS + 1
    assert limiter.check("a").allowed
    assert asked == ["t:a", "t:a"]  # asked again after the pause


def test_a_failing_async_store_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = Limiter("t", SMALL, ratelimit.async_store(None))

    async def down(key: str) -> None:
        raise ConnectionRefusedError("no redis")

    monkeypatch.setattr(limiter._throttle, "limit", down)
    assert asyncio.run(limiter.check("a")).allowed


# --- the webhook's unauthenticated path ------------------------------------------------------
def _forged() -> tuple[dict[str, str], bytes]:
    d = sign_delivery(load("channel.follow"), "not-the-secret-at-all")
    return d.headers, d.body


def _deliver(limiter: SyncLimiter, client: str, headers: dict[str, str], body: bytes) -> int:
    try:
        receiver.admit(limiter, client)
        return receiver.receive(
            headers,
            body,
            secrets=[SECRET.encode()],
            ledger=FakeLedger(),
            queue=FakeQueue(),
            limiter=limiter,
            client=client,
        ).status
    except errors.ControlRoomError as exc:
        return edge.answer(exc, logging.getLogger("t")).status


def test_forgeries_empty_their_ips_bucket_and_are_then_refused_before_verification() -> None:
    limiter = SyncLimiter("webhook-ip", SMALL, ratelimit.sync_store(None))
    headers, body = _forged()
    assert [_deliver(limiter, "6.6.6.6", headers, body) for _ in range(5)] == [
        403,
        403,
        403,
        429,
        429,
    ]
    genuine = sign_delivery(load("channel.follow"), SECRET)
    # Twitch's address is another bucket: its deliveries go through during the flood
    assert _deliver(limiter, "198.51.100.1", genuine.headers, genuine.body) == 204
    # from the blocked address, a genuine delivery is refused too (no HMAC work is done)
    assert _deliver(limiter, "6.6.6.6", genuine.headers, genuine.body) == 429
    with pytest.raises(errors.RateLimitedError) as refused:
        receiver.admit(limiter, "6.6.6.6")
    assert refused.value.retry_after >= 1


def test_genuine_deliveries_never_take_a_token() -> None:
    limiter = SyncLimiter("webhook-ip", Rate(1, 60, 1), ratelimit.sync_store(None))
    for _ in range(5):
        d = sign_delivery(load("channel.raid"), SECRET)
        assert _deliver(limiter, "198.51.100.1", d.headers, d.body) == 204
    assert limiter.peek("198.51.100.1").allowed


def test_without_a_limiter_the_webhook_is_unchanged() -> None:
    headers, body = _forged()
    receiver.admit(None, "6.6.6.6")
    with pytest.raises(errors.ForgedDeliveryError):
        receiver.receive(
            headers, body, secrets=[SECRET.encode()], ledger=FakeLedger(), queue=FakeQueue()
        )


# --- the answers -------------------------------------------------------------------------------
def test_the_one_table_answers_429_with_retry_after() -> None:
    found = edge.answer(errors.RateLimitedError(7), logging.getLogger("t"))
    assert (found.status, found.code) == (429, "rate_limited")
    assert found.headers == (("Retry-After", "7"),)
    assert errors.RateLimitedError(0).retry_after == 1  # never 0: whole seconds, at least 1
    assert edge.headers_for(errors.NotFoundError("x")) == ()


def test_the_webhook_entrypoint_sends_retry_after() -> None:
    import flask

    from controlroom import entrypoint

    @entrypoint.http(logging.getLogger("t"))
    def handler(_request: flask.Request) -> flask.Response:
        raise errors.RateLimitedError(3)

    app = flask.Flask("t")
    with app.test_request_context("/", method="POST"):
        answer = handler(flask.request)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.get_json() == {"error": "rate_limited"}


class _Client:
    """A synchronous view of an ASGI app through httpx's in-process transport."""

    def __init__(self, limits: Limits) -> None:
        async def ok(_request: object) -> PlainTextResponse:
            return PlainTextResponse("ok")

        routes = [Route(p, ok) for p in ("/api/x", "/auth/refresh", "/connect", "/index.html")]
        self.app = RateLimit(Starlette(routes=routes), limits)

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(call())


def test_the_middleware_limits_sign_in_and_the_api_per_ip_by_path() -> None:
    store = ratelimit.async_store(None)
    client = _Client(
        Limits(auth_ip=Limiter("auth", SMALL, store), api_ip=Limiter("api", Rate(1, 60, 2), store))
    )
    assert [client.get("/api/x").status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get("/api/x")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json() == {"error": "rate_limited", "detail": "too many requests; retry later"}
    # sign-in has its own bucket; the dashboard's files are not limited
    assert client.get("/auth/refresh").status_code == 200
    assert client.get("/connect").status_code == 200
    assert all(client.get("/index.html").status_code == 200 for _ in range(10))


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() -> None:
    store = ratelimit.async_store(None)
    client = _Client(Limits(api_ip=Limiter("api", Rate(1, 60, 1), store), trusted_proxy_hops=1))
    one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    assert client.get("/api/x", headers=one).status_code == 200
    assert client.get("/api/x", headers=one).status_code == 429
    assert client.get("/api/x", headers=two).status_code == 200
    # a spoofed entry to the left of what our proxy saw changes nothing
    spoofed = {"X-Forwarded-For": "9.9.9.9, 203.0.113.1"}
    assert client.get("/api/x", headers=spoofed).status_code == 429


def test_a_refused_socket_is_told_the_code_and_when_to_retry() -> None:
    assert relay.refusal(Decision(False, 4)) == {"code": "rate_limited", "retry_after": 4}


def test_no_limits_means_no_limiting() -> None:
    client = _Client(Limits())
    assert all(client.get("/api/x").status_code == 200 for _ in range(20))


# --- the REST API's per-person bucket sits between the token check and the pool ---------------
class _Pool:
    def __init__(self) -> None:
        self.asked = 0

    def connection(self) -> Any:
        self.asked += 1
        raise _ReachedPoolError()


class _ReachedPoolError(Exception):
    pass


class _Verifier:
    def verify(self, token: object) -> Claims:
        if token != "good":
            raise errors.AuthError("invalid token")
        return Claims(str(token) + "-person", uuid.uuid4(), "viewer", datetime.now(UTC))


def _session_of(limits: Limits, pool: _Pool, token: str) -> Any:
    from starlette.requests import Request

    from realtime import routes

    app = Starlette()
    app.state.pool, app.state.verifier, app.state.limits = pool, _Verifier(), limits
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/me",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "app": app,
    }

    async def first() -> Any:
        return await anext(routes._session(Request(scope)))

    return asyncio.run(first())


def test_a_throttled_person_is_refused_before_a_connection_is_asked_for() -> None:
    pool = _Pool()
    limits = Limits(api_subject=Limiter("api-subject", Rate(1, 60, 1), ratelimit.async_store(None)))
    with pytest.raises(_ReachedPoolError):  # verified, with a token left: on to the pool
        _session_of(limits, pool, "good")
    assert pool.asked == 1
    with pytest.raises(errors.RateLimitedError) as refused:
        _session_of(limits, pool, "good")
    assert refused.value.retry_after >= 1
    assert pool.asked == 1  # the refused request never asked the pool
    with pytest.raises(errors.UnauthorizedError):  # a bad token takes no one's token
        _session_of(limits, pool, "forged")
    assert pool.asked == 1
