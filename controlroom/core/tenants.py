"""Tenant ids: the one canonical text of a company id."""

from __future__ import annotations

import uuid

from controlroom.errors import TenantError


def tenant_id(company_id: uuid.UUID | str) -> str:
    """Canonical text of a company id, or TenantError."""
    if isinstance(company_id, uuid.UUID):
        return str(company_id)
    try:
        return str(uuid.UUID(company_id))
    except (ValueError, AttributeError, TypeError):
        raise TenantError("company id is not a UUID") from None
