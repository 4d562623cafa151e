"""The one table from errors to HTTP answers, for the four functions (through
`controlroom.entrypoint`) and the REST API's exception handlers alike.

Expected errors are answered with their row's status and code and logged once as
`request refused` (with `cause`, the row's entry, and `exception`, the precise type: what an
alert groups by). Anything else is logged once with its traceback and answered with a
generic 500: no stack trace, secret or tenant data ever reaches a caller.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import psycopg

from controlroom import errors

# error type -> (status, code, detail for everyone, or None for the error's own detail);
# the first match in order wins, so specific rows stand before their base classes
_TABLE: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (errors.ForgedDeliveryError, 403, "forbidden", None),
    (errors.DeliveryTooLargeError, 413, "payload_too_large", None),
    (errors.MalformedDeliveryError, 400, "bad_request", None),
    (errors.LedgerUnavailableError, 503, "unavailable", None),
    (errors.QueueUnavailableError, 503, "unavailable", None),
    (errors.StoreUnavailableError, 503, "unavailable", None),
    (errors.RetryLaterError, 503, "unavailable", None),
    (errors.BadRequestError, 400, "bad_request", None),
    (errors.UnauthorizedError, 401, "unauthorized", None),
    (errors.AuthError, 401, "unauthorized", None),
    (errors.SuspendedError, 403, "suspended", None),
    (errors.ForbiddenError, 403, "forbidden", None),
    (errors.NotFoundError, 404, "not_found", None),
    (errors.ConflictError, 409, "conflict", None),
    (errors.GoneError, 410, "gone", None),
    (errors.TooLargeError, 413, "too_large", None),
    (errors.InvalidError, 422, "invalid", None),
    (errors.UnavailableError, 503, "unavailable", None),
    (errors.RateLimitedError, 429, "rate_limited", None),  # with Retry-After (Answer.headers)
    (psycopg.DataError, 422, "invalid", "a value cannot be stored"),
    # PoolTimeout is an OperationalError: no connection could be had in time
    (psycopg.OperationalError, 503, "unavailable", "try again shortly"),
)


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    detail: str | None
    headers: tuple[tuple[str, str], ...] = ()  # Retry-After for a 429


def answer(exc: BaseException, log: logging.Logger) -> Answer:
    """The answer for an error; logged once, unexpected ones with their traceback."""
    for kind, status, code, detail in _TABLE:
        if isinstance(exc, kind):
            log.warning(
                "request refused",
                extra={
                    "fields": {
                        "status": status,
                        "error": code,
                        "cause": kind.__name__,
                        "exception": type(exc).__name__,
                    }
                },
            )
            own = exc.detail if isinstance(exc, errors.ControlRoomError) else None
            return Answer(status, code, detail if detail is not None else own, headers_for(exc))
    if isinstance(exc, errors.SettingsError):
        log.error("misconfigured: %s", exc)
    else:
        log.error("unexpected error", exc_info=exc)
    return Answer(500, "internal", None)


def headers_for(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """The headers an error's answer carries besides its body: Retry-After for a 429."""
    if isinstance(exc, errors.RateLimitedError):
        return (("Retry-After", str(exc.retry_after)),)
    return ()


def to_http(exc: BaseException, log: logging.Logger) -> tuple[int, bytes]:
    """A function's answer: status and a JSON body with the code only."""
    found = answer(exc, log)
    return found.status, json.dumps({"error": found.code}).encode()
