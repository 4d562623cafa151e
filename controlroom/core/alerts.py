"""What a notification says, shaped for each kind of channel: a Discord embed, Slack blocks, or a
JSON payload signed as the Standard Webhooks specification describes (and how that is checked).

Pure: no I/O. The sender (controlroom/usecases/notifications.py) posts the bodies built here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Discord embed colours (decimal RGB) per severity
COLOURS = {"critical": 0xED4245, "warning": 0xF0A020, "info": 0x3498DB}
SEVERITY_LABEL = {"critical": "Critical", "warning": "Warning", "info": "Info"}
_VERB = {
    "opened": "opened",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
    "test": "tested",
}
DISCORD_ROLE = re.compile(r"^[0-9]{15,22}$")  # a role id: mentioned as <@&id>
DISCORD_BROADCAST = ("here", "everyone")
SLACK_MENTION = re.compile(r"^<(!here|!channel|!subteam\^[A-Z0-9]{6,20}|@[UW][A-Z0-9]{6,20})>$")


@dataclass(frozen=True)
class Notice:
    """One transition of one incident (or a channel test), with what the message shows."""

    transition: str  # opened | acknowledged | resolved | test
    incident: Mapping[str, Any] | None  # the Incident JSON; None for a test
    creator: str | None  # the creator's display name (or login)
    link: str | None  # the dashboard's page for the incident
    sent_at: datetime
    channel_name: str = ""

    @property
    def severity(self) -> str:
        return str(self.incident["severity"]) if self.incident else "info"

    @property
    def title(self) -> str:
        if self.incident is None:
            return "Test notification from Creator Control Room"
        number, title = self.incident["number"], self.incident["title"]
        return f"[{self.transition.capitalize()}] #{number} {title}"[:256]

    @property
    def description(self) -> str:
        if self.incident is None:
            return (
                f"This channel ({self.channel_name}) is set up: incidents at or above its "
                "minimum severity will be posted here."
            )
        inc = self.incident
        who = {
            "acknowledged": inc.get("acknowledged_by"),
            "resolved": inc.get("resolved_by"),
        }.get(self.transition)
        text = f"Incident #{inc['number']} ({inc['rule']}) was {_VERB[self.transition]}"
        if who == "auto":
            text += " automatically: the condition cleared"
        elif who:
            text += f" by {who}"
        text += "."
        if self.transition == "resolved" and inc.get("resolution"):
            text += f"\nResolution: {inc['resolution']}"
        return text[:2000]

    @property
    def status(self) -> str:
        return str(self.incident["status"]) if self.incident else "test"


# --- Discord (execute webhook) -----------------------------------------------------------
def discord_message(notice: Notice, mention: str | None = None) -> dict[str, Any]:
    """An execute-webhook body: one embed; a role mention only pings that role
    (allowed_mentions), never @everyone or users named in incident text."""
    embed: dict[str, Any] = {
        "title": notice.title,
        "description": notice.description,
        "color": COLOURS.get(notice.severity, COLOURS["info"]),
        "fields": [
            {"name": "Creator", "value": (notice.creator or "—")[:1024], "inline": True},
            {
                "name": "Severity",
                "value": SEVERITY_LABEL.get(notice.severity, "Info"),
                "inline": True,
            },
            {"name": "Status", "value": notice.status, "inline": True},
        ],
        "timestamp": notice.sent_at.isoformat(),
        "footer": {"text": "Creator Control Room"},
    }
    if notice.link:
        embed["url"] = notice.link
    body: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if mention and DISCORD_ROLE.match(mention):
        body["content"] = f"<@&{mention}>"
        body["allowed_mentions"] = {"parse": [], "roles": [mention]}
    elif mention in DISCORD_BROADCAST:
        body["content"] = f"@{mention}"
        body["allowed_mentions"] = {"parse": ["everyone"]}
    return body


# --- Slack (incoming webhook, Block Kit) -------------------------------------------------
def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notice: Notice, mention: str | None = None) -> dict[str, Any]:
    """An incoming-webhook body: `text` (the notification's fallback) and blocks."""
    prefix = f"{mention} " if mention and SLACK_MENTION.match(mention) else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": prefix + _slack_escape(notice.description)},
            "fields": [
                {"type": "mrkdwn", "text": f"*Creator*\n{_slack_escape(notice.creator or '—')}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{SEVERITY_LABEL.get(notice.severity)}"},
                {"type": "mrkdwn", "text": f"*Status*\n{notice.status}"},
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Creator Control Room · {notice.sent_at:%Y-%m-%d %H:%M} UTC",
                }
            ],
        },
    ]
    if notice.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in the control room"},
                        "url": notice.link,
                    }
                ],
            }
        )
    return {"text": prefix + _slack_escape(notice.title), "blocks": blocks}


# --- Standard Webhooks -------------------------------------------------------------------
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_TOLERANCE_SECONDS = 300


def webhook_payload(notice: Notice, channel_id: str) -> dict[str, Any]:
    data: dict[str, Any]
    if notice.incident is None:
        data = {"channel_id": channel_id, "message": notice.description}
    else:
        data = {**notice.incident, "creator_name": notice.creator, "url": notice.link}
    return {
        "type": f"incident.{notice.transition}",
        "timestamp": notice.sent_at.isoformat(),
        "data": data,
    }


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a signing secret must hold 24 to 64 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: "v1,<base64 HMAC-SHA256 of id.timestamp.body>"."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret is not None:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: int) -> bool:
    """A receiver's check: one of the space-separated v1 signatures matches, and the
    timestamp is within five minutes of `now`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lowered.get("webhook-id"), lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures) or not stamp.isdigit():
        return False
    if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, s) for s in signatures.split(" "))


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
