"""The local notification sink without its socket: scripted answers, signature checks, and a
page that shows what arrived without letting a post inject markup."""

from __future__ import annotations

import json
import time

from controlroom.core import alerts
from controlroom.dev.notifysink import Sink, page

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_answers_like_the_services_until_scripted() -> None:
    sink = Sink()
    assert sink.receive("discord", "ops", "/discord/ops", {}, b"{}")[0] == 204
    assert sink.receive("slack", "ops", "/slack/ops", {}, b"{}")[::2] == (200, b"ok")
    sink.control(
        {
            "path": "/discord/ops",
            "responses": [{"status": 429, "retry_after": 1.5}, {"status": 500}],
        }
    )
    status, headers, body = sink.receive("discord", "ops", "/discord/ops", {}, b"{}")
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(body)["retry_after"] == 1.5
    assert sink.receive("discord", "ops", "/discord/ops", {}, b"{}")[0] == 500
    assert sink.receive("discord", "ops", "/discord/ops", {}, b"{}")[0] == 204
    assert [m["answered"] for m in sink.messages()] == [204, 200, 204]
    assert len(sink.requests()) == 5
    sink.control({"clear": True})
    assert sink.requests() == []


def test_checks_a_signed_webhook_when_it_knows_the_secret() -> None:
    sink = Sink()
    raw = b'{"type":"incident.opened"}'
    headers = alerts.signed_headers(SECRET, "msg_1", int(time.time()), raw)
    sink.receive("webhook", "a", "/webhook/a", headers, raw)
    sink.control({"path": "/webhook/a", "secret": SECRET})
    sink.receive("webhook", "a", "/webhook/a", headers, raw)
    sink.receive("webhook", "a", "/webhook/a", headers, raw + b" ")
    assert [m["signature"] for m in sink.requests()] == ["unknown secret", "valid", "invalid"]


def test_page_renders_embeds_and_blocks_escaped_newest_first() -> None:
    sink = Sink()
    evil = "<script>alert(1)</script>"
    discord = {
        "embeds": [
            {"title": evil, "description": "raid", "color": 0xED4245, "url": "javascript:x()"}
        ]
    }
    slack = {
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "slack " + evil}}]
    }
    sink.receive("discord", "ops", "/discord/ops", {}, json.dumps(discord).encode())
    sink.receive("slack", "ops", "/slack/ops", {}, json.dumps(slack).encode())
    html = page(sink.requests())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "border-left-color:#ed4245" in html
    assert "javascript:" not in html
    assert html.index("/slack/ops") < html.index("/discord/ops")
