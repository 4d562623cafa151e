"""JWKS keys: kept for a TTL, an unknown `kid` refetched at most once per interval, and a
token checked before the database is asked (fake clock, counting fake JWKS source, a pool
that must not be touched; no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from controlroom import errors, settings
from controlroom.adapters import tokens
from controlroom.dev import devkeys
from controlroom.usecases import members
from realtime.api import build_api

COMPANY = uuid.uuid4()
TTL, INTERVAL = 600, 60


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Jwks:
    """The identity provider's JWKS endpoint: counts fetches, can rotate keys or fail."""

    def __init__(self, *published: devkeys.DevKeys) -> None:
        self.published = list(published)
        self.fetches = 0
        self.down = False

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise jwt.PyJWKClientConnectionError("identity provider unreachable")
        return {"keys": [k.public_jwk() for k in self.published]}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> devkeys.DevKeys:
    return devkeys.DevKeys.create(Path(tmp_path_factory.mktemp("idp")))


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> devkeys.DevKeys:
    return devkeys.DevKeys.create(Path(tmp_path_factory.mktemp("idp-next")))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_for(source: Jwks, clock: Clock) -> tokens.TokenVerifier:
    keyset = tokens.KeySet(source, ttl=TTL, refetch_interval=INTERVAL, clock=clock)
    return tokens.TokenVerifier(issuer=devkeys.ISSUER, audience=devkeys.AUDIENCE, keys=keyset)


def unknown_kid(keys: devkeys.DevKeys, n: int) -> str:
    token = keys.token("mallory", COMPANY, "admin")
    payload = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(payload, keys.private_key, algorithm="RS256", headers={"kid": f"made-up-{n}"})


def refused(verifier: tokens.TokenVerifier, token: str) -> str:
    with pytest.raises(errors.AuthError) as caught:
        verifier.verify(token)
    return str(caught.value)


def test_keys_are_kept_for_the_ttl_then_refetched(keys: devkeys.DevKeys, clock: Clock) -> None:
    source = Jwks(keys)
    verifier = verifier_for(source, clock)
    token = keys.token("alice", COMPANY, "operator")
    for _ in range(50):
        assert verifier.verify(token).subject == "alice"
    assert source.fetches == 1
    clock.now += TTL - 1
    verifier.verify(token)
    assert source.fetches == 1
    clock.now += 1
    verifier.verify(token)
    assert source.fetches == 2


