"""Socket.IO room names: built here and nowhere else, always from a company id first."""

from __future__ import annotations

import uuid

from controlroom.core.tenants import tenant_id


def company_room(company_id: uuid.UUID | str) -> str:
    return f"company:{tenant_id(company_id)}"


def creator_room(company_id: uuid.UUID | str, creator_id: uuid.UUID | str) -> str:
    return f"{company_room(company_id)}:creator:{tenant_id(creator_id)}"


def company_of(room: str) -> uuid.UUID | None:
    """The company of a company room (not of a creator room), or None."""
    prefix, _, rest = room.partition(":")
    if prefix != "company" or not rest or ":" in rest:
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None
