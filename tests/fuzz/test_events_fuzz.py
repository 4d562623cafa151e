"""The normalizers under fuzzing: mutated real samples normalize or are refused as poison."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlroom import errors
from controlroom.core import events
from tests.fuzz.budget import Counter, run_for_budget
from tests.fuzz.strategies import MESSAGES, NOW, json_values, mutated_envelopes

pytestmark = pytest.mark.budgeted
# what each summary column can hold once persist stores it
_INT_BOUNDS = {"bigint": 2**63, "integer": 2**31}
_sent = st.just(NOW) | st.datetimes(timezones=st.just(NOW.tzinfo))  # type: ignore[arg-type]


def _check(event: events.Normalized) -> None:
    assert isinstance(event.broadcaster_user_id, str) and event.broadcaster_user_id
    assert isinstance(event.occurred_at, datetime) and event.occurred_at.tzinfo is not None
    assert event.topic in {*events.TOPICS, "other"}
    assert set(event.summary) <= set(events.SUMMARY_COLUMNS)
    for column, value in event.summary.items():
        kind = events.COLUMN_TYPES.get(column)
        if kind in _INT_BOUNDS:
            assert type(value) is int, (column, value)
            assert -_INT_BOUNDS[kind] <= value < _INT_BOUNDS[kind], (column, value)
        else:
            assert isinstance(value, str), (column, value)


def test_mutated_notifications_normalize_or_are_refused() -> None:
    seen = Counter()

    @given(mutated_envelopes(), _sent)
    def prop(body: dict[str, Any], sent_at: datetime) -> None:
        seen()
        try:
            normalized = events.normalize_notification(body, sent_at)
        except errors.NormalizationError:
            return
        for event in normalized:
            _check(event)

    run_for_budget("events.normalize_notification", prop, seen)


def test_mutated_revocations_normalize_or_are_refused() -> None:
    seen = Counter()
    revocation = MESSAGES["revocation"]

    @given(
        st.one_of(
            mutated_envelopes(),
            st.builds(
                lambda sub, value: {**revocation, "subscription": {**sub, "condition": value}},
                st.just(revocation["subscription"]),
                json_values,
            ),
        ),
        _sent,
    )
    def prop(body: dict[str, Any], sent_at: datetime) -> None:
        seen()
        try:
            event = events.normalize_revocation(body, sent_at)
        except errors.NormalizationError:
            return
        _check(event)

    run_for_budget("events.normalize_revocation", prop, seen)
