"""What a notification says on each kind of channel, the Standard Webhooks signature (checked
against the specification's reference vector), 429 hints, and which channel URLs we accept."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from controlroom.core import alerts
from controlroom.errors import InvalidError
from controlroom.usecases import notifications
from controlroom.usecases.notifications import Answer

AT = datetime(2026, 12, 1, 20, 15, tzinfo=UTC)
INCIDENT: dict[str, Any] = {
    "id": str(uuid.UUID(int=7)),
    "number": 12,
    "creator_id": str(uuid.UUID(int=9)),
    "rule": "raid_incoming",
    "severity": "warning",
    "status": "open",
    "title": "Raid of 5,000 viewers from <big_streamer> & co",
    "details": {"viewers": 5000},
    "opened_at": AT.isoformat(),
    "updated_at": AT.isoformat(),
    "acknowledged_at": None,
    "acknowledged_by": None,
    "resolved_at": None,
    "resolved_by": None,
    "resolution": None,
    "assignee_user_id": None,
    "event_count": 1,
}
LINK = "https://control.example/#/incidents/" + INCIDENT["id"]


def notice(transition: str = "opened", **incident: Any) -> alerts.Notice:
    return alerts.Notice(transition, {**INCIDENT, **incident}, "Streamer One", LINK, AT)


# --- Discord -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("severity", "colour"), [("critical", 0xED4245), ("warning", 0xF0A020), ("info", 0x3498DB)]
)
def test_discord_embed_colour_follows_severity(severity: str, colour: int) -> None:
    body = alerts.discord_message(notice(severity=severity))
    assert body["embeds"][0]["color"] == colour


def test_discord_embed_says_what_happened_and_links_back() -> None:
    body = alerts.discord_message(notice())
    embed = body["embeds"][0]
    assert embed["title"].startswith("[Opened] #12 Raid of 5,000 viewers")
    assert "was opened" in embed["description"]
    assert embed["url"] == LINK
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Creator": "Streamer One",
        "Severity": "Warning",
        "Status": "open",
    }
    # nobody is pinged unless the channel names a role
    assert "content" not in body
    assert body["allowed_mentions"] == {"parse": []}


def test_discord_mention_pings_only_that_role() -> None:
    body = alerts.discord_message(notice(), mention="123456789012345678")
    assert body["content"] == "<@&123456789012345678>"
    assert body["allowed_mentions"] == {"parse": [], "roles": ["123456789012345678"]}


def test_discord_resolution_text() -> None:
    auto = alerts.discord_message(notice("resolved", status="resolved", resolved_by="auto"))
    assert "automatically" in auto["embeds"][0]["description"]
    by = notice("resolved", status="resolved", resolved_by="ana", resolution="raid was friendly")
    text = alerts.discord_message(by)["embeds"][0]["description"]
    assert "by ana" in text and "raid was friendly" in text


def test_a_test_post_has_no_incident() -> None:
    test = alerts.Notice("test", None, None, None, AT, channel_name="ops")
    body = alerts.discord_message(test)
    assert body["embeds"][0]["title"].startswith("Test notification")
    assert "url" not in body["embeds"][0]
    payload = alerts.webhook_payload(test, "chan")
    assert payload["type"] == "incident.test"
    assert payload["data"]["channel_id"] == "chan"


# --- Slack ---------------------------------------------------------------------------------
def test_slack_blocks_header_fields_context_and_button() -> None:
    body = alerts.slack_message(notice(), mention="<!here>")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "context", "actions"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    section = body["blocks"][1]
    assert section["text"]["text"].startswith("<!here> ")
    fields = [f["text"] for f in section["fields"]]
    assert fields == ["*Creator*\nStreamer One", "*Severity*\nWarning", "*Status*\nopen"]
    button = body["blocks"][3]["elements"][0]
    assert button["url"] == LINK
    # the fallback text is escaped: incident text cannot forge a Slack mention or link
    assert "&lt;big_streamer&gt; &amp; co" in body["text"]


def test_slack_ignores_a_mention_it_does_not_recognise() -> None:
    body = alerts.slack_message(notice(), mention="@everyone <script>")
    assert not body["text"].startswith("@everyone")


# --- Standard Webhooks ---------------------------------------------------------------------
# The reference vector of the Standard Webhooks libraries (the specification's own tests)
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_vector() -> None:
    assert alerts.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    headers = alerts.signed_headers(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TS),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_verify_accepts_one_of_several_signatures_and_refuses_the_rest() -> None:
    headers = alerts.signed_headers(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    several = {**headers, "webhook-signature": f"v1,bm90IGl0 {SPEC_SIGNATURE}"}
    assert alerts.verify(SPEC_SECRET, several, SPEC_BODY, SPEC_TS + 10)
    assert not alerts.verify(SPEC_SECRET, headers, SPEC_BODY + b" ", SPEC_TS)
    assert not alerts.verify("whsec_" + "A" * 32, headers, SPEC_BODY, SPEC_TS)
    assert not alerts.verify(SPEC_SECRET, headers, SPEC_BODY, SPEC_TS + 301)  # too old
    assert not alerts.verify(SPEC_SECRET, {"webhook-id": SPEC_ID}, SPEC_BODY, SPEC_TS)


def test_webhook_payload_is_typed_by_transition() -> None:
    payload = alerts.webhook_payload(notice("acknowledged"), "chan")
    assert payload["type"] == "incident.acknowledged"
    assert payload["data"]["id"] == INCIDENT["id"]
    assert payload["data"]["url"] == LINK
    assert json.loads(alerts.encode(payload)) == payload


@pytest.mark.parametrize("secret", ["whsec_short", "whsec_!!!", "x" * 10])
def test_weak_or_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        alerts.secret_key(secret)


# --- 429 hints -----------------------------------------------------------------------------
def test_retry_after_prefers_discords_fractional_seconds() -> None:
    body = json.dumps({"retry_after": 1.5, "global": False}).encode()
    assert notifications.retry_after(Answer(429, {"retry-after": "2"}, body)) == 1.5
    assert notifications.retry_after(Answer(429, {"retry-after": "30"})) == 30.0
    assert notifications.retry_after(Answer(429, {}, b"not json")) is None


# --- channel URLs --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("discord", "https://discord.com/api/webhooks/123456789/abc-DEF_ghi"),
        ("discord", "https://discordapp.com/api/webhooks/123456789/abc"),
        ("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("webhook", "https://hooks.example.com/controlroom"),
    ],
)
def test_accepted_urls(kind: str, url: str) -> None:
    assert notifications.check_url(kind, url, allow_loopback=False) == url


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("discord", "http://discord.com/api/webhooks/1/abc"),
        ("discord", "https://discord.com.evil.example/api/webhooks/1/abc"),
        ("discord", "https://discord.com/api/webhooks/abc/def"),
        ("discord", "https://user:pw@discord.com/api/webhooks/1/abc"),
        ("slack", "https://hooks.slack.com.evil.example/services/T/B/X"),
        ("slack", "https://hooks.slack.com/other/T/B/X"),
        ("webhook", "http://hooks.example.com/x"),
        ("webhook", "https://10.0.0.5/x"),
        ("webhook", "https://169.254.169.254/latest/meta-data"),
        ("webhook", "https://[::1]/x"),
        ("webhook", "https://localhost/x"),
        ("webhook", "https://metadata.google.internal/x"),
        ("webhook", "https://hooks.example.com:8443/x"),
        ("webhook", "http://127.0.0.1:58026/webhook/x"),  # loopback only when allowed
    ],
)
def test_refused_urls(kind: str, url: str) -> None:
    with pytest.raises(InvalidError) as err:
        notifications.check_url(kind, url, allow_loopback=False)
    assert url not in str(err.value)


def test_loopback_sink_only_when_allowed() -> None:
    url = "http://127.0.0.1:58026/discord/ops"
    assert notifications.check_url("discord", url, allow_loopback=True) == url
    with pytest.raises(InvalidError):
        notifications.check_url("webhook", "http://10.0.0.5/x", allow_loopback=True)


def test_url_hint_shows_host_and_last_four() -> None:
    hint = notifications.url_hint("https://discord.com/api/webhooks/123/secret-token-abcd")
    assert hint == "https://discord.com/…/abcd"
    assert "secret-token" not in hint
