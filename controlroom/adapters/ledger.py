"""The webhook's delivery ledger in Firestore: message id -> received / enqueued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from controlroom.errors import LedgerUnavailableError

RECEIVED = "received"
ENQUEUED = "enqueued"
# Twitch redelivers for a while; after this the entry may go (Firestore TTL on `expires_at`).
RETENTION = timedelta(days=3)


# The edge must answer within seconds: retry briefly, then let Twitch redeliver.
_RETRY = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=2.0)
_TIMEOUT = 2.0


@dataclass(frozen=True)
class Entry:
    message_id: str
    subscription_type: str
    retry: int
    received_at: datetime


class Ledger(Protocol):
    def claim(self, entry: Entry) -> str:
        """Record a first sighting; return the state now on record (RECEIVED or ENQUEUED)."""

    def mark_enqueued(self, message_id: str, at: datetime) -> None: ...


class FirestoreLedger:
    """One document per message id in `collection`; create() makes the first sighting atomic."""

    def __init__(self, client: Any, collection: str = "eventsub_deliveries") -> None:
        self._collection = client.collection(collection)

    def claim(self, entry: Entry) -> str:
        doc = self._collection.document(entry.message_id)
        try:
            doc.create(
                {
                    "state": RECEIVED,
                    "subscription_type": entry.subscription_type,
                    "retry": entry.retry,
                    "received_at": entry.received_at,
                    "expires_at": entry.received_at + RETENTION,
                },
                retry=_RETRY,
                timeout=_TIMEOUT,
            )
        except gexc.Conflict:
            try:
                snapshot = doc.get(retry=_RETRY, timeout=_TIMEOUT)
            except gexc.GoogleAPIError as exc:
                raise LedgerUnavailableError(str(type(exc).__name__)) from exc
            data = snapshot.to_dict() or {}
            return ENQUEUED if data.get("state") == ENQUEUED else RECEIVED
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailableError(str(type(exc).__name__)) from exc
        return RECEIVED

    def mark_enqueued(self, message_id: str, at: datetime) -> None:
        try:
            self._collection.document(message_id).update(
                {"state": ENQUEUED, "enqueued_at": at}, retry=_RETRY, timeout=_TIMEOUT
            )
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailableError(str(type(exc).__name__)) from exc
