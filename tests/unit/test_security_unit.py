"""The security review's pure parts: token attacks on a PEM-configured verifier, the API's
body limit (declared or streamed), the send-queue setting, and how the relay finds a
websocket's transport to abort."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI, Request

from controlroom import errors, settings
from controlroom.adapters import tokens
from controlroom.dev import devkeys
from realtime.middleware import (
    MAX_BODY_BYTES,
    BodyLimit,
    content_security_policy,
    origin_check,
)
from realtime.transport import aborter as _aborter

COMPANY = uuid.uuid4()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> devkeys.DevKeys:
    return devkeys.DevKeys.create(Path(tmp_path_factory.mktemp("idp")))


@pytest.fixture(scope="module")
def pem_verifier(keys: devkeys.DevKeys) -> tokens.TokenVerifier:
    return tokens.TokenVerifier(
        issuer=devkeys.ISSUER, audience=devkeys.AUDIENCE, public_key_pem=keys.public_pem()
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "alice",
        "company_id": str(COMPANY),
        "role": "admin",
        "iss": devkeys.ISSUER,
        "aud": devkeys.AUDIENCE,
        "nbf": now - 5,
        "exp": now + 600,
    }


def _unsigned(alg: str) -> str:
    return f"{_b64(json.dumps({'alg': alg}).encode())}.{_b64(json.dumps(_claims()).encode())}."


def _hs256(secret: bytes, header: dict[str, Any]) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(_claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


@pytest.mark.parametrize(
    "make",
    [
        # the classic key confusion: a verifier holding a PEM, fed HS256 keyed with that PEM
        pytest.param(lambda k: _hs256(k.public_pem().encode(), {"alg": "HS256"}), id="pem"),
        pytest.param(
            lambda k: _hs256(k.public_pem().strip().encode(), {"alg": "HS256", "kid": k.kid}),
            id="pem-stripped",
        ),
        pytest.param(lambda k: _hs256(b"", {"alg": "HS256"}), id="empty-secret"),
        pytest.param(
            lambda k: _unsigned("none"),
            id="none",
        ),
        pytest.param(
            lambda k: _unsigned("None"),
            id="None",
        ),
        pytest.param(lambda k: jwt.encode(_claims(), k.private_pem, algorithm="PS256"), id="PS256"),
        pytest.param(lambda k: jwt.encode(_claims(), k.private_pem, algorithm="RS384"), id="RS384"),
    ],
)
def test_only_rs256_is_accepted_whatever_the_key_source(
    keys: devkeys.DevKeys, pem_verifier: tokens.TokenVerifier, make: Any
) -> None:
    with pytest.raises(errors.AuthError, match=r"^algorithm not allowed$"):
        pem_verifier.verify(make(keys))


def test_a_signature_moved_onto_other_claims_is_invalid(
    keys: devkeys.DevKeys, pem_verifier: tokens.TokenVerifier
) -> None:
    head, _, signature = keys.token("alice", COMPANY, "viewer").split(".")
    promoted = _b64(json.dumps({**_claims(), "role": "owner"}).encode())
    with pytest.raises(errors.AuthError, match=r"^invalid token$"):
        pem_verifier.verify(f"{head}.{promoted}.{signature}")


def _post(app: Any, chunks: list[bytes], declared: str | None) -> tuple[int, Any]:
    """One POST through an ASGI app, driven in memory (the unit tier opens no sockets)."""
    headers = [(b"content-type", b"application/json")]
    if declared is not None:
        headers.append((b"content-length", declared.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], json.loads(body)


def test_the_body_limit_holds_for_declared_and_streamed_bodies() -> None:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=10_000)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    exact = [b"x" * 1000] * 10
    assert _post(app, exact, "10000") == (200, {"length": 10_000})
    assert _post(app, exact, None) == (200, {"length": 10_000})
    too_large = {"error": "too_large", "detail": "request bodies are at most 10000 bytes"}
    assert _post(app, [b"x" * 10_001], "10001") == (413, too_large)
    assert _post(app, [b"x" * 1000] * 50, None) == (413, too_large)  # streamed, no length
    assert _post(app, [b"{}"], "1e9") == (413, too_large)
    assert MAX_BODY_BYTES == 64 * 1024


def _realtime_env(**extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": "postgresql://x",
        "REDIS_URL": "redis://x",
        "JWT_ISSUER": "i",
        "JWT_AUDIENCE": "a",
        "JWT_PUBLIC_KEY_PEM": "pem",
        "BRANDING_BUCKET": "b",
        **extra,
    }


def test_the_send_queue_limit_has_a_default_and_must_be_positive() -> None:
    assert settings.RealtimeSettings.from_env(_realtime_env()).send_queue_limit == 1000
    tight = settings.RealtimeSettings.from_env(_realtime_env(RELAY_SEND_QUEUE_LIMIT="20"))
    assert tight.send_queue_limit == 20
    for bad in ("0", "-5"):
        with pytest.raises(errors.SettingsError, match=r"^RELAY_SEND_QUEUE_LIMIT must be"):
            settings.RealtimeSettings.from_env(_realtime_env(RELAY_SEND_QUEUE_LIMIT=bad))


class _Socket:
    def __init__(self) -> None:
        self.options: list[tuple[int, int, bytes]] = []

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.options.append((level, option, value))


class _Transport:
    def __init__(self) -> None:
        self.sock = _Socket()
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def abort(self) -> None:
        self.aborted = True


class _Protocol:
    def __init__(self) -> None:
        self.transport = _Transport()

    async def asgi_send(self, message: Any) -> None:
        pass


def test_the_relay_resets_only_a_websocket_transport() -> None:
    protocol = _Protocol()
    websocket = {"asgi.scope": {"type": "websocket"}, "asgi.send": protocol.asgi_send}
    abort = _aborter(websocket)
    assert abort is not None
    abort()
    assert protocol.transport.aborted
    # zero linger: the kernel resets the connection instead of keeping unread bytes
    assert protocol.transport.sock.options == [
        (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ]
    polling = {"asgi.scope": {"type": "http"}, "asgi.send": protocol.asgi_send}
    assert _aborter(polling) is None
    assert _aborter({"asgi.scope": {"type": "websocket"}, "asgi.send": lambda m: None}) is None
    assert _aborter({}) is None


def test_allowed_origins_are_parsed_and_checked() -> None:
    env = {"ALLOWED_ORIGINS": " https://ops.example.com/ , http://127.0.0.1:5173"}
    assert settings._origins("ALLOWED_ORIGINS", env) == (
        "https://ops.example.com",
        "http://127.0.0.1:5173",
    )
    assert settings._origins("ALLOWED_ORIGINS", {}) == ()
    with pytest.raises(errors.SettingsError, match="ALLOWED_ORIGINS"):
        settings._origins("ALLOWED_ORIGINS", {"ALLOWED_ORIGINS": "https://x.example/path"})


def test_the_socket_origin_check_admits_its_own_origin_scripts_and_the_list() -> None:
    allow = origin_check(["https://ops.example.com"])
    own = {"HTTP_HOST": "relay.example:8080"}
    assert allow(None, own)  # no Origin header: a script, not a browser page
    assert allow("http://relay.example:8080", own)
    assert allow("https://relay.example:8080", own)  # behind a TLS-terminating proxy
    assert allow("https://ops.example.com", own)
    assert not allow("http://evil.example", own)
    assert not allow("http://relay.example:8081", own)


def test_the_policy_names_its_socket_and_storage_and_drops_a_strange_host() -> None:
    csp = content_security_policy("relay.example:8080", "http://127.0.0.1:9000")
    assert (
        "connect-src 'self' ws://relay.example:8080 wss://relay.example:8080 http://127.0.0.1:9000"
        in csp
    )
    assert "img-src 'self' data: http://127.0.0.1:9000" in csp
    assert "ws://" not in content_security_policy("a b;script-src *", None)
