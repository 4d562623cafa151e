from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlroom import errors
from controlroom.core import eventsub

SECRET = b"s3cret-for-tests-only"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STAMP = "2026-11-24T11:59:58.123456789Z"
BODY = (
    b'{"subscription":{"type":"stream.online","version":"1"},"event":{"broadcaster_user_id":"1"}}'
)


def headers(body: bytes = BODY, secret: bytes = SECRET, **overrides: str) -> dict[str, str]:
    h = {
        eventsub.MESSAGE_ID: "msg-1",
        eventsub.MESSAGE_TIMESTAMP: STAMP,
        eventsub.MESSAGE_TYPE: "notification",
        eventsub.MESSAGE_RETRY: "2",
        eventsub.SUBSCRIPTION_TYPE: "stream.online",
        eventsub.SUBSCRIPTION_VERSION: "1",
    }
    h[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(secret, h[eventsub.MESSAGE_ID], STAMP, body)
    h.update(overrides)
    return h


def test_genuine_delivery_is_accepted_with_its_headers() -> None:
    delivery = eventsub.verify_delivery(headers(), BODY, [SECRET], NOW)
    assert delivery.message_id == "msg-1"
    assert delivery.retry == 2
    assert delivery.subscription_type == "stream.online"
    assert delivery.timestamp == datetime(2026, 11, 24, 11, 59, 58, 123456, tzinfo=UTC)
    assert delivery.body is BODY


def test_header_names_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert eventsub.verify_delivery(lowered, BODY, [SECRET], NOW).message_id == "msg-1"


def test_previous_secret_still_verifies_during_rotation() -> None:
    old = b"the-previous-secret"
    delivery = eventsub.verify_delivery(headers(secret=old), BODY, [SECRET, old], NOW)
    assert delivery.message_id == "msg-1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b[:-1] + b" "),  # one byte changed
        lambda h, b: (h, b.replace(b'"1"', b'"2"')),
        lambda h, b: (h, b.replace(b":", b": ")),  # re-serialized: same JSON, other bytes
        lambda h, b: ({**h, eventsub.MESSAGE_SIGNATURE: h[eventsub.MESSAGE_SIGNATURE][7:]}, b),
        lambda h, b: ({**h, eventsub.MESSAGE_SIGNATURE: "sha256=" + "0" * 64}, b),
        lambda h, b: ({**h, eventsub.MESSAGE_SIGNATURE: h[eventsub.MESSAGE_SIGNATURE].upper()}, b),
        lambda h, b: ({**h, eventsub.MESSAGE_ID: "msg-2"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != eventsub.MESSAGE_TIMESTAMP}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != eventsub.MESSAGE_SIGNATURE}, b),
        lambda h, b: ({**h, eventsub.MESSAGE_TIMESTAMP: "yesterday"}, b),
        lambda h, b: ({**h, eventsub.MESSAGE_ID: "a" * 500}, b),
    ],
)
def test_anything_not_provably_from_twitch_is_forged(tamper: object) -> None:
    h, b = tamper(headers(), BODY)  # type: ignore[operator]
    with pytest.raises(errors.ForgedDeliveryError):
        eventsub.verify_delivery(h, b, [SECRET], NOW)


def test_wrong_secret_is_forged() -> None:
    with pytest.raises(errors.ForgedDeliveryError, match="bad signature"):
        eventsub.verify_delivery(headers(secret=b"some-other-secret"), BODY, [SECRET], NOW)


@pytest.mark.parametrize("offset", [timedelta(minutes=-11), timedelta(minutes=5)])
def test_timestamps_outside_the_window_are_refused(offset: timedelta) -> None:
    with pytest.raises(errors.ForgedDeliveryError, match="replay window"):
        eventsub.verify_delivery(headers(), BODY, [SECRET], NOW - offset - timedelta(seconds=2))


def test_signature_is_checked_before_the_message_type() -> None:
    forged = headers(
        **{eventsub.MESSAGE_TYPE: "nonsense", eventsub.MESSAGE_SIGNATURE: "sha256=" + "1" * 64}
    )
    with pytest.raises(errors.ForgedDeliveryError):
        eventsub.verify_delivery(forged, BODY, [SECRET], NOW)


def test_unknown_message_type_is_malformed() -> None:
    with pytest.raises(errors.MalformedDeliveryError):
        eventsub.verify_delivery(headers(**{eventsub.MESSAGE_TYPE: "party"}), BODY, [SECRET], NOW)


def test_oversized_body_is_refused_first() -> None:
    big = b"x" * (eventsub.MAX_BODY_BYTES + 1)
    with pytest.raises(errors.DeliveryTooLargeError):
        eventsub.verify_delivery({}, big, [SECRET], NOW)


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b"\xff\xfe", b"[" * 100_000])
def test_bodies_that_are_not_json_objects_are_malformed(body: bytes) -> None:
    delivery = eventsub.verify_delivery(headers(body=body), body, [SECRET], NOW)
    with pytest.raises(errors.MalformedDeliveryError):
        delivery.json()


@pytest.mark.parametrize("secrets", [[], ["short"], ["x" * 101], ["ünïcødé-secret"]])
def test_secrets_are_checked_at_start_up(secrets: list[str]) -> None:
    with pytest.raises(ValueError, match="secret"):
        eventsub.check_secrets(secrets)


def test_secrets_accept_current_and_previous() -> None:
    assert eventsub.check_secrets(["0123456789", "z" * 100]) == (b"0123456789", b"z" * 100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-11-16T10:11:12.634234626Z", datetime(2019, 11, 16, 10, 11, 12, 634234, tzinfo=UTC)),
        ("2019-11-16T10:11:12Z", datetime(2019, 11, 16, 10, 11, 12, tzinfo=UTC)),
        ("2019-11-16T12:11:12.5+02:00", datetime(2019, 11, 16, 10, 11, 12, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps(text: str, expected: datetime) -> None:
    assert eventsub.parse_timestamp(text) == expected


# --- found by `make fuzz` (tests/fuzz): each raised something the webhook answered with 500 ---


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamps_that_leave_the_calendar_once_zoned_are_value_errors(stamp: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        eventsub.parse_timestamp(stamp)
    h = headers(**{eventsub.MESSAGE_TIMESTAMP: stamp})
    with pytest.raises(errors.ForgedDeliveryError, match="garbled timestamp"):
        eventsub.verify_delivery(h, BODY, [SECRET], NOW)


def test_timestamps_take_only_ascii_digits() -> None:
    fullwidth = STAMP[:4].translate(
        str.maketrans("0123456789", "".join(map(chr, range(0xFF10, 0xFF1A))))
    )
    with pytest.raises(ValueError, match="RFC 3339"):
        eventsub.parse_timestamp(fullwidth + STAMP[4:])


@pytest.mark.parametrize("retry", ["\u00b2", "\u0663", "9" * 5_000, "-1", " 2"])
def test_a_retry_header_int_cannot_read_counts_as_zero(retry: str) -> None:
    h = headers(**{eventsub.MESSAGE_RETRY: retry})
    assert eventsub.verify_delivery(h, BODY, [SECRET], NOW).retry == 0


def test_an_integer_past_pythons_digit_limit_is_malformed_not_a_crash() -> None:
    body = b'{"event": {"bits": ' + b"9" * 5_000 + b"}}"
    delivery = eventsub.verify_delivery(headers(body=body), body, [SECRET], NOW)
    with pytest.raises(errors.MalformedDeliveryError):
        delivery.json()
