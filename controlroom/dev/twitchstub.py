"""A Twitch stand-in for local runs and tests: OAuth (authorize with a consent page, token,
validate, revoke), Helix users, and EventSub subscriptions that check the broadcaster's grant.

    python -m controlroom.dev.twitchstub --port 58084 --client-id ID --client-secret SECRET

Bound to 127.0.0.1 only; state lives in memory. What it follows from Twitch's documentation:
authorization codes are single use and bound to the client, redirect URI and PKCE challenge
(S256 or plain); `/oauth2/validate` takes `Authorization: OAuth <token>`; Helix takes an app
token and `Client-Id`; creating a subscription whose type needs a scope the broadcaster has not
granted answers 403 "subscription missing proper authorization". Where it simplifies: a new
consent replaces the user's grant with the scopes ticked; a webhook subscription on a loopback
callback is verified (challenge) before the answer, so the answer already says `enabled`; any
login resolves to a deterministic id (the seeded demo creators keep theirs); `POST
/_stub/revoke?user_id=` (or `?login=`) plays a user disconnecting our app: the grant goes,
the subscriptions that needed it are revoked (a `revocation` message each) and
`user.authorization.revoke` is delivered to the callback.

Helix Get Streams (`GET /helix/streams?user_id=..`, at most 100 ids) answers from a table of
live streams that tests and `controlroom simulate` steer: `POST /control/streams` with
`{"user_id": "...", "viewers": 1234, "live": true}` (`"live": false` ends the stream);
`GET /control/streams` shows the table and how many Get Streams requests were served or
refused. Get Streams counts against a bucket per client (`Ratelimit-Limit`,
`Ratelimit-Remaining`, `Ratelimit-Reset` in epoch seconds, 429 when empty), 800 points a
minute as Twitch's default, which `POST /control/ratelimit {"limit": n, "window_seconds": s}`
changes.

Images, as Twitch serves them from its CDN but calm and neutral: Get Users (`?login=` or
`?id=`, at most 100; `?id=` counts against the bucket like Get Streams) answers
`profile_image_url` `<origin>/images/avatars/<login>.svg`, a coloured circle with the login's
initial (the colour derived from the login), and Get Streams `thumbnail_url`
`<origin>/images/previews/live_user_<login>-{width}x{height}.svg`, a dark 16:9 gradient with a
small "preview" glyph at the size asked (bounded). `<origin>` is the stand-in's own
`http://127.0.0.1:<port>`, which the local stack gives the deployables as TWITCH_IMAGE_ORIGIN.
Tests may name a user id's login and replace its image URL (`POST /control/users {"login":
"...", "user_id": "...", "profile_image_url": "..."}`) or a stream's (`"thumbnail_url"` in
`POST /control/streams`), to check that a URL off the image origin is never stored.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from controlroom.core import eventsub, scopes
from controlroom.dev import twitchsim
from controlroom.dev.seed import DEMO_CREATORS

CODE_TTL = 600.0
TOKEN_TTL = 14400
PENDING = "webhook_callback_verification_pending"


def user_id_for(login: str) -> str:
    """A login's id: the demo creators' real sample ids, else a stable number from the name."""
    for twitch_id, known, _display in DEMO_CREATORS:
        if known == login:
            return twitch_id
    return str(100_000_000 + int(hashlib.sha256(login.encode()).hexdigest()[:12], 16) % 10**9)


def user_for(login: str, origin: str = "") -> dict[str, str]:
    display = next((d for _i, k, d in DEMO_CREATORS if k == login), login.capitalize())
    return {
        "id": user_id_for(login),
        "login": login,
        "display_name": display,
        "type": "",
        "broadcaster_type": "affiliate",
        "description": "",
        "profile_image_url": f"{origin}/images/avatars/{login}.svg",
        "offline_image_url": "",
        "created_at": "2020-01-01T00:00:00Z",
    }


# --- neutral placeholder images --------------------------------------------------------------
IMAGE_CACHE = "public, max-age=300"  # Twitch's CDN caches too; a day would outlive a test
_AVATAR = re.compile(r"/images/avatars/([a-z0-9_]{1,25})\.svg")
_PREVIEW = re.compile(
    r"/images/previews/live_user_([a-z0-9_]{1,25})-([0-9]{1,5})x([0-9]{1,5})\.svg"
)
PREVIEW_MAX = (1920, 1080)


def _hue(login: str) -> int:
    return int(hashlib.sha256(login.encode()).hexdigest()[:4], 16) % 360


def avatar_svg(login: str) -> bytes:
    """A circle in a muted colour derived from the login, with its initial in white."""
    initial = html.escape(login[:1].upper() or "?")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300" viewBox="0 0 300 300">'
        f'<circle cx="150" cy="150" r="150" fill="hsl({_hue(login)}, 38%, 34%)"/>'
        '<text x="150" y="150" dy="0.35em" text-anchor="middle" fill="#ffffff" '
        'font-family="system-ui, sans-serif" font-size="140" font-weight="600">'
        f"{initial}</text></svg>"
    ).encode()


def preview_svg(login: str, width: int, height: int) -> bytes:
    """A dark 16:9-ish gradient (the size asked, bounded) with a small "preview" glyph."""
    width = max(16, min(width, PREVIEW_MAX[0]))
    height = max(9, min(height, PREVIEW_MAX[1]))
    hue = _hue(login)
    glyph = max(8, min(width, height) // 6)
    cx, cy = width / 2, height / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({hue}, 22%, 16%)"/>'
        '<stop offset="1" stop-color="hsl(220, 18%, 8%)"/></linearGradient></defs>'
        f'<rect width="{width}" height="{height}" fill="url(#g)"/>'
        '<g fill="none" stroke="#9aa4b2" stroke-opacity="0.55" '
        f'stroke-width="{max(1, glyph // 8)}">'
        f'<rect x="{cx - glyph:.1f}" y="{cy - glyph * 0.62:.1f}" width="{glyph * 2:.1f}" '
        f'height="{glyph * 1.24:.1f}" rx="{glyph / 5:.1f}"/></g>'
        f'<path d="M{cx - glyph / 4:.1f} {cy - glyph / 3:.1f} L{cx + glyph / 3:.1f} {cy:.1f} '
        f'L{cx - glyph / 4:.1f} {cy + glyph / 3:.1f} Z" fill="#9aa4b2" fill-opacity="0.55"/>'
        "</svg>"
    ).encode()


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    login: str
    scopes: list[str]
    challenge: str
    method: str
    expires: float


@dataclass
class _Token:
    client_id: str
    login: str | None  # None: an app access token
    scopes: list[str]
    expires: float


@dataclass
class TwitchStub:
    clients: dict[str, str]  # client id -> secret
    page_size: int = 20
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)
    grants: dict[str, set[str]] = field(default_factory=dict)  # user id -> scopes granted
    logins: dict[str, str] = field(default_factory=dict)  # user id -> login (seen at consent)
    subs: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # subscription id -> its secret
    lock: threading.Lock = field(default_factory=threading.Lock)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id -> live stream
    rate_limit: int = 800  # Get Streams points per window and client (Twitch's default)
    rate_window: float = 60.0
    buckets: dict[str, tuple[float, int]] = field(default_factory=dict)  # client: start, used
    stream_requests: int = 0  # Get Streams requests answered 200
    stream_refusals: int = 0  # ... and refused (429, 400)
    clock: Callable[[], float] = time.time  # the rate-limit window's clock (epoch seconds)
    origin: str = ""  # where the stand-in is reached; its image URLs start with it
    user_images: dict[str, str] = field(default_factory=dict)  # login -> profile_image_url
    user_requests: int = 0  # Get Users requests by id answered 200

    # --- Get Users -----------------------------------------------------------------------
    def user(self, login: str) -> dict[str, str]:
        found = user_for(login, self.origin)
        if login in self.user_images:
            found["profile_image_url"] = self.user_images[login]
        return found

    def login_of(self, user_id: str) -> str:
        known = next((k for i, k, _d in DEMO_CREATORS if i == user_id), None)
        return known or self.logins.get(user_id) or f"user{user_id}"

    def get_users(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        logins, ids = query.get("login", []), query.get("id", [])
        if len(logins) + len(ids) > 100 or any(not i.isdigit() for i in ids):
            return 400, {"error": "Bad Request", "status": 400, "message": "bad ids or logins"}
        if ids:
            self.user_requests += 1
        users = [self.user(x.lower()) for x in logins]
        for user in users:  # a login looked up names its id's streams and images later
            self.logins.setdefault(user["id"], user["login"])
        for user_id in ids:
            user = self.user(self.login_of(user_id))
            users.append({**user, "id": user_id})  # ids of no known login keep theirs
        return 200, {"data": users}

    # --- Get Streams ---------------------------------------------------------------------
    def set_stream(self, change: dict[str, Any]) -> dict[str, Any] | None:
        """Start, update or (live false) end a broadcaster's stream; returns it, or None."""
        user_id = str(change.get("user_id") or "")
        if not user_id.isdigit():
            raise ValueError("user_id must be a Twitch user id (digits)")
        if not change.get("live", True):
            self.streams.pop(user_id, None)
            return None
        viewers = int(change.get("viewers", 0))
        if viewers < 0:
            raise ValueError("viewers must be 0 or more")
        login = str(change.get("user_login") or self.logins.get(user_id) or f"user{user_id}")
        stream = self.streams.get(user_id) or {
            "id": str(40_000_000_000 + secrets.randbelow(10**9)),
            "user_id": user_id,
            "user_login": login,
            "user_name": login.capitalize(),
            "game_id": "509658",
            "game_name": "Just Chatting",
            "type": "live",
            "title": f"{login.capitalize()} live",
            "tags": [],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "language": "en",
            "thumbnail_url": f"{self.origin}/images/previews/live_user_{login}"
            "-{width}x{height}.svg",
            "is_mature": False,
        }
        stream["viewer_count"] = viewers
        for name in ("title", "game_name", "thumbnail_url"):
            if change.get(name):
                stream[name] = str(change[name])
        self.streams[user_id] = stream
        return stream

    def take_point(self, client_id: str) -> tuple[bool, dict[str, str]]:
        """One point from the client's bucket: (allowed, the Ratelimit-* headers)."""
        now = self.clock()
        start, used = self.buckets.get(client_id, (now, 0))
        if now >= start + self.rate_window:
            start, used = now, 0
        allowed = used < self.rate_limit
        used += 1 if allowed else 0
        self.buckets[client_id] = (start, used)
        headers = {
            "Ratelimit-Limit": str(self.rate_limit),
            "Ratelimit-Remaining": str(max(0, self.rate_limit - used)),
            "Ratelimit-Reset": str(int(start + self.rate_window + 0.999)),
        }
        return allowed, headers

    def get_streams(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        ids = query.get("user_id", [])
        first = int((query.get("first") or ["20"])[0] or 20)
        if len(ids) > 100 or not 1 <= first <= 100:
            self.stream_refusals += 1
            return 400, {"error": "Bad Request", "status": 400, "message": "too many ids"}
        self.stream_requests += 1
        live = [s for u, s in self.streams.items() if not ids or u in ids]
        live.sort(key=lambda s: -int(s["viewer_count"]))
        return 200, {"data": live[:first], "pagination": {}}

    # --- OAuth -------------------------------------------------------------------------
    def new_token(self, client_id: str, login: str | None, granted: list[str]) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = _Token(client_id, login, granted, time.time() + TOKEN_TTL)
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": TOKEN_TTL,
            "token_type": "bearer",
        }
        if login is not None:
            answer["refresh_token"] = secrets.token_urlsafe(32)
            answer["scope"] = granted
        return answer

    def token(self, header: str) -> _Token | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("oauth", "bearer"):
            return None
        found = self.tokens.get(value.strip())
        return found if found and found.expires > time.time() else None

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        secret = self.clients.get(client_id)
        if secret is None or not hmac.compare_digest(secret, form.get("client_secret", "")):
            return 403, {"status": 403, "message": "invalid client secret"}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return 200, self.new_token(client_id, None, [])
        if grant != "authorization_code":
            return 400, {"status": 400, "message": "unsupported grant type"}
        code = self.codes.pop(form.get("code", ""), None)  # single use, whatever follows
        invalid = (400, {"status": 400, "message": "Invalid authorization code"})
        if code is None or code.expires < time.time() or code.client_id != client_id:
            return invalid
        if code.redirect_uri != form.get("redirect_uri"):
            return 400, {"status": 400, "message": "Parameter redirect_uri does not match"}
        if not _pkce_ok(code.challenge, code.method, form.get("code_verifier", "")):
            return 400, {"status": 400, "message": "Invalid code verifier"}
        return 200, self.new_token(client_id, code.login, code.scopes)

    def decide(self, form: dict[str, list[str]]) -> str:
        """The consent page's answer: where the browser goes back to (code or error)."""
        one = {k: v[0] for k, v in form.items() if v}
        redirect, state = one.get("redirect_uri", ""), one.get("state", "")
        if one.get("decision") != "authorize":
            query = {
                "error": "access_denied",
                "error_description": "The user denied you access",
                "state": state,
            }
            return f"{redirect}?{urlencode(query)}"
        login = one.get("login", "").strip().lower()
        offered = set(one.get("scope", "").split())
        ticked = sorted(s for s in form.get("grant", []) if s in offered)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            client_id=one.get("client_id", ""),
            redirect_uri=redirect,
            login=login,
            scopes=ticked,
            challenge=one.get("code_challenge", ""),
            method=one.get("code_challenge_method", "plain"),
            expires=time.time() + CODE_TTL,
        )
        user_id = user_id_for(login)
        self.grants[user_id] = set(ticked)
        self.logins[user_id] = login
        return f"{redirect}?{urlencode({'code': code, 'scope': ' '.join(ticked), 'state': state})}"

    def revoke_user(self, user_id: str) -> list[tuple[str, twitchsim.Delivery]]:
        """The user disconnects our app: grant and tokens go, and so do the subscriptions that
        needed the grant (each announced by a `revocation` message, status
        `authorization_revoked`); returns what to deliver (outside the lock), the app's
        `user.authorization.revoke` notifications last."""
        self.grants.pop(user_id, None)
        self.tokens = {
            k: t
            for k, t in self.tokens.items()
            if t.login is None or user_id_for(t.login) != user_id
        }
        gone = [s for s in self.subs if user_id in _broadcasters(s) and scopes.required(s["type"])]
        self.subs = [s for s in self.subs if s not in gone]
        deliveries = []
        for sub in gone:
            body = {"subscription": {**sub, "status": "authorization_revoked"}}
            signed = twitchsim.sign_delivery(
                body, self.secrets.pop(sub["id"], ""), message_type=eventsub.REVOCATION
            )
            deliveries.append((sub["transport"]["callback"], signed))
        login = self.logins.get(user_id, f"user{user_id}")
        for sub in self.subs:
            if sub["type"] != "user.authorization.revoke":
                continue
            body = {
                "subscription": {**sub, "transport": dict(sub["transport"])},
                "event": {
                    "client_id": sub["condition"].get("client_id", ""),
                    "user_id": user_id,
                    "user_login": login,
                    "user_name": login.capitalize(),
                },
            }
            secret = self.secrets.get(sub["id"], "")
            deliveries.append((sub["transport"]["callback"], twitchsim.sign_delivery(body, secret)))
        return deliveries

    # --- EventSub ------------------------------------------------------------------------
    def prepare(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """Check a creation request: (202, the new subscription, its secret) or a refusal."""
        sub_type, version = str(body.get("type", "")), str(body.get("version", ""))
        condition = body.get("condition") or {}
        transport = body.get("transport") or {}
        if not sub_type or not version or not isinstance(condition, dict):
            return 400, {"error": "Bad Request", "status": 400, "message": "invalid request"}, ""
        for s in self.subs:
            if (s["type"], s["version"], s["condition"]) == (sub_type, version, condition):
                conflict = {"error": "Conflict", "status": 409}
                return 409, {**conflict, "message": "subscription already exists"}, ""
        for broadcaster in _broadcasters({"condition": condition}):
            if not scopes.satisfied(sub_type, self.grants.get(broadcaster, set())):
                refused = {"error": "Forbidden", "status": 403}
                return 403, {**refused, "message": "subscription missing proper authorization"}, ""
        sub = {
            "id": str(uuid.uuid4()),
            "status": PENDING,
            "type": sub_type,
            "version": version,
            "condition": condition,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cost": 0 if scopes.required(sub_type) else 1,
            "transport": {"method": "webhook", "callback": str(transport.get("callback", ""))},
        }
        return 202, sub, str(transport.get("secret", ""))

    def add(self, sub: dict[str, Any], secret: str) -> dict[str, Any]:
        self.subs.append(sub)
        self.secrets[sub["id"]] = secret
        return {"data": [sub], "total": len(self.subs), "total_cost": 0, "max_total_cost": 10000}


def _broadcasters(sub: dict[str, Any]) -> list[str]:
    condition = sub.get("condition") or {}
    names = ("broadcaster_user_id", "to_broadcaster_user_id", "from_broadcaster_user_id")
    return [str(condition[n]) for n in names if condition.get(n)]


def _pkce_ok(challenge: str, method: str, verifier: str) -> bool:
    if not challenge:
        return True  # the client did not use PKCE
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    return bool(verifier) and hmac.compare_digest(computed, challenge)


def _verify_callback(sub: dict[str, Any], secret: str) -> str:
    """Twitch's challenge to a loopback callback; other callbacks cannot be reached from here
    and count as verified."""
    callback = sub["transport"]["callback"]
    if urlsplit(callback).hostname not in ("127.0.0.1", "localhost", "::1"):
        return "enabled"
    challenge = secrets.token_urlsafe(16)
    body = {
        "challenge": challenge,
        "subscription": {**sub, "status": PENDING},
    }
    delivery = twitchsim.sign_delivery(body, secret, message_type=eventsub.VERIFICATION)
    try:
        status, answer = twitchsim.post(callback, delivery, timeout=10)
    except OSError:
        return "webhook_callback_verification_failed"
    ok = status == 200 and answer.decode(errors="replace") == challenge
    return "enabled" if ok else "webhook_callback_verification_failed"


# --- HTTP ----------------------------------------------------------------------------------
def _consent_page(query: dict[str, str], error: str = "") -> str:
    def e(value: str) -> str:
        return html.escape(value, quote=True)

    hidden = "".join(
        f"<input type='hidden' name='{e(k)}' value='{e(v)}'>"
        for k, v in query.items()
        if k
        in (
            "client_id",
            "redirect_uri",
            "state",
            "scope",
            "code_challenge",
            "code_challenge_method",
        )
    )
    boxes = "".join(
        f"<li><label><input type='checkbox' name='grant' value='{e(s)}' checked> "
        f"<code>{e(s)}</code> ({e(', '.join(scopes.scope_labels([s])))})</label></li>"
        for s in query.get("scope", "").split()
    )
    warn = f"<p class='err'>{e(error)}</p>" if error else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Authorize · "
        "Twitch stand-in</title><style>body{font:16px/1.5 system-ui,sans-serif;background:#0e0e10;"
        "color:#efeff1;display:flex;justify-content:center;padding:2rem}main{background:#18181b;"
        "border-radius:8px;padding:2rem;max-width:32rem}ul{list-style:none;padding:0}"
        "button{padding:.6rem 1.2rem;border:0;border-radius:4px;font-weight:600;margin-right:.5rem}"
        ".go{background:#9147ff;color:#fff}.err{color:#ff8280}input[type=text]{padding:.4rem;"
        "width:100%;box-sizing:border-box}</style><link rel='icon' href='data:,'></head>"
        "<body><main>"
        "<h1>Twitch (local stand-in)</h1>"
        f"<p>An application (<code>{e(query.get('client_id', ''))}</code>) wants to connect to "
        "your account.</p>"
        f"{warn}<form method='post' action='/oauth2/authorize'>{hidden}"
        "<p><label>You are signed in to Twitch as (login)<br>"
        "<input type='text' name='login' required pattern='[a-z0-9_]{1,25}' "
        "autocomplete='off'></label></p>"
        f"<p>It asks to:</p><ul>{boxes}</ul>"
        "<button class='go' name='decision' value='authorize'>Authorize</button>"
        "<button name='decision' value='cancel' formnovalidate>Cancel</button>"
        "</form></main></body></html>"
    )


