"""The one table from controlroom's errors to HTTP answers; nothing else leaks out."""

from __future__ import annotations

import json
import logging

import psycopg

from controlroom import eventsub
from controlroom.ingest import StoreUnavailableError
from controlroom.ledger import LedgerUnavailableError
from controlroom.settings import SettingsError
from controlroom.taskqueue import QueueUnavailableError

# error type -> (status, code); the first match in order wins
_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (eventsub.ForgedDeliveryError, 403, "forbidden"),
    (eventsub.DeliveryTooLargeError, 413, "payload_too_large"),
    (eventsub.MalformedDeliveryError, 400, "bad_request"),
    (LedgerUnavailableError, 503, "unavailable"),
    (QueueUnavailableError, 503, "unavailable"),
    (StoreUnavailableError, 503, "unavailable"),
    (psycopg.OperationalError, 503, "unavailable"),
)


def to_http(exc: BaseException, log: logging.Logger) -> tuple[int, bytes]:
    """Status and JSON body for an error; unexpected ones are logged with a traceback once."""
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            # `cause` is the table's entry (the dependency or check that refused): what an
            # alert groups by; `exception` the precise type (PoolTimeout is an OperationalError)
            cause, exception = kind.__name__, type(exc).__name__
            log.warning(
                "request refused",
                extra={
                    "fields": {
                        "status": status,
                        "error": code,
                        "cause": cause,
                        "exception": exception,
                    }
                },
            )
            return status, json.dumps({"error": code}).encode()
    if isinstance(exc, SettingsError):
        log.error("misconfigured: %s", exc)
    else:
        log.error("unexpected error", exc_info=exc)
    return 500, json.dumps({"error": "internal"}).encode()
