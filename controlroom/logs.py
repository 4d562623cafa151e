"""JSON-line logging that Cloud Logging understands, with secrets kept out of it."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

# Cloud Logging reads `severity`; Python's level names map onto its scale.
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}

# Field names whose values are never written, whatever a caller passes.
_REDACTED_KEYS = frozenset(
    {"password", "secret", "token", "signature", "authorization", "body", "raw_body", "payload"}
)


def _redact(fields: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        lowered = key.lower()
        if any(marker in lowered for marker in _REDACTED_KEYS):
            clean[key] = "[redacted]"
        else:
            clean[key] = value
    return clean


class JsonFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, logger and structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(_redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route the root logger to stderr as JSON lines (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_controlroom", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._controlroom = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def fields(**values: Any) -> dict[str, Any]:
    """Structured fields for a log call: ``log.info("stored", extra=fields(company_id=...))``."""
    return {"fields": values}
