from __future__ import annotations

import io
import json
import logging

from controlroom import logs


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logs.configure("DEBUG", stream)
    return logging.getLogger("test.logs"), stream


def test_json_lines_with_severity_and_fields() -> None:
    log, stream = _capture()
    log.warning("publish skipped", extra=logs.fields(company_id="c-1", message_id="m-1"))
    entry = json.loads(stream.getvalue().strip())
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "publish skipped"
    assert entry["company_id"] == "c-1"
    assert entry["message_id"] == "m-1"
    assert entry["logger"] == "test.logs"


def test_secrets_and_bodies_are_redacted() -> None:
    log, stream = _capture()
    log.info(
        "x",
        extra=logs.fields(
            password="pw",
            eventsub_secret="s",
            raw_body=b"{}",
            signature="sha256=1",
            token="t",
            subscription_type="stream.online",
        ),
    )
    entry = json.loads(stream.getvalue())
    for key in ("password", "eventsub_secret", "raw_body", "signature", "token"):
        assert entry[key] == "[redacted]"
    assert entry["subscription_type"] == "stream.online"


def test_exceptions_carry_a_stack_trace_in_the_log_only() -> None:
    log, stream = _capture()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("unexpected")
    entry = json.loads(stream.getvalue())
    assert entry["severity"] == "ERROR"
    assert "RuntimeError: boom" in entry["stack_trace"]


def test_configure_is_idempotent() -> None:
    logs.configure("INFO", io.StringIO())
    logs.configure("INFO", io.StringIO())
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_controlroom", False)]
    assert len(ours) == 1
