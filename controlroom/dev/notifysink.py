"""The local notification sink: stands in for Discord and Slack incoming webhooks and any
Standard Webhooks receiver, so a newcomer sees alerts land. Development only: it binds
127.0.0.1 and keeps what arrives in memory.

- POST /discord/<name>, /slack/<name>, /webhook/<name>: a post to a channel. Answers as the
  service does (Discord 204, Slack 200 "ok", webhooks 204) unless told otherwise; a signed
  webhook's signature is checked when the sink knows that path's secret.
- POST /control {"path": "/discord/ops", "responses": [{"status": 429, "retry_after": 1.5},
  {"status": 500}]}: the next answers for that path, in order; {"path", "secret": "whsec_..."}
  teaches it a webhook's secret; {"clear": true} forgets everything.
- GET /messages.json: the posts it accepted (2xx), oldest first; GET /requests.json: every
  post with the status it answered; GET /: a page listing what arrived, newest first.

Run: python -m controlroom.dev.notifysink --port 58026
"""

from __future__ import annotations

import argparse
import html
import json
import re
import signal
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controlroom.core import alerts

HOST = "127.0.0.1"
MAX_KEPT = 1000
MAX_BODY = 256 * 1024
_PATH = re.compile(r"^/(discord|slack|webhook)/([A-Za-z0-9_.-]{1,100})$")
_OK = {"discord": (204, b""), "slack": (200, b"ok"), "webhook": (204, b"")}


