"""eventsub under fuzzing: only documented errors, and no delivery accepted unless we signed it."""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlroom import errors
from controlroom.core import eventsub
from tests.fuzz.budget import Counter, run_for_budget
from tests.fuzz.strategies import (
    NOW,
    OLD_SECRET,
    OTHER_SECRET,
    SECRET,
    arbitrary_headers,
    bodies,
    envelopes,
    mutated_envelopes,
    signed_deliveries,
    timestamps,
)

pytestmark = pytest.mark.budgeted
SECRETS = [SECRET, OLD_SECRET]
DOCUMENTED = (
    errors.ForgedDeliveryError,
    errors.MalformedDeliveryError,
    errors.DeliveryTooLargeError,
)


def _header(headers: dict[str, str], name: str) -> str | None:
    return eventsub._header(headers, name)


def _check_accepted(delivery: eventsub.Delivery, headers: dict[str, str], body: bytes) -> None:
    """An accepted delivery was signed with one of our secrets, inside the window."""
    signature = (_header(headers, eventsub.MESSAGE_SIGNATURE) or "").strip()
    genuine = [
        eventsub.sign(s, delivery.message_id, delivery.timestamp_header, body) for s in SECRETS
    ]
    assert any(hmac.compare_digest(signature, g) for g in genuine), "accepted a forgery"
    assert NOW - eventsub.MAX_AGE <= delivery.timestamp <= NOW + eventsub.MAX_SKEW
    assert delivery.message_type in eventsub.MESSAGE_TYPES
    assert delivery.body == body and delivery.retry >= 0
    # what the receiver does next with an accepted delivery: only documented errors again
    try:
        assert isinstance(delivery.json(), dict)
        if delivery.message_type == eventsub.VERIFICATION:
            assert eventsub.challenge(delivery)
    except errors.MalformedDeliveryError:
        pass


def _verify(headers: dict[str, str], body: bytes) -> None:
    try:
        delivery = eventsub.verify_delivery(headers, body, SECRETS, NOW)
    except DOCUMENTED:
        return
    _check_accepted(delivery, headers, body)


def test_parse_timestamp_returns_an_aware_moment_or_value_error() -> None:
    seen = Counter()

    @given(timestamps)
    def prop(text: str) -> None:
        seen()
        try:
            moment = eventsub.parse_timestamp(text)
        except ValueError:
            return
        assert isinstance(moment, datetime) and moment.utcoffset() == timedelta(0)

    run_for_budget("eventsub.parse_timestamp", prop, seen)


def test_arbitrary_deliveries_raise_only_documented_errors() -> None:
    seen = Counter()

    @given(arbitrary_headers(), bodies)
    def prop(headers: dict[str, str], body: bytes) -> None:
        seen()
        _verify(headers, body)

    run_for_budget("verify_delivery: arbitrary headers and bodies", prop, seen)


def test_signed_deliveries_of_any_shape_raise_only_documented_errors() -> None:
    seen = Counter()

    @given(signed_deliveries())
    def prop(delivery: tuple[dict[str, str], bytes]) -> None:
        seen()
        headers, body = delivery
        _verify(headers, body)

    run_for_budget("verify_delivery: signed, any shape", prop, seen)


# --- no accepted forgery: mutate a genuine delivery, it must be refused ---------------------

_genuine_bodies = st.one_of(
    envelopes.map(lambda d: json.dumps(d).encode()),
    mutated_envelopes().map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=300),
)
_stamps = st.integers(-500, 100).map(lambda s: NOW + timedelta(seconds=s))


def _stamp(moment: datetime, digits: int) -> str:
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{moment.microsecond:06d}{'0' * digits}Z" if digits else base + "Z"


