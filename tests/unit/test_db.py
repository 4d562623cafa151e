from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from controlroom import errors
from controlroom.adapters import eventstore
from controlroom.core import tenants


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "1; DROP TABLE events", None, 42])
def test_tenant_id_rejects_anything_but_a_uuid(bad: object) -> None:
    with pytest.raises(errors.TenantError):
        tenants.tenant_id(bad)  # type: ignore[arg-type]


def test_tenant_id_is_canonical() -> None:
    value = uuid.uuid4()
    assert tenants.tenant_id(value) == str(value)
    assert tenants.tenant_id(str(value).upper()) == str(value)


def test_dedup_key_defaults_to_the_message_id() -> None:
    now = datetime.now(UTC)
    event = eventstore.NewEvent("m-1", "t", "1", "stream", now, now, "1", {})
    assert event.key() == "m-1"
    assert (
        eventstore.NewEvent("m-1", "t", "1", "stream", now, now, "1", {}, dedup_key="k").key()
        == "k"
    )


def test_unknown_summary_columns_never_reach_sql() -> None:
    now = datetime.now(UTC)
    event = eventstore.NewEvent("m", "t", "1", "stream", now, now, "1", {}, summary={"x; --": 1})
    with pytest.raises(ValueError, match="unknown summary columns"):
        eventstore.append(None, uuid.uuid4(), [event])  # type: ignore[arg-type]
