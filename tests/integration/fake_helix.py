"""A local stand-in for the few Helix endpoints the reconciler uses, as Twitch documents them."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeTwitch:
    def __init__(self, page_size: int = 3) -> None:
        self.page_size = page_size
        self.subs: list[dict[str, Any]] = []
        self.users = {
            "newcreator": {"id": "424242", "login": "newcreator", "display_name": "NewCreator"}
        }
        self.tokens: set[str] = set()
        self.fail_next: list[int] = []
        self.conflict_types: set[str] = set()
        self.unauthorized_types: set[str] = set()  # 403: the broadcaster has not granted them
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeTwitch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(
        self, sub_type: str, version: str, condition: dict[str, str], callback: str
    ) -> dict[str, Any]:
        sub = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": sub_type,
            "version": version,
            "condition": condition,
            "created_at": "2026-11-24T00:00:00Z",
            "cost": 1,
            "transport": {"method": "webhook", "callback": callback},
        }
        self.subs.append(sub)
        return sub

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any = None) -> None:
                raw = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorized(self) -> bool:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                return token in fake.tokens and self.headers.get("Client-Id") == "test-client"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                fake.requests.append((self.command, parts.path))
                with fake.lock:
                    if fake.fail_next:
                        status = fake.fail_next.pop(0)
                        return self._reply(
                            status, {"error": "fault", "status": status, "message": "injected"}
                        )
                if parts.path == "/oauth2/token" and self.command == "POST":
                    token = uuid.uuid4().hex
                    fake.tokens.add(token)
                    return self._reply(
                        200, {"access_token": token, "expires_in": 5000000, "token_type": "bearer"}
                    )
                if not self._authorized():
                    return self._reply(
                        401, {"error": "Unauthorized", "status": 401, "message": "invalid token"}
                    )
                if parts.path == "/helix/users":
                    login = query.get("login", [""])[0]
                    found = fake.users.get(login)
                    return self._reply(200, {"data": [found] if found else []})
                if parts.path != "/helix/eventsub/subscriptions":
                    return self._reply(404, {"error": "Not Found", "status": 404, "message": ""})
                if self.command == "GET":
                    start = int(query.get("after", ["0"])[0])
                    page = fake.subs[start : start + fake.page_size]
                    more = start + fake.page_size < len(fake.subs)
                    return self._reply(
                        200,
                        {
                            "data": page,
                            "total": len(fake.subs),
                            "pagination": {"cursor": str(start + fake.page_size)} if more else {},
                        },
                    )
                if self.command == "POST":
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    same = [
                        s
                        for s in fake.subs
                        if (s["type"], s["version"], s["condition"])
                        == (body["type"], body["version"], body["condition"])
                    ]
                    if body["type"] in fake.unauthorized_types:
                        return self._reply(
                            403,
                            {
                                "error": "Forbidden",
                                "status": 403,
                                "message": "subscription missing proper authorization",
                            },
                        )
                    if same or body["type"] in fake.conflict_types:
                        return self._reply(
                            409,
                            {
                                "error": "Conflict",
                                "status": 409,
                                "message": "subscription already exists",
                            },
                        )
                    sub = fake.add(
                        body["type"],
                        body["version"],
                        body["condition"],
                        body["transport"]["callback"],
                    )
                    sub["status"] = "webhook_callback_verification_pending"
                    return self._reply(202, {"data": [sub], "total": len(fake.subs)})
                if self.command == "DELETE":
                    sub_id = query.get("id", [""])[0]
                    before = len(fake.subs)
                    fake.subs[:] = [s for s in fake.subs if s["id"] != sub_id]
                    return self._reply(204 if len(fake.subs) < before else 404)
                return self._reply(
                    405, {"error": "Method Not Allowed", "status": 405, "message": ""}
                )

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - http.server's naming

        return Handler