def handler_for(stub: TwitchStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "twitch-stand-in"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass  # tokens travel in query strings and headers: keep them out of logs

        def _send(
            self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: Any = None) -> None:
            raw = json.dumps(body).encode() if body is not None else b""
            self._send(status, raw, "application/json")

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _app(self) -> _Token | None:
            token = stub.token(self.headers.get("Authorization", ""))
            if token is None or self.headers.get("Client-Id") != token.client_id:
                self._json(
                    401, {"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}
                )
                return None
            return token

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with stub.lock:
                if parts.path == "/oauth2/authorize":
                    if query.get("client_id") not in stub.clients or not query.get("redirect_uri"):
                        return self._send(400, b"unknown client or no redirect_uri", "text/plain")
                    page = _consent_page(query).encode()
                    return self._send(200, page, "text/html; charset=utf-8")
                if parts.path == "/oauth2/validate":
                    token = stub.token(self.headers.get("Authorization", ""))
                    if token is None:
                        return self._json(401, {"status": 401, "message": "invalid access token"})
                    info: dict[str, Any] = {
                        "client_id": token.client_id,
                        "scopes": token.scopes,
                        "expires_in": int(token.expires - time.time()),
                    }
                    if token.login is not None:
                        info |= {"login": token.login, "user_id": user_id_for(token.login)}
                    return self._json(200, info)
                if parts.path == "/helix/users":
                    token = self._app()
                    if token is None:
                        return None
                    asked = parse_qs(parts.query)
                    limits: dict[str, str] = {}
                    if asked.get("id"):  # the pulse's batches share Get Streams' bucket
                        allowed, limits = stub.take_point(token.client_id)
                        if not allowed:
                            refused = {"error": "Too Many Requests", "status": 429, "message": ""}
                            raw = json.dumps(refused).encode()
                            return self._send(429, raw, "application/json", limits)
                    status, answer = stub.get_users(asked)
                    return self._send(
                        status, json.dumps(answer).encode(), "application/json", limits
                    )
                if parts.path == "/helix/streams":
                    token = self._app()
                    if token is None:
                        return None
                    allowed, limits = stub.take_point(token.client_id)
                    if not allowed:
                        stub.stream_refusals += 1
                        refused = {"error": "Too Many Requests", "status": 429, "message": ""}
                        raw = json.dumps(refused).encode()
                        return self._send(429, raw, "application/json", limits)
                    status, answer = stub.get_streams(parse_qs(parts.query))
                    return self._send(
                        status, json.dumps(answer).encode(), "application/json", limits
                    )
                if parts.path.startswith("/images/"):
                    return self._image(parts.path)
                if parts.path == "/control/streams":
                    return self._json(
                        200,
                        {
                            "streams": list(stub.streams.values()),
                            "requests": stub.stream_requests,
                            "refused": stub.stream_refusals,
                            "user_requests": stub.user_requests,
                        },
                    )
                if parts.path == "/helix/eventsub/subscriptions":
                    token = self._app()
                    if token is None:
                        return None
                    start = int(query.get("after", "0") or 0)
                    listed = stub.subs[start : start + stub.page_size]
                    more = start + stub.page_size < len(stub.subs)
                    return self._json(
                        200,
                        {
                            "data": listed,
                            "total": len(stub.subs),
                            "total_cost": 0,
                            "max_total_cost": 10000,
                            "pagination": {"cursor": str(start + stub.page_size)} if more else {},
                        },
                    )
                if parts.path == "/healthz":
                    return self._json(200, {"status": "ok"})
            return self._json(404, {"error": "Not Found", "status": 404, "message": ""})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            raw = self._body()
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/_stub/revoke":
                user = query.get("user_id") or user_id_for(query.get("login", ""))
                with stub.lock:
                    deliveries = stub.revoke_user(user)
                sent = 0  # delivered outside the lock: the webhook may take its time
                for callback, delivery in deliveries:
                    status, _ = twitchsim.post(callback, delivery, timeout=10)
                    notice = delivery.headers[eventsub.MESSAGE_TYPE] == eventsub.NOTIFICATION
                    sent += 1 if status < 300 and notice else 0
                return self._json(200, {"user_id": user, "notified": sent})
            if parts.path in ("/control/streams", "/control/ratelimit", "/control/users"):
                return self._control(parts.path, raw)
            with stub.lock:
                if parts.path == "/oauth2/token":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    form |= {k: v for k, v in query.items() if k not in form}
                    status, body = stub.exchange(form)
                    return self._json(status, body)
                if parts.path == "/oauth2/authorize":
                    fields = parse_qs(raw.decode(), keep_blank_values=True)
                    login = (fields.get("login") or [""])[0].strip().lower()
                    deciding = (fields.get("decision") or [""])[0] == "authorize"
                    if deciding and not (login and login.replace("_", "").isalnum()):
                        again = {k: v[0] for k, v in fields.items()}
                        page = _consent_page(again, "Enter a login").encode()
                        return self._send(400, page, "text/html; charset=utf-8")
                    target = stub.decide(fields)
                    return self._send(302, b"", "text/plain", {"Location": target})
                if parts.path == "/oauth2/revoke":
                    revoked = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    stub.tokens.pop(revoked.get("token", ""), None)
                    return self._json(200, None)
            if parts.path == "/helix/eventsub/subscriptions":
                with stub.lock:
                    token = self._app()
                    if token is None:
                        return None
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        return self._json(
                            400, {"error": "Bad Request", "status": 400, "message": "not JSON"}
                        )
                    status, answer, secret = stub.prepare(body if isinstance(body, dict) else {})
                if status != 202:
                    return self._json(status, answer)
                # the callback's challenge, outside the lock: the webhook may take its time
                answer["status"] = _verify_callback(answer, secret)
                with stub.lock:
                    return self._json(202, stub.add(answer, secret))
            return self._json(404, {"error": "Not Found", "status": 404, "message": ""})

        def _image(self, path: str) -> None:
            if avatar := _AVATAR.fullmatch(path):
                body = avatar_svg(avatar.group(1))
            elif preview := _PREVIEW.fullmatch(path):
                login, width, height = preview.group(1), preview.group(2), preview.group(3)
                body = preview_svg(login, int(width), int(height))
            else:
                return self._json(404, {"error": "Not Found", "status": 404, "message": ""})
            self.send_response(200)
            self.send_header("Content-Type", "image/svg+xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", IMAGE_CACHE)
            self.send_header("X-Content-Type-Options", "nosniff")
            # an SVG opened on its own runs no script and loads nothing
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.end_headers()
            self.wfile.write(body)
            return None

        def _control(self, path: str, raw: bytes) -> None:
            """Steering for tests and `controlroom simulate` (loopback only, like the rest)."""
            try:
                change = json.loads(raw or b"{}")
                if not isinstance(change, dict):
                    raise ValueError("a JSON object is expected")
                with stub.lock:
                    if path == "/control/users":
                        login = str(change.get("login") or "").lower()
                        if not login:
                            raise ValueError("login is required")
                        if user_id := str(change.get("user_id") or ""):
                            stub.logins[user_id] = login  # Get Users by id answers this login
                        url = change.get("profile_image_url")
                        if url is None:
                            stub.user_images.pop(login, None)
                        else:
                            stub.user_images[login] = str(url)
                        return self._json(200, {"user": stub.user(login)})
                    if path == "/control/ratelimit":
                        stub.rate_limit = int(change.get("limit", stub.rate_limit))
                        stub.rate_window = float(change.get("window_seconds", stub.rate_window))
                        stub.buckets.clear()
                        return self._json(200, {"limit": stub.rate_limit})
                    return self._json(200, {"stream": stub.set_stream(change)})
            except (ValueError, TypeError) as exc:
                return self._json(400, {"error": "Bad Request", "status": 400, "message": str(exc)})

        def do_DELETE(self) -> None:
            parts = urlsplit(self.path)
            with stub.lock:
                if parts.path != "/helix/eventsub/subscriptions":
                    return self._json(404, {"error": "Not Found", "status": 404, "message": ""})
                if self._app() is None:
                    return None
                sub_id = parse_qs(parts.query).get("id", [""])[0]
                before = len(stub.subs)
                stub.subs = [s for s in stub.subs if s["id"] != sub_id]
                return self._json(204 if len(stub.subs) < before else 404)

    return Handler


def serve(port: int, clients: dict[str, str], page_size: int = 20) -> ThreadingHTTPServer:
    stub = TwitchStub(clients=clients, page_size=page_size, origin=f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(stub))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--page-size", type=int, default=20)
    args = parser.parse_args(argv)
    server = serve(args.port, {args.client_id: args.client_secret}, args.page_size)
    print(f"Twitch stand-in on http://127.0.0.1:{args.port}", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
