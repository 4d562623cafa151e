"""The task that carries a verified delivery from the webhook to persist (one contract)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from controlroom.core.eventsub import Delivery, parse_timestamp
from controlroom.errors import HandoffError

SCHEMA = 1


@dataclass(frozen=True)
class PersistTask:
    message_id: str
    message_type: str
    subscription_type: str
    subscription_version: str
    timestamp: str
    retry: int
    received_at: str
    body: bytes

    @classmethod
    def from_delivery(cls, delivery: Delivery, received_at: datetime) -> PersistTask:
        return cls(
            message_id=delivery.message_id,
            message_type=delivery.message_type,
            subscription_type=delivery.subscription_type,
            subscription_version=delivery.subscription_version,
            timestamp=delivery.timestamp_header,
            retry=delivery.retry,
            received_at=received_at.isoformat(),
            body=delivery.body,
        )

    def task_id(self) -> str:
        """A task name from a hash of the message id: no shared prefixes, same id same name."""
        return hashlib.sha256(self.message_id.encode()).hexdigest()[:40]

    def encode(self) -> bytes:
        fields = asdict(self)
        fields["body"] = base64.b64encode(self.body).decode("ascii")
        return json.dumps({"schema": SCHEMA, **fields}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> PersistTask:
        try:
            data: dict[str, Any] = json.loads(raw)
            if data.pop("schema", None) != SCHEMA:
                raise HandoffError("unknown task schema")
            data["body"] = base64.b64decode(data["body"], validate=True)
            task = cls(**data)
            parse_timestamp(task.timestamp)
            datetime.fromisoformat(task.received_at)
        except HandoffError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise HandoffError(f"not a persist task: {type(exc).__name__}") from None
        return task

    def occurred(self) -> datetime:
        return parse_timestamp(self.timestamp)

    def received(self) -> datetime:
        return datetime.fromisoformat(self.received_at)
