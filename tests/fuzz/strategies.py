"""Hypothesis strategies for EventSub deliveries: arbitrary, structured, and mutated real ones."""

from __future__ import annotations

import inspect
import json
import math
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from controlroom.core import events, eventsub
from controlroom.dev import twitchsim
from tests.samples import load, message, sample_names

# digits that str.isdigit() and \d accept but RFC 3339 and int() may not
FULLWIDTH = "".join(chr(0xFF10 + i) for i in range(10))
ARABIC_INDIC = "".join(chr(0x0660 + i) for i in range(10))
SUPERSCRIPT_TWO = "\u00b2"

SECRET = b"s3cret-for-fuzzing-only"
OLD_SECRET = b"the-previous-fuzz-secret"
OTHER_SECRET = b"not-our-secret-at-all"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

HEADER_NAMES = (
    eventsub.MESSAGE_ID,
    eventsub.MESSAGE_RETRY,
    eventsub.MESSAGE_TYPE,
    eventsub.MESSAGE_SIGNATURE,
    eventsub.MESSAGE_TIMESTAMP,
    eventsub.SUBSCRIPTION_TYPE,
    eventsub.SUBSCRIPTION_VERSION,
)
SAMPLES = {name: load(name) for name in sample_names()}
MESSAGES = {
    name: json.loads(message(name)) for name in ("revocation", "webhook_callback_verification")
}

# --- small pieces ---------------------------------------------------------------------------


def huge(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """A long run of one character: cheap to generate, up to a few hundred kilobytes."""
    return st.builds(
        lambda c, n: c * n,
        st.characters() if alphabet is None else alphabet,
        st.integers(1_000, 300_000),
    )


any_text = st.one_of(st.text(), st.text(max_size=5), huge())
latin1_text = st.text(st.characters(max_codepoint=255))  # what WSGI can deliver in a header

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 2**31, 2**63, -(2**63) - 1]),
    st.sampled_from([10**300, 10**4000]),  # huge integers (JSON has no bound)
    st.text(),
    st.sampled_from(["", "0", "-1", SUPERSCRIPT_TWO, ARABIC_INDIC[3], FULLWIDTH[1:3], "--5"]),
    st.sampled_from([" 7 ", "1e3", "NaN", "null"]),
)
json_values = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=25,
)


def _casing(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase()]) | st.lists(
        st.booleans(), min_size=len(name), max_size=len(name)
    ).map(
        lambda flips: "".join(
            c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True)
        )
    )


header_names = st.sampled_from(HEADER_NAMES).flatmap(_casing) | st.text(max_size=40)

# --- timestamps in every format -------------------------------------------------------------

_datetimes = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
_near = st.integers(-3_600, 3_600).map(lambda s: NOW + timedelta(seconds=s))


def _formats(moment: datetime) -> st.SearchStrategy[str]:
    naive = moment.replace(tzinfo=None)
    base = naive.strftime("%Y-%m-%dT%H:%M:%S") if naive.year >= 1000 else naive.isoformat()[:19]
    return st.one_of(
        st.just(base + "Z"),
        st.integers(1, 12).map(lambda n: f"{base}.{'1' * n}Z"),  # up to 12 fraction digits
        st.sampled_from(["+00:00", "-00:00", "+01:00", "-23:59", "+99:99", "+14:00"]).map(
            lambda zone: base + zone
        ),
        st.just(moment.isoformat()),
        st.just(base),  # no zone
        st.just(base.replace("T", " ") + "Z"),
        st.just(base.lower() + "z"),
        st.just(str(int(moment.timestamp()))),  # epoch seconds
        st.just(moment.strftime("%a, %d %b %Y %H:%M:%S GMT")),  # RFC 7231
        st.just(base.translate(str.maketrans("0123456789", FULLWIDTH)) + "Z"),
        st.just(base.translate(str.maketrans("0123456789", ARABIC_INDIC)) + "Z"),
        st.just(" " + base + "Z\n"),
    )