class Sink:
    """What arrived, the scripted answers and the known secrets (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[dict[str, Any]]] = {}
        self._secrets: dict[str, str] = {}

    def control(self, order: dict[str, Any]) -> None:
        with self._lock:
            if order.get("clear"):
                self._requests.clear()
                self._scripts.clear()
                self._secrets.clear()
            path = order.get("path")
            if not isinstance(path, str):
                return
            if "responses" in order:
                self._scripts[path] = deque(dict(r) for r in order["responses"])
            if "secret" in order:
                self._secrets[path] = str(order["secret"])

    def receive(
        self, kind: str, name: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            script = self._scripts.get(path)
            planned = script.popleft() if script else None
            secret = self._secrets.get(path)
        status, body = _OK[kind]
        answer_headers: dict[str, str] = {}
        if planned is not None:
            status = int(planned.get("status", status))
            body = b""
            if status == 429:
                wait = float(planned.get("retry_after", 1))
                answer_headers["Retry-After"] = str(max(1, round(wait + 0.499)))
                if kind == "discord":  # Discord's body says it exactly, in seconds
                    body = json.dumps(
                        {
                            "message": "You are being rate limited.",
                            "retry_after": wait,
                            "global": False,
                        }
                    ).encode()
                    answer_headers["Content-Type"] = "application/json"
        try:
            payload: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        signature = "unsigned"
        if kind == "webhook" and "webhook-signature" in headers:
            if secret is None:
                signature = "unknown secret"
            else:
                ok = alerts.verify(secret, headers, raw, int(time.time()))
                signature = "valid" if ok else "invalid"
        record = {
            "id": 0,
            "received_at": datetime.now(UTC).isoformat(),
            "kind": kind,
            "name": name,
            "path": path,
            "answered": status,
            "body": payload,
            "webhook_id": headers.get("webhook-id"),
            "signature": signature,
        }
        with self._lock:
            record["id"] = len(self._requests) + 1
            self._requests.append(record)
            del self._requests[:-MAX_KEPT]
        return status, answer_headers, body

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def messages(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if 200 <= r["answered"] < 300]


# --- the page ------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _discord(body: dict[str, Any]) -> str:
    out = []
    if body.get("content"):
        out.append(f"<p class=mention>{_e(body['content'])}</p>")
    for embed in body.get("embeds") or []:
        colour = int(embed.get("color") or 0)
        title = _e(embed.get("title", ""))
        url = embed.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            title = f'<a href="{_e(url)}">{title}</a>'
        fields = "".join(
            f"<div><b>{_e(f.get('name', ''))}</b><br>{_e(f.get('value', ''))}</div>"
            for f in embed.get("fields") or []
        )
        out.append(
            f'<div class=embed style="border-left-color:#{colour:06x}">'
            f"<div class=title>{title}</div>"
            f"<pre>{_e(embed.get('description', ''))}</pre>"
            f"<div class=fields>{fields}</div>"
            f"<div class=meta>{_e((embed.get('footer') or {}).get('text', ''))} · "
            f"{_e(embed.get('timestamp', ''))}</div></div>"
        )
    return "".join(out)


def _slack_text(block: dict[str, Any]) -> list[str]:
    lines = []
    text = block.get("text")
    if isinstance(text, dict):
        lines.append(str(text.get("text", "")))
    for f in block.get("fields") or []:
        lines.append(str(f.get("text", "")).replace("\n", ": "))
    for el in block.get("elements") or []:
        if el.get("type") == "button":
            lines.append(f"[{(el.get('text') or {}).get('text', '')}] → {el.get('url', '')}")
        elif isinstance(el.get("text"), str):
            lines.append(el["text"])
    return lines


def _slack(body: dict[str, Any]) -> str:
    lines: list[str] = []
    for block in body.get("blocks") or []:
        lines += _slack_text(block)
    if not lines:
        lines.append(str(body.get("text", "")))
    return f"<pre class=slack>{_e(chr(10).join(lines))}</pre>"


def page(requests: list[dict[str, Any]]) -> str:
    rows = []
    for r in reversed(requests):
        body = r["body"] if isinstance(r["body"], dict) else {}
        if r["kind"] == "discord":
            content = _discord(body)
        elif r["kind"] == "slack":
            content = _slack(body)
        else:
            content = f"<pre>{_e(json.dumps(r['body'], indent=2))}</pre>"
        sig = "" if r["kind"] != "webhook" else f" · signature <b>{_e(r['signature'])}</b>"
        cls = "ok" if 200 <= r["answered"] < 300 else "refused"
        rows.append(
            f"<article class={cls}><p class=meta>#{r['id']} · <b>{_e(r['path'])}</b> · answered "
            f"{r['answered']} · {_e(r['received_at'])}{sig}</p>{content}</article>"
        )
    listing = "".join(rows) or "<p>Nothing arrived yet.</p>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Notification sink</title><meta http-equiv=refresh content=5>"
        "<style>body{font:15px system-ui;margin:2rem;max-width:60rem}"
        "article{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}"
        "article.refused{opacity:.6;border-style:dashed}.meta{color:#555;font-size:13px}"
        ".embed{border-left:4px solid #888;background:#f4f5f7;padding:.5rem .75rem;"
        "border-radius:4px}.title{font-weight:600}.fields{display:flex;gap:1.5rem}"
        "pre{white-space:pre-wrap;margin:.4rem 0}.mention{color:#5865f2}</style></head>"
        f"<body><h1>Notification sink</h1><p>{len(requests)} post(s); newest first. Paths: "
        "/discord/&lt;name&gt;, /slack/&lt;name&gt;, /webhook/&lt;name&gt;.</p>"
        f"{listing}</body></html>"
    )


def _http_handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(
            self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            if body or kind:
                self.send_header("Content-Type", kind)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/messages.json":
                self._send(200, json.dumps(sink.messages()).encode(), "application/json")
            elif self.path == "/requests.json":
                self._send(200, json.dumps(sink.requests()).encode(), "application/json")
            elif self.path in ("/", "/index.html"):
                self._send(200, page(sink.requests()).encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"", "")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, b"", "")
                return
            raw = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            if path == "/control":
                try:
                    sink.control(json.loads(raw))
                except (ValueError, TypeError, AttributeError):
                    self._send(400, b"", "")
                    return
                self._send(204, b"", "")
                return
            found = _PATH.match(path)
            if found is None:
                self._send(404, b"", "")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = sink.receive(found[1], found[2], path, headers, raw)
            kind = extra.pop("Content-Type", "text/plain" if body else "")
            self._send(status, body, kind, extra)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve(port: int, stop: threading.Event) -> None:
    web = ThreadingHTTPServer((HOST, port), _http_handler(Sink()))
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        web.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=58026)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve(args.port, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
