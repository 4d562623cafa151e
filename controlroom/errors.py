"""Every error controlroom raises on purpose, and nothing of HTTP: `controlroom.edge` holds
the one table that turns them into answers. A new error is one class here and one row there.

`detail` is written for the caller: safe to show, never a secret or another tenant's data.
"""

from __future__ import annotations


class ControlRoomError(Exception):
    """An expected failure, with a short reason for the caller."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


# --- what a caller asked for cannot be done as asked -------------------------------------
class BadRequestError(ControlRoomError):
    """The request contradicts itself (two cursors at once, say)."""


class InvalidError(ControlRoomError):
    """A value is out of range, malformed, or cannot be stored."""


class UnauthorizedError(ControlRoomError):
    """No usable credentials."""


class ForbiddenError(ControlRoomError):
    """The caller's role does not allow it."""


class SuspendedError(ForbiddenError):
    """The company is suspended or being deleted: its people cannot act in it."""


class NotFoundError(ControlRoomError):
    """No such thing; also for rows of another company, whose existence must not leak."""


class ConflictError(ControlRoomError):
    """The request clashes with what is stored (a duplicate, the last owner, ...)."""


class GoneError(ControlRoomError):
    """It existed but can no longer be used: an expired, used or revoked invitation."""


class TooLargeError(ControlRoomError):
    """A request body or an upload is over its limit."""


class UnavailableError(ControlRoomError):
    """A dependency refused or timed out: the same request may succeed later."""


class RateLimitedError(ControlRoomError):
    """Too many requests from this client or person: retry after `retry_after` seconds."""

    def __init__(self, retry_after: int, detail: str = "too many requests; retry later") -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


# --- tokens and tenants ------------------------------------------------------------------
class AuthError(ControlRoomError):
    """A token we refuse; the message is a short reason safe to show the client."""


class TenantError(ControlRoomError, ValueError):
    """The company id given for a tenant transaction is not a UUID."""


# --- Twitch's EventSub edge and the ingest path ------------------------------------------
class DeliveryError(ControlRoomError):
    """A delivery we refuse; subclasses say how the edge answers it."""


class ForgedDeliveryError(DeliveryError):
    """Missing or garbled headers, a bad signature, or a timestamp outside the window."""


class MalformedDeliveryError(DeliveryError):
    """Authentic but unusable: not JSON, or an unknown message type."""


class DeliveryTooLargeError(DeliveryError):
    """The body exceeds the webhook's size limit."""


class HandoffError(ControlRoomError, ValueError):
    """A task body that is not a persist task of this schema."""


class NormalizationError(ControlRoomError, ValueError):
    """The notification names no broadcaster we could route it by."""


# --- dependencies ------------------------------------------------------------------------
class LedgerUnavailableError(UnavailableError):
    """Firestore could not be reached or refused the call."""


class QueueUnavailableError(UnavailableError):
    """Cloud Tasks could not take the task, so Twitch must redeliver."""


class StoreUnavailableError(UnavailableError):
    """PostgreSQL could not be reached or failed mid-way: retry the task later."""


class PublishError(ControlRoomError):
    """Redis did not take the message (the manager logs the cause)."""


class HelixError(ControlRoomError):
    """Twitch answered with an error we do not handle here."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Helix {status}: {message}")
        self.status = status


class RetryLaterError(HelixError):
    """Rate limited (429) or Twitch unavailable (5xx, network): try the whole run again later."""


class SubscriptionExistsError(HelixError):
    """409: the subscription exists already."""


class ArchiveError(ControlRoomError):
    """A company-day could not be exported or verified; it is retried on the next run."""


class SettingsError(ControlRoomError):
    """A required variable is missing or malformed; the message names the variable."""


# --- notifications -----------------------------------------------------------------------
class SealError(ControlRoomError):
    """A sealed channel secret does not open: unknown key id, another row's value, tampering."""


class NotificationRetryError(UnavailableError):
    """The channel's endpoint failed (5xx, network, a long 429): the notify task is retried."""
