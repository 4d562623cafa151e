"""Twitch EventSub webhook deliveries: signature verification and the delivery envelope."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlroom.core.payloads import json_object
from controlroom.errors import (
    DeliveryTooLargeError,
    ForgedDeliveryError,
    MalformedDeliveryError,
)

# Header names as Twitch sends them; lookups are case-insensitive (see _header).
MESSAGE_ID = "Twitch-Eventsub-Message-Id"
MESSAGE_RETRY = "Twitch-Eventsub-Message-Retry"
MESSAGE_TYPE = "Twitch-Eventsub-Message-Type"
MESSAGE_SIGNATURE = "Twitch-Eventsub-Message-Signature"
MESSAGE_TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
SUBSCRIPTION_TYPE = "Twitch-Eventsub-Subscription-Type"
SUBSCRIPTION_VERSION = "Twitch-Eventsub-Subscription-Version"

NOTIFICATION = "notification"
VERIFICATION = "webhook_callback_verification"
REVOCATION = "revocation"
MESSAGE_TYPES = frozenset({NOTIFICATION, VERIFICATION, REVOCATION})

MAX_AGE = timedelta(minutes=10)  # Twitch: reject anything older than 10 minutes
MAX_SKEW = timedelta(minutes=2)  # a clock ahead of ours by more than this is not Twitch
MAX_BODY_BYTES = 1024 * 1024

_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")
# re.ASCII: RFC 3339 digits are ASCII ones; \d alone also takes Arabic-Indic or fullwidth ones.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RETRY = re.compile(r"\d{1,9}", re.ASCII)  # str.isdigit() also says yes to "²", int() does not


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: the headers that matter and the raw body, untouched."""

    message_id: str
    message_type: str
    timestamp: datetime
    timestamp_header: str
    retry: int
    subscription_type: str
    subscription_version: str
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or MalformedDeliveryError."""
        return json_object(self.body, MalformedDeliveryError)


def check_secrets(secrets: Sequence[str]) -> tuple[bytes, ...]:
    """Twitch requires 10 to 100 ASCII characters; fail at start-up, not at the first delivery."""
    if not secrets:
        raise ValueError("at least one EventSub secret is required")
    checked = []
    for secret in secrets:
        if not (10 <= len(secret) <= 100) or not secret.isascii():
            raise ValueError("an EventSub secret must be 10 to 100 ASCII characters")
        checked.append(secret.encode("ascii"))
    return tuple(checked)


def sign(secret: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The signature header value Twitch would send: HMAC-SHA256 over id + timestamp + body."""
    mac = hmac.new(secret, message_id.encode() + timestamp.encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def parse_timestamp(value: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Twitch sends nine digits); ValueError otherwise."""
    match = _TIMESTAMP.fullmatch(value)
    if not match:
        raise ValueError("not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=UTC
    )
    if zone != "Z":
        sign_ = 1 if zone[0] == "+" else -1
        try:
            moment -= sign_ * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ValueError("timestamp out of range") from None
    return moment


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_delivery(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], now: datetime
) -> Delivery:
    """Authenticate a delivery before anything else looks at it.

    Raises ForgedDeliveryError (403) for anything that is not provably from Twitch within
    the replay window, MalformedDeliveryError (400) for an unknown message type, and
    DeliveryTooLargeError (413) for an oversized body.
    """
    if len(body) > MAX_BODY_BYTES:
        raise DeliveryTooLargeError(f"body exceeds {MAX_BODY_BYTES} bytes")
    message_id = _header(headers, MESSAGE_ID)
    timestamp_header = _header(headers, MESSAGE_TIMESTAMP)
    signature = _header(headers, MESSAGE_SIGNATURE)
    if not message_id or not timestamp_header or not signature:
        raise ForgedDeliveryError("missing EventSub headers")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ForgedDeliveryError("garbled message id")
    match = _SIGNATURE.fullmatch(signature.strip())
    if not match:
        raise ForgedDeliveryError("garbled signature")
    try:
        timestamp = parse_timestamp(timestamp_header)
    except ValueError:
        raise ForgedDeliveryError("garbled timestamp") from None
    # Every secret is tried, so the time taken does not say which one (if any) matched.
    expected = [sign(s, message_id, timestamp_header, body) for s in secrets]
    matched = [hmac.compare_digest(e, "sha256=" + match.group(1)) for e in expected]
    if not any(matched):
        raise ForgedDeliveryError("bad signature")
    if timestamp < now - MAX_AGE or timestamp > now + MAX_SKEW:
        raise ForgedDeliveryError("timestamp outside the replay window")

    message_type = _header(headers, MESSAGE_TYPE) or ""
    if message_type not in MESSAGE_TYPES:
        raise MalformedDeliveryError("unknown message type")
    retry_header = _header(headers, MESSAGE_RETRY) or "0"
    return Delivery(
        message_id=message_id,
        message_type=message_type,
        timestamp=timestamp,
        timestamp_header=timestamp_header,
        retry=int(retry_header) if _RETRY.fullmatch(retry_header) else 0,
        subscription_type=(_header(headers, SUBSCRIPTION_TYPE) or "")[:100],
        subscription_version=(_header(headers, SUBSCRIPTION_VERSION) or "")[:20],
        body=body,
    )


def challenge(delivery: Delivery) -> bytes:
    """The raw challenge of a verification request, exactly as Twitch sent it."""
    payload = delivery.json()
    value = payload.get("challenge")
    if not isinstance(value, str) or not value:
        raise MalformedDeliveryError("verification without a challenge")
    return value.encode("utf-8")
