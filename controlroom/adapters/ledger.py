"""The webhook's delivery ledger in Firestore: one document per message id, written once the
delivery's task is in Cloud Tasks.

The ledger is written with one Commit and read with one BatchGetDocuments, each a single gRPC call
made with the generated protobuf messages on the Firestore client's own channel (its
credentials, its metadata). The library's document API builds the same request through
proto-plus wrappers and a write batch, about 1 ms of CPU per call in the webhook, which is
its bottleneck (docs/benchmarks.md, webhook).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import grpc
from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.api_core.retry import Retry
from google.cloud.firestore_v1.types import common, document, firestore, write
from google.protobuf import timestamp_pb2  # type: ignore[import-untyped]

from controlroom.errors import LedgerUnavailableError

ENQUEUED = "enqueued"
# Twitch redelivers for a while; after this the entry may go (Firestore TTL on `expires_at`).
RETENTION = timedelta(days=3)


# The edge must answer within seconds: retry briefly, then let Twitch redeliver.
_RETRY = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=2.0)
_TIMEOUT = 2.0
# google.api_core's own mapping and routing header (untyped there)
_from_grpc_error: Callable[[grpc.RpcError], Exception] = gexc.from_grpc_error
_routing_header: Callable[[tuple[tuple[str, str], ...]], tuple[str, str]] = (
    gapic_v1.routing_header.to_grpc_metadata
)

_T = TypeVar("_T")
_CommitRequest: Any = firestore.CommitRequest.pb()
_CommitResponse: Any = firestore.CommitResponse.pb()
_BatchGetRequest: Any = firestore.BatchGetDocumentsRequest.pb()
_BatchGetResponse: Any = firestore.BatchGetDocumentsResponse.pb()
_Document: Any = document.Document.pb()
_Value: Any = document.Value.pb()
_Write: Any = write.Write.pb()
_Precondition: Any = common.Precondition.pb()
_DocumentMask: Any = common.DocumentMask.pb()


@dataclass(frozen=True)
class Entry:
    message_id: str
    subscription_type: str
    retry: int
    received_at: datetime


class Ledger(Protocol):
    def record(self, entry: Entry, enqueued_at: datetime) -> bool:
        """Record that `entry`'s task is in the queue; False when an entry was already there."""

    def enqueued(self, message_id: str) -> bool:
        """Whether the ledger holds an entry saying `message_id`'s task was created."""


def _timestamp(at: datetime) -> Any:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(at)
    return ts


def _call(rpc: Callable[[], _T]) -> _T:
    """One attempt, with gRPC's error turned into google.api_core's (what _RETRY reads)."""
    try:
        return rpc()
    except grpc.RpcError as exc:
        raise _from_grpc_error(exc) from exc


class FirestoreLedger:
    """One document per message id in `collection`, created with `exists: false` so a second
    record of the same id is refused by Firestore (ALREADY_EXISTS) rather than overwritten."""

    def __init__(self, client: Any, collection: str = "eventsub_deliveries") -> None:
        # the gapic client the library builds from the same credentials (or for the emulator)
        channel = client._firestore_api.transport.grpc_channel
        metadata = tuple(client._rpc_metadata)  # resource prefix (+ the emulator's bearer)
        self._database = f"projects/{client.project}/databases/{client._database}"
        self._documents = f"{self._database}/documents/{collection}"
        self._metadata = (
            *metadata,
            _routing_header((("database", self._database),)),
        )
        self._commit = channel.unary_unary(
            "/google.firestore.v1.Firestore/Commit",
            request_serializer=_CommitRequest.SerializeToString,
            response_deserializer=_CommitResponse.FromString,
        )
        # BatchGetDocuments (a stream of one answer), as the library reads: the emulator has
        # no GetDocument
        self._get = channel.unary_stream(
            "/google.firestore.v1.Firestore/BatchGetDocuments",
            request_serializer=_BatchGetRequest.SerializeToString,
            response_deserializer=_BatchGetResponse.FromString,
        )

    def record(self, entry: Entry, enqueued_at: datetime) -> bool:
        doc = _Document(
            name=f"{self._documents}/{entry.message_id}",
            fields={
                "state": _Value(string_value=ENQUEUED),
                "subscription_type": _Value(string_value=entry.subscription_type),
                "retry": _Value(integer_value=entry.retry),
                "received_at": _Value(timestamp_value=_timestamp(entry.received_at)),
                "enqueued_at": _Value(timestamp_value=_timestamp(enqueued_at)),
                "expires_at": _Value(timestamp_value=_timestamp(entry.received_at + RETENTION)),
            },
        )
        request = _CommitRequest(
            database=self._database,
            writes=[_Write(update=doc, current_document=_Precondition(exists=False))],
        )
        try:
            _RETRY(_call)(lambda: self._commit(request, timeout=_TIMEOUT, metadata=self._metadata))
        except gexc.Conflict:  # ALREADY_EXISTS: recorded before (or by our own retried attempt)
            return False
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailableError(str(type(exc).__name__)) from exc
        return True

    def enqueued(self, message_id: str) -> bool:
        request = _BatchGetRequest(
            database=self._database,
            documents=[f"{self._documents}/{message_id}"],
            mask=_DocumentMask(field_paths=["state"]),
        )
        try:
            answers = _RETRY(_call)(
                lambda: list(self._get(request, timeout=_TIMEOUT, metadata=self._metadata))
            )
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailableError(str(type(exc).__name__)) from exc
        for answer in answers:
            if answer.HasField("found"):
                state = answer.found.fields.get("state")
                return state is not None and state.string_value == ENQUEUED
        return False  # `missing`
