"""The incident API's request shapes (realtime/schemas.py) and its publisher bridge: what is
refused before a use case runs, and an emit from a worker thread landing on the event loop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from realtime.incidents import _OnLoop
from realtime.schemas import AssigneeIn, ChannelIn, ChannelPatch, QuietHours, RuleIn

CHANNEL = {"kind": "slack", "name": "ops", "url": "https://hooks.slack.com/services/T/B/x"}


def test_quiet_hours_take_clock_times_and_an_iana_zone() -> None:
    quiet = QuietHours(start="22:00", end="07:00", timezone="Europe/Berlin")
    assert (quiet.start, quiet.end, quiet.timezone) == ("22:00", "07:00", "Europe/Berlin")
    assert QuietHours.model_validate({"start": "00:00", "end": "23:59"}).timezone == "UTC"
    for bad in (
        {"start": "24:00", "end": "07:00"},
        {"start": "7:00", "end": "08:00"},
        {"start": "22:00", "end": "22:00"},
        {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"},
        {"start": "22:00", "end": "07:00", "timezone": "localtime"},
        {"start": "22:00", "end": "07:00", "timezone": "../../etc/passwd"},
        {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin\x00"},
        {"start": "22:00", "end": "07:00", "extra": True},
    ):
        with pytest.raises(ValidationError):
            QuietHours.model_validate(bad)


def test_a_channel_has_a_kind_a_name_and_a_bounded_url() -> None:
    channel = ChannelIn.model_validate(CHANNEL)
    assert (channel.min_severity, channel.enabled, channel.quiet_hours) == ("warning", True, None)
    for bad in (
        {"kind": "email"},
        {"name": ""},
        {"name": "x" * 101},
        {"url": "https://hooks.slack.com/" + "a" * 500},
        {"url": "hooks.slack.com/services/T/B/x"},
        {"url": "https://hooks.slack.com/a b"},
        {"mention": "m" * 101},
        {"min_severity": "loud"},
        {"name": "nul\x00"},
        {"secret": ""},
        {"url_hint": "mine"},
    ):
        with pytest.raises(ValidationError):
            ChannelIn.model_validate({**CHANNEL, **bad})


def test_a_patch_clears_quiet_hours_or_mention_but_nothing_required() -> None:
    assert ChannelPatch.model_validate({"quiet_hours": None, "mention": None}).model_fields_set == {
        "quiet_hours",
        "mention",
    }
    assert ChannelPatch.model_validate({}).model_fields_set == set()
    for field in ("name", "url", "min_severity", "enabled"):
        with pytest.raises(ValidationError, match="cannot be null"):
            ChannelPatch.model_validate({field: None})


def test_rule_params_are_finite_numbers_by_name() -> None:
    rule = RuleIn(enabled=True, severity="critical", params={"drop_percent": 30})
    assert rule.params == {"drop_percent": 30}
    for bad in (
        {"params": {"drop_percent": float("nan")}},
        {"params": {"drop_percent": float("inf")}},
        {"params": {"drop_percent": "many"}},
        {"params": {"": 1}},
        {"params": {f"p{i}": i for i in range(21)}},
        {"severity": "fatal"},
        {"enabled": "yes please"},
    ):
        with pytest.raises(ValidationError):
            RuleIn.model_validate({"enabled": True, "severity": "info", "params": {}, **bad})


def test_an_assignee_is_a_uuid_or_an_explicit_null() -> None:
    user = uuid.uuid4()
    assert AssigneeIn.model_validate({"user_id": str(user)}).user_id == user
    assert AssigneeIn(user_id=None).user_id is None
    for bad in ({}, {"user_id": "nope"}, {"user_id": 7}):
        with pytest.raises(ValidationError):
            AssigneeIn.model_validate(bad)


def test_the_publisher_bridge_emits_on_the_loop_from_a_worker_thread() -> None:
    sent: list[tuple[uuid.UUID, str, Any, bool]] = []

    async def emit(company: uuid.UUID, name: str, data: dict[str, Any]) -> None:
        on_loop_thread = threading.current_thread() is threading.main_thread()
        sent.append((company, name, data, on_loop_thread))

    async def scenario() -> None:
        publisher = _OnLoop(emit, asyncio.get_running_loop())
        company = uuid.uuid4()
        await asyncio.to_thread(publisher.publish, str(company), "incident", {"number": 1})
        assert sent == [(company, "incident", {"number": 1}, True)]

    asyncio.run(scenario())