def test_a_flood_of_unknown_kids_fetches_once_per_interval_and_valid_tokens_are_served(
    keys: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    verifier = verifier_for(source, clock)
    good = keys.token("alice", COMPANY, "operator")
    verifier.verify(good)
    clock.now += INTERVAL  # the first unknown kid may refetch once
    for n in range(500):
        assert refused(verifier, unknown_kid(keys, n)) == "unknown signing key"
        if n % 50 == 0:
            assert verifier.verify(good).subject == "alice"
    assert source.fetches == 2
    clock.now += INTERVAL - 1
    refused(verifier, unknown_kid(keys, 1000))
    assert source.fetches == 2
    clock.now += 1
    for n in range(100):
        refused(verifier, unknown_kid(keys, 2000 + n))
    assert source.fetches == 3


def test_a_new_signing_key_is_picked_up_by_its_first_token(
    keys: devkeys.DevKeys, rotated: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    verifier = verifier_for(source, clock)
    verifier.verify(keys.token("alice", COMPANY, "operator"))
    source.published.append(rotated)  # the provider rotates: both keys published
    clock.now += INTERVAL
    assert verifier.verify(rotated.token("bob", COMPANY, "viewer")).subject == "bob"
    assert source.fetches == 2


def test_a_token_without_a_kid_is_refused_without_a_fetch(
    keys: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    verifier = verifier_for(source, clock)
    payload = jwt.decode(keys.token("a", COMPANY, "viewer"), options={"verify_signature": False})
    no_kid = jwt.encode(payload, keys.private_pem, algorithm="RS256")
    assert refused(verifier, no_kid) == "unknown signing key"
    assert source.fetches == 0


def test_an_outage_keeps_the_keys_held_and_retries_once_per_interval(
    keys: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    verifier = verifier_for(source, clock)
    token = keys.token("alice", COMPANY, "operator")
    verifier.verify(token)
    source.down = True
    clock.now += TTL
    for _ in range(20):
        assert verifier.verify(token).subject == "alice"  # stale keys keep serving
    assert source.fetches == 2
    clock.now += INTERVAL
    verifier.verify(token)
    assert source.fetches == 3
    source.down = False
    clock.now += INTERVAL
    verifier.verify(token)
    assert source.fetches == 4
    clock.now += TTL - 1
    verifier.verify(token)
    assert source.fetches == 4  # a good fetch restarts the TTL


def test_no_keys_at_all_is_said_and_not_retried_in_a_loop(
    keys: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    source.down = True
    verifier = verifier_for(source, clock)
    token = keys.token("alice", COMPANY, "operator")
    for _ in range(10):
        assert refused(verifier, token) == "identity provider keys unavailable"
    assert source.fetches == 1
    source.down = False
    clock.now += INTERVAL
    assert verifier.verify(token).subject == "alice"


def test_the_pem_mode_fetches_nothing(keys: devkeys.DevKeys) -> None:
    verifier = tokens.TokenVerifier(
        issuer=devkeys.ISSUER, audience=devkeys.AUDIENCE, public_key_pem=keys.public_pem()
    )
    assert verifier.verify(keys.token("alice", COMPANY, "viewer")).subject == "alice"
    # one key, no kid to look up: the signature alone decides
    assert verifier.verify(unknown_kid(keys, 0)).subject == "mallory"


def test_the_ttl_and_interval_are_settings() -> None:
    base = {"JWT_ISSUER": "i", "JWT_AUDIENCE": "a", "JWT_JWKS_URL": "https://idp/jwks.json"}
    defaults = settings.AuthSettings.from_env(base)
    assert (defaults.jwks_ttl_seconds, defaults.jwks_refetch_seconds) == (600, 60)
    tuned = settings.AuthSettings.from_env(
        {**base, "JWT_JWKS_TTL_SECONDS": "120", "JWT_JWKS_REFETCH_SECONDS": "10"}
    )
    assert (tuned.jwks_ttl_seconds, tuned.jwks_refetch_seconds) == (120, 10)
    with pytest.raises(errors.SettingsError, match="JWT_JWKS_REFETCH_SECONDS"):
        settings.AuthSettings.from_env({**base, "JWT_JWKS_REFETCH_SECONDS": "0"})


# --- the token before the database ----------------------------------------------------------
class UntouchablePool:
    """A pool that records being asked; the refused requests below must never ask it."""

    def __init__(self) -> None:
        self.asked = 0

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        self.asked += 1
        raise psycopg.OperationalError("the pool was asked for a connection")
        yield  # pragma: no cover


async def _get(app: Any, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if body else {}


def test_a_bad_token_is_refused_401_before_the_pool_is_asked(
    keys: devkeys.DevKeys, rotated: devkeys.DevKeys, clock: Clock
) -> None:
    source = Jwks(keys)
    pool = UntouchablePool()
    api = build_api(pool, verifier_for(source, clock), None, "logos", [])  # type: ignore[arg-type]
    forged = keys.token("alice", COMPANY, "admin")
    head, _, _ = forged.rpartition(".")
    attempts = {
        "no token": None,
        "unknown kid": unknown_kid(keys, 0),
        "another key's kid": rotated.token("alice", COMPANY, "admin"),
        "forged signature": head + "." + "A" * 342,
        "garbage": "not.a.jwt",
    }
    for path in ("/api/me", "/api/events", "/api/members", "/api/audit"):
        for name, token in attempts.items():
            status, body = asyncio.run(_get(api, path, token))
            assert status == 401, (path, name, status, body)
    assert pool.asked == 0
    assert source.fetches == 1  # every unknown kid above shared one fetch


def test_a_good_token_is_what_reaches_the_pool(keys: devkeys.DevKeys, clock: Clock) -> None:
    pool = UntouchablePool()
    api = build_api(pool, verifier_for(Jwks(keys), clock), None, "logos", [])  # type: ignore[arg-type]
    status, _ = asyncio.run(_get(api, "/api/me", keys.token("alice", COMPANY, "admin")))
    assert status == 503 and pool.asked == 1  # asked once, for the membership lookup


def test_authenticate_enters_the_database_only_for_a_good_token(
    keys: devkeys.DevKeys, clock: Clock
) -> None:
    """The relay's connect and resume come through the same authenticate."""
    pool = UntouchablePool()
    verifier = verifier_for(Jwks(keys), clock)
    with pytest.raises(errors.AuthError):
        asyncio.run(members.authenticate(verifier, pool.connection, unknown_kid(keys, 0)))
    assert pool.asked == 0
