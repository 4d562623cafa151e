"""Tenant ids: the one canonical text of a company id, and where a company's archive lies."""

from __future__ import annotations

import uuid
from typing import Literal

from controlroom.errors import TenantError

ArchiveFormat = Literal["parquet", "ndjson"]
# Parquet (what Athena reads) and NDJSON (the raw copy) under separate top-level prefixes:
# Athena's table and S3's lifecycle rules can only select objects by prefix.
ARCHIVE_FORMATS: tuple[ArchiveFormat, ...] = ("parquet", "ndjson")


def tenant_id(company_id: uuid.UUID | str) -> str:
    """Canonical text of a company id, or TenantError."""
    if isinstance(company_id, uuid.UUID):
        return str(company_id)
    try:
        return str(uuid.UUID(company_id))
    except (ValueError, AttributeError, TypeError):
        raise TenantError("company id is not a UUID") from None


def archive_prefix(company_id: uuid.UUID, fmt: ArchiveFormat) -> str:
    """The S3 prefix of a company's archived objects in one format:
    `events/<format>/company_id=<id>/`, then `date=<YYYY-MM-DD>/` per day.

    Here, not in the archive use case, so the services that purge or presign need not load
    the archive's Arrow stack to know where a company's objects are."""
    if fmt not in ARCHIVE_FORMATS:
        raise ValueError(f"unknown archive format {fmt!r}")
    return f"events/{fmt}/company_id={tenant_id(company_id)}/"


def archive_prefixes(company_id: uuid.UUID) -> tuple[str, ...]:
    """Every archived object of a company lies under one of these (a purge removes them all)."""
    return tuple(archive_prefix(company_id, fmt) for fmt in ARCHIVE_FORMATS)