timestamps = st.one_of(
    st.one_of(_near, _datetimes).flatmap(_formats),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",  # before year 1 once the zone is applied
            "9999-12-31T23:59:59-01:00",  # after year 9999 once the zone is applied
            "0000-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T11:59:60Z",
            "2026-11-24T11:59:58.Z",
            "",
            "yesterday",
        ]
    ),
    st.from_regex(eventsub._TIMESTAMP, fullmatch=True),
    any_text,
)

# --- bodies ---------------------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _set_path(document: Any, path: list[int], value: Any) -> Any:
    """Replace the node that `path` (indices into each level's keys) leads to."""
    if not path or not isinstance(document, (dict, list)) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(document) if isinstance(document, dict) else list(document)
    copy[key] = _set_path(document[key], path[1:], value)
    return copy


def _drop_path(document: Any, path: list[int]) -> Any:
    if not isinstance(document, dict) or not document or not path:
        return document
    keys = list(document)
    key = keys[path[0] % len(keys)]
    copy = dict(document)
    if len(path) == 1:
        del copy[key]
    else:
        copy[key] = _drop_path(document[key], path[1:])
    return copy


def _keys(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set(document).union(*(_keys(v) for v in document.values()))
    if isinstance(document, list):
        return set().union(*(_keys(v) for v in document))
    return set()


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# Twitch's reference samples, plus the simulator's body for every type it knows (poll.end...)
SIMULATED = [
    twitchsim.notification_body(t, twitchsim.Broadcaster("4242", "fuzzed"), random.Random(0))
    for t in sorted(twitchsim.BUILDERS)
]
envelopes = st.sampled_from([*SAMPLES.values(), *MESSAGES.values(), *SIMULATED])
# A dictionary, as AFL has one: the field names the builders read (taken from their source,
# so a new builder is fuzzed too), then every field name the samples carry.
_READS = re.compile(r'\.get\(\s*f?"(\w+)"')
READ_BY_TYPE = {
    sub_type: sorted(set(_READS.findall(inspect.getsource(builder))))
    for sub_type, builder in events._BUILDERS.items()
}
READ_FIELDS = sorted(set(_READS.findall(inspect.getsource(events))))
ALL_FIELDS = sorted(_keys([*SAMPLES.values(), *MESSAGES.values()]))
# the values that break lenient parsers: numbers in text, wrong containers, non-finite floats
NASTY = st.sampled_from(
    [
        *(SUPERSCRIPT_TWO, ARABIC_INDIC[3], FULLWIDTH[1:3], "--5", "-", " ", "1e3", "0x1f"),
        *("9" * 30, "NaN", "Infinity", "true", "", None, True, False, 0, -1, 5),
        *(math.nan, math.inf, -math.inf, 1e308, 2**31, 2**63, -(2**63) - 1, 10**30),
        *([], {}, [1, "a", None], {"text": 5}, {"id": []}),
    ]
)


def _field_names(sub_type: Any) -> st.SearchStrategy[str]:
    """Mostly the fields this type's builder reads, sometimes any field anyone reads."""
    own = READ_BY_TYPE.get(sub_type) if isinstance(sub_type, str) else None
    names = st.sampled_from(READ_FIELDS) | st.sampled_from(ALL_FIELDS)
    return st.sampled_from(own) | st.sampled_from(own) | names if own else names


_paths = st.lists(st.integers(0, 50), min_size=1, max_size=5)


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A real sample with a few fields replaced by values of any type, or removed."""
    document: Any = draw(envelopes)
    for _ in range(draw(st.integers(1, 6))):
        if not isinstance(document, dict):
            document = {"subscription": document}
        action = draw(st.sampled_from(["field"] * 4 + ["set", "drop", "type", "batch"]))
        if action == "field" and isinstance(document.get("event"), dict):
            sub_type = _d(document.get("subscription")).get("type")
            event = {**document["event"], draw(_field_names(sub_type)): draw(NASTY | json_values)}
            document = {**document, "event": event}
        elif action == "set":
            document = _set_path(document, draw(_paths), draw(json_values))
        elif action == "drop":
            document = _drop_path(document, draw(_paths))
        elif action == "type" and isinstance(document.get("subscription"), dict):
            # another type's builder reading this type's event: fields of the wrong shape
            subscription = dict(document["subscription"])
            subscription["type"] = draw(
                st.sampled_from(sorted(events._BUILDERS)) | st.text(max_size=30)
            )
            subscription["version"] = draw(st.sampled_from(["1", "2", "9"]) | json_values)
            document = {**document, "subscription": subscription}
        elif action == "batch" and "event" in document:
            document = {k: v for k, v in document.items() if k != "event"}
            document["events"] = draw(
                st.lists(st.just(draw(envelopes).get("event")) | json_values, max_size=4)
            )
    if not isinstance(document, dict):
        document = {"subscription": document}
    return dict(document)


bodies = st.one_of(
    st.binary(max_size=2_000),
    st.integers(eventsub.MAX_BODY_BYTES - 2, eventsub.MAX_BODY_BYTES + 2).map(
        lambda n: b"{" + b" " * (n - 2) + b"}"  # either side of the size limit
    ),
    json_values.map(_dump),
    mutated_envelopes().map(_dump),
    envelopes.map(_dump),
    st.integers(1, 100_000).map(_nested),
    st.integers(1, 100_000).map(lambda n: b"[" * n),
    huge(st.sampled_from("a\x00\u2028\ud7ff")).map(lambda s: _dump({"challenge": s})),
    st.sampled_from(
        [
            b'{"challenge": NaN}',
            b'{"event": Infinity}',
            b'{"subscription": -Infinity}',
            b'{"a": 1' + b"1" * 5_000 + b"}",  # an integer Python will not convert
            b"\xef\xbb\xbf{}",  # a byte-order mark
            '{"challenge":"x"}'.encode("utf-16"),
            b'{"challenge":"\\ud800"}',
            b"",
        ]
    ),
)

# --- whole deliveries -----------------------------------------------------------------------


@st.composite
def arbitrary_headers(draw: st.DrawFn) -> dict[str, str]:
    """Headers of any shape: names in any case, missing, duplicated in another case, huge."""
    headers = draw(st.dictionaries(header_names, latin1_text | any_text, max_size=12))
    if draw(st.booleans()):
        name = draw(st.sampled_from(HEADER_NAMES))
        a, b = draw(st.text(max_size=70)), draw(st.text(max_size=70))
        headers[name] = a
        headers[name.lower()] = b  # the same header twice, in two spellings
        if draw(st.booleans()):
            headers[name] = f"{a}, {b}"  # what a server makes of a repeated header
    return headers


@st.composite
def signed_deliveries(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Deliveries that carry a signature of their own headers and body (by us or another)."""
    body = draw(bodies)
    message_id = draw(
        st.from_regex(eventsub._MESSAGE_ID, fullmatch=True) | st.uuids().map(str) | latin1_text
    )
    stamp = draw(_near.flatmap(_formats) | timestamps)
    secret = draw(st.sampled_from([SECRET, SECRET, OLD_SECRET, OTHER_SECRET]))
    signature = eventsub.sign(secret, message_id, stamp, body)
    headers = {
        eventsub.MESSAGE_ID: message_id,
        eventsub.MESSAGE_TIMESTAMP: stamp,
        eventsub.MESSAGE_SIGNATURE: signature,
        eventsub.MESSAGE_TYPE: draw(st.sampled_from(sorted(eventsub.MESSAGE_TYPES)) | any_text),
        eventsub.MESSAGE_RETRY: draw(
            st.sampled_from(["0", "1", SUPERSCRIPT_TWO, ARABIC_INDIC, "9" * 5_000, "-1", ""])
            | any_text
        ),
        eventsub.SUBSCRIPTION_TYPE: draw(st.sampled_from(sorted(SAMPLES)) | any_text),
        eventsub.SUBSCRIPTION_VERSION: draw(st.sampled_from(["1", "2"]) | any_text),
    }
    for name in draw(st.sets(st.sampled_from(HEADER_NAMES), max_size=2)):
        headers[draw(_casing(name))] = headers.pop(name)
    return headers, body
