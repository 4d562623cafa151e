"""The webhook's use case: verify, hand off, record, and say how to answer Twitch.

A delivery costs two round trips: the Cloud Task (named after the message id), then one
ledger write saying it is enqueued. A redelivery costs one more, a ledger read first.

The endpoint is public, so its unauthenticated path is rate limited per client IP: each
request failing signature verification takes a token from its IP's bucket, and an IP whose
bucket is empty is answered 429 (`admit`) before its body is read or any HMAC computed.
Authentic deliveries never take a token, so Twitch's own addresses, which send nothing but
authentic deliveries, are never refused; a genuine delivery arriving from an address that
is blocked is refused like anything else from there (it cannot be told apart without the
HMAC work the limit exists to avoid) and Twitch redelivers it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from controlroom.adapters.ledger import Entry, Ledger
from controlroom.adapters.taskqueue import Queue
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.errors import ForgedDeliveryError, RateLimitedError
from controlroom.logs import fields

if TYPE_CHECKING:
    from controlroom.adapters.ratelimit import SyncLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What the transport should send: a status, a body and its content type."""

    status: int
    body: bytes = b""
    content_type: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def admit(limiter: SyncLimiter | None, client: str) -> None:
    """RateLimitedError (429) when `client`'s bucket of failed signatures is empty: asked
    before the body is read, so a flood of forgeries costs no HMAC work."""
    if limiter is None:
        return
    decision = limiter.peek(client)
    if not decision.allowed:
        raise RateLimitedError(decision.retry_after, "too many deliveries failed verification")


def receive(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[bytes],
    ledger: Ledger,
    queue: Queue,
    clock: Callable[[], datetime] = _now,
    limiter: SyncLimiter | None = None,
    client: str = "unknown",
) -> Reply:
    """Handle one delivery. Errors of controlroom's own kinds propagate to the entrypoint's
    table (403/400/413/503); everything that returns is a success. A delivery failing its
    signature takes a token from `client`'s bucket in `limiter`."""
    received_at = clock()
    try:
        delivery = eventsub.verify_delivery(headers, body, secrets, received_at)
    except ForgedDeliveryError:
        if limiter is not None:
            limiter.check(client)
        raise
    context = fields(
        message_id=delivery.message_id,
        message_type=delivery.message_type,
        subscription_type=delivery.subscription_type,
        retry=delivery.retry,
    )
    if delivery.message_type == eventsub.VERIFICATION:
        log.info("subscription verification answered", extra=context)
        return Reply(200, eventsub.challenge(delivery), "text/plain")
    delivery.json()  # malformed JSON is refused here, not discovered by persist
    # A redelivery (Twitch counts its retries) asks the ledger first, which remembers an
    # enqueued message id for RETENTION; a first delivery skips that round trip, and a copy
    # of one is refused by the task's name (Cloud Tasks remembers it, ALREADY_EXISTS).
    if delivery.retry > 0 and ledger.enqueued(delivery.message_id):
        log.info("duplicate delivery acknowledged", extra=context)
        return Reply(204)
    created = queue.enqueue(PersistTask.from_delivery(delivery, received_at))
    # Recorded only once the task exists, so the ledger never says "enqueued" for a delivery
    # that is not: a failed enqueue leaves no entry and Twitch's retry is not refused.
    recorded = ledger.record(
        Entry(delivery.message_id, delivery.subscription_type, delivery.retry, received_at),
        clock(),
    )
    if created and recorded:
        log.info("delivery enqueued", extra=context)
    else:
        log.info("duplicate delivery acknowledged", extra=context)
    return Reply(204)
