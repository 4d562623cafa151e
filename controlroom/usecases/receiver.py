"""The webhook's use case: verify, record, hand off, and say how to answer Twitch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controlroom.adapters.ledger import ENQUEUED, Entry, Ledger
from controlroom.adapters.taskqueue import Queue
from controlroom.core import eventsub
from controlroom.core.handoff import PersistTask
from controlroom.logs import fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What the transport should send: a status, a body and its content type."""

    status: int
    body: bytes = b""
    content_type: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def receive(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[bytes],
    ledger: Ledger,
    queue: Queue,
    clock: Callable[[], datetime] = _now,
) -> Reply:
    """Handle one delivery. Errors of controlroom's own kinds propagate to the entrypoint's
    table (403/400/413/503); everything that returns is a success."""
    received_at = clock()
    delivery = eventsub.verify_delivery(headers, body, secrets, received_at)
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
    state = ledger.claim(
        Entry(delivery.message_id, delivery.subscription_type, delivery.retry, received_at)
    )
    if state == ENQUEUED:
        log.info("duplicate delivery acknowledged", extra=context)
        return Reply(204)
    queue.enqueue(PersistTask.from_delivery(delivery, received_at))
    ledger.mark_enqueued(delivery.message_id, clock())
    log.info("delivery enqueued", extra=context)
    return Reply(204)
