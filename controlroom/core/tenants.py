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


def archive_prefix(company_id: uuid.UUID) -> str:
    """Every archived object of a company lies under this S3 prefix (a purge removes it).

    Here, not in the archive use case, so the services that purge or presign need not load
    the archive's Arrow stack to know where a company's objects are."""
    return f"events/company_id={company_id}/"