@st.composite
def genuine_and_forged(
    draw: st.DrawFn,
) -> tuple[dict[str, str], bytes, dict[str, str], bytes, str]:
    body = draw(_genuine_bodies)
    message_id = draw(st.uuids().map(str))
    stamp = _stamp(draw(_stamps), draw(st.integers(0, 3)))
    headers = {
        eventsub.MESSAGE_ID: message_id,
        eventsub.MESSAGE_TIMESTAMP: stamp,
        eventsub.MESSAGE_TYPE: eventsub.NOTIFICATION,
        eventsub.MESSAGE_SIGNATURE: eventsub.sign(
            draw(st.sampled_from(SECRETS)), message_id, stamp, body
        ),
    }
    forged, fbody = dict(headers), body
    how = draw(
        st.sampled_from(
            [
                "body-byte",
                "body-append",
                "body-truncate",
                "body-replace",
                "id",
                "timestamp",
                "signature-byte",
                "signature-other-secret",
                "boundary-id-timestamp",
                "boundary-timestamp-body",
                "header-duplicate",
            ]
        )
    )
    if how == "body-byte" and body:
        i = draw(st.integers(0, len(body) - 1))
        flip = draw(st.integers(1, 255))
        fbody = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    elif how == "body-append":
        fbody = body + draw(st.binary(min_size=1, max_size=20))
    elif how == "body-truncate" and body:
        fbody = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "body-replace":
        fbody = draw(bodies.filter(lambda b: b != body))
    elif how == "id":
        forged[eventsub.MESSAGE_ID] = draw(
            st.from_regex(eventsub._MESSAGE_ID, fullmatch=True).filter(lambda m: m != message_id)
        )
    elif how == "timestamp":
        forged[eventsub.MESSAGE_TIMESTAMP] = draw(
            st.one_of(
                _stamps.map(lambda m: _stamp(m, 0)),
                timestamps,
                st.just(stamp.replace("Z", "+00:00")),
                st.just(stamp.lower()),
            ).filter(lambda t: t != stamp)
        )
    elif how == "signature-byte":
        hexdigits = forged[eventsub.MESSAGE_SIGNATURE][7:]
        i = draw(st.integers(0, 63))
        other = draw(st.sampled_from("0123456789abcdefABCDEF").filter(lambda c: c != hexdigits[i]))
        forged[eventsub.MESSAGE_SIGNATURE] = "sha256=" + hexdigits[:i] + other + hexdigits[i + 1 :]
    elif how == "signature-other-secret":
        forged[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(OTHER_SECRET, message_id, stamp, body)
    elif how == "boundary-id-timestamp":
        # move characters across the id/timestamp boundary: the same signed bytes
        k = draw(st.integers(1, 4))
        forged[eventsub.MESSAGE_ID] = message_id + stamp[:k]
        forged[eventsub.MESSAGE_TIMESTAMP] = stamp[k:]
    elif how == "boundary-timestamp-body":
        k = draw(st.integers(1, 4))
        forged[eventsub.MESSAGE_TIMESTAMP] = stamp[:-k]
        fbody = stamp[-k:].encode() + body
    elif how == "header-duplicate":
        # a second, lower-case spelling that carries a forged value
        name = draw(st.sampled_from([eventsub.MESSAGE_ID, eventsub.MESSAGE_TIMESTAMP]))
        forged[name.lower()] = "forged-" + forged[name]
        forged[eventsub.MESSAGE_SIGNATURE] = "sha256=" + "0" * 64
    return headers, body, forged, fbody, how


def test_mutated_genuine_deliveries_are_refused() -> None:
    seen = Counter()

    @given(genuine_and_forged())
    def prop(case: tuple[dict[str, str], bytes, dict[str, str], bytes, str]) -> None:
        seen()
        headers, body, forged, fbody, how = case
        accepted = eventsub.verify_delivery(headers, body, SECRETS, NOW)  # the genuine one
        assert accepted.body == body
        if (forged, fbody) == (headers, body):
            return  # the mutation had nothing to change (an empty body)
        with pytest.raises(DOCUMENTED) as refused:
            eventsub.verify_delivery(forged, fbody, SECRETS, NOW)
        assert not isinstance(refused.value, errors.MalformedDeliveryError), how

    run_for_budget("verify_delivery: mutated genuine deliveries", prop, seen)
