"""The local mail catcher: an SMTP server (aiosmtpd) that keeps what arrives, and a page that
lists it with clickable links (`/`), plus `/messages.json` for tests. Development only: it
binds 127.0.0.1 and keeps messages in memory.

Run: python -m controlroom.dev.mailcatcher --smtp-port 1025 --http-port 8025
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import json
import re
import signal
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
MAX_MESSAGES = 500
_URL = re.compile(r"https?://[^\s<>\"']+")


class Inbox:
    """What arrived, newest last; at most MAX_MESSAGES are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []

    def add(self, envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
        with self._lock:
            self._messages.append(
                {
                    "id": len(self._messages) + 1,
                    "received_at": datetime.now(UTC).isoformat(),
                    "mail_from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(parsed.get("Subject", "")),
                    "text": text,
                    "links": _URL.findall(text),
                }
            )
            del self._messages[:-MAX_MESSAGES]

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.inbox.add(envelope)
        return "250 Message accepted for delivery"


def _linked(text: str) -> str:
    """The text escaped, with each URL a link (escaped too: a message cannot inject markup)."""
    out, last = [], 0
    for found in _URL.finditer(text):
        out.append(html.escape(text[last : found.start()]))
        url = html.escape(found.group(0), quote=True)
        out.append(f'<a href="{url}">{url}</a>')
        last = found.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def page(messages: list[dict[str, Any]]) -> str:
    rows = []
    for m in reversed(messages):
        rows.append(
            "<article>"
            f"<h2>{html.escape(m['subject'])}</h2>"
            f"<p class=meta>to {html.escape(', '.join(m['to']))} · from "
            f"{html.escape(m['mail_from'] or '')} · {html.escape(m['received_at'])}</p>"
            f"<pre>{_linked(m['text'])}</pre>"
            "</article>"
        )
    body = "".join(rows) or "<p>No mail yet.</p>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Mail catcher</title><meta http-equiv=refresh content=5>"
        "<style>body{font:15px system-ui;margin:2rem;max-width:60rem}"
        "article{border:1px solid #ccc;border-radius:6px;padding:0 1rem;margin:1rem 0}"
        ".meta{color:#555}pre{white-space:pre-wrap}</style></head>"
        f"<body><h1>Mail catcher</h1><p>{len(messages)} message(s); newest first.</p>"
        f"{body}</body></html>"
    )


def _http_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/messages.json":
                payload = json.dumps(inbox.all()).encode()
                kind = "application/json"
            elif self.path in ("/", "/index.html"):
                payload = page(inbox.all()).encode()
                kind = "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve(smtp_port: int, http_port: int, stop: threading.Event) -> None:
    """Both servers until `stop` is set."""
    inbox = Inbox()
    controller = Controller(_Handler(inbox), hostname=HOST, port=smtp_port)
    controller.start()
    web = ThreadingHTTPServer((HOST, http_port), _http_handler(inbox))
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        web.shutdown()
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve(args.smtp_port, args.http_port, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
