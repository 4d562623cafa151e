"""ASGI middleware of the REST API and the dashboard: the body limit, the security headers,
which browser origins may talk to the service, and the per-IP rate limits."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlroom import edge
from controlroom.adapters.ratelimit import Decision, Limiter, Limits, client_ip
from controlroom.errors import RateLimitedError
from realtime.schemas import error_response

MAX_BODY_BYTES = 64 * 1024

log = logging.getLogger("realtime.api")


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, whether the client declares the
    length or streams the body chunked (which no Content-Length check would catch)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            413, "too_large", f"request bodies are at most {self.max_bytes} bytes"
        )
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if any(not v.isdigit() or int(v) > self.max_bytes for v in lengths):
            await too_large(scope, receive, send)
            return
        received, tripped, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _BodyTooLargeError()
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if tripped:  # whatever the app made of the aborted read, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await too_large(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except _BodyTooLargeError:
            if not started:
                await too_large(scope, receive, send)


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(
    host: str | None, storage_origin: str | None, image_origin: str | None = None
) -> str:
    """The dashboard's policy: its own files only, no framing, no plugins, no inline script.

    The socket's ws(s) URL is named for the request's own host (older browsers do not count
    it as 'self'); logos are shown and uploaded through pre-signed links to the storage origin;
    creators' avatars and previews are shown from Twitch's image origin (images only).
    """
    storage = f" {storage_origin}" if storage_origin else ""
    images = f" {image_origin}" if image_origin and image_origin != storage_origin else ""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    return (
        "default-src 'self'; "
        f"connect-src 'self'{sockets}{storage}; "
        f"img-src 'self' data:{storage}{images}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


class SecurityHeaders:
    """Adds the CSP, nosniff and no-referrer to every HTTP answer (API and dashboard)."""

    def __init__(
        self, app: ASGIApp, storage_origin: str | None = None, image_origin: str | None = None
    ) -> None:
        self.app = app
        self.storage_origin = storage_origin
        self.image_origin = image_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        policy = content_security_policy(host, self.storage_origin, self.image_origin)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_headers)


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def origin_check(extra: Sequence[str]) -> Any:
    """Socket.IO's origin check: the service's own origin and `extra`; a client that sends no
    Origin (a server, a script) is not a browser page and is not checked."""
    allowed = frozenset(extra)

    def allow(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None or origin in allowed:
            return True
        host = environ.get("HTTP_HOST")
        return bool(host) and urlsplit(origin).netloc == host and origin.startswith("http")

    return allow


def scope_client_ip(scope: Mapping[str, Any], trusted_hops: int) -> str:
    """The client's address for an ASGI scope: the peer's, or from X-Forwarded-For behind
    `trusted_hops` proxies (controlroom.adapters.ratelimit.client_ip)."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    forwarded = [
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-forwarded-for"
    ]
    return client_ip(peer, forwarded, trusted_hops)


def too_many(decision: Decision) -> JSONResponse:
    """The 429 answer from the one table (logged as `request refused`, like the routes'):
    the standard error body and Retry-After in whole seconds."""
    found = edge.answer(RateLimitedError(decision.retry_after), log)
    response = error_response(found.status, found.code, found.detail)
    for name, value in found.headers:
        response.headers[name] = value
    return response


class RateLimit:
    """Per-IP token buckets by path, before anything reads the request: sign-in (`/auth/`,
    `/connect`) and the REST API (`/api/`, before its token is looked at). Everything else
    (the dashboard's files, the probes, the JWKS) passes."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    def _limiter(self, path: str) -> Limiter | None:
        if path.startswith(("/auth/", "/connect")) or path == "/auth":
            return self.limits.auth_ip
        if path.startswith("/api/"):
            return self.limits.api_ip
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._limiter(scope["path"]) if scope["type"] == "http" else None
        if limiter is not None:
            decision = await limiter.check(scope_client_ip(scope, self.limits.trusted_proxy_hops))
            if not decision.allowed:
                await too_many(decision)(scope, receive, send)
                return
        await self.app(scope, receive, send)
