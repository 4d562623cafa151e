"""A company's name, colours and logo; logos go to S3 through a pre-signed PUT (audited)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg.types.json import Jsonb

from controlroom.adapters.db import tenant_transaction_async
from controlroom.core import analytics
from controlroom.core.roles import Caller
from controlroom.errors import (
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
)
from controlroom.usecases import audit

COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Raster types only: an SVG is a document that can carry script, so it is refused outright
# rather than sanitized (docs/api.md). Each type's file signature is checked at confirmation.
LOGO_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
SIGNATURE_BYTES = 12
MAX_LOGO_BYTES = 1024 * 1024
UPLOAD_SECONDS = 300


def _signature_matches(content_type: str, head: bytes) -> bool:
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def branding_prefix(company: uuid.UUID) -> str:
    return f"tenants/{company}/branding/"


async def get_company(conn: psycopg.AsyncConnection[Any], caller: Caller) -> dict[str, Any]:
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute("SELECT id, name, slug, branding, time_zone FROM companies")
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no such company")
    return {**row, "id": str(row["id"])}


async def update_company(
    conn: psycopg.AsyncConnection[Any],
    caller: Caller,
    *,
    name: str | None = None,
    primary_color: str | None = None,
    accent_color: str | None = None,
    logo_key: str | None = None,
    time_zone: str | None = None,
) -> dict[str, Any]:
    caller.require("admin")
    if time_zone is not None:
        analytics.zone(time_zone)  # an unknown zone is a clear 422, not a broken report
    for color in (primary_color, accent_color):
        if color is not None and not COLOR.fullmatch(color):
            raise InvalidError("colours are #rrggbb")
    if name is not None and not (1 <= len(name.strip()) <= 200):
        raise InvalidError("name must be 1-200 characters")
    async with tenant_transaction_async(conn, caller.company):
        cur = await conn.execute("SELECT name, branding, time_zone FROM companies FOR UPDATE")
        before = await cur.fetchone()
        if before is None:
            raise NotFoundError("no such company")
        branding = dict(before["branding"])
        for key, value in (
            ("primary_color", primary_color),
            ("accent_color", accent_color),
            ("logo_key", logo_key),
        ):
            if value is not None:
                branding[key] = value
        new_name = name.strip() if name is not None else before["name"]
        zone = time_zone if time_zone is not None else before["time_zone"]
        await conn.execute(
            "UPDATE companies SET name = %s, branding = %s, time_zone = %s, updated_at = now()",
            (new_name, Jsonb(branding), zone),
        )
        await audit.record_async(
            conn,
            caller.company,
            audit.Actor(caller.subject, caller.user_id),
            action="company.branding",
            target_type="company",
            target_id=str(caller.company),
            before=before,
            after={"name": new_name, "branding": branding, "time_zone": zone},
        )
    return await get_company(conn, caller)


def logo_upload(
    s3: Any, bucket: str, caller: Caller, content_type: str, size: int
) -> dict[str, Any]:
    """A pre-signed PUT for a key we choose under the tenant's branding prefix."""
    caller.require("admin")
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "image/svg+xml":
        raise InvalidError("SVG logos are refused (an SVG can carry script): use PNG, JPEG or WebP")
    if content_type not in LOGO_TYPES:
        raise InvalidError("logos are PNG, JPEG or WebP")
    if size > MAX_LOGO_BYTES:
        raise TooLargeError("logos are at most 1 MiB")
    if size < 1:
        raise InvalidError("content_length must be positive")
    key = f"{branding_prefix(caller.company)}logo-{uuid.uuid4().hex}.{LOGO_TYPES[content_type]}"
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
        ExpiresIn=UPLOAD_SECONDS,
    )
    return {
        "key": key,
        "upload_url": url,
        "method": "PUT",
        "headers": {"Content-Type": content_type},
        "expires_in": UPLOAD_SECONDS,
    }


async def confirm_logo(
    conn: psycopg.AsyncConnection[Any], s3: Any, bucket: str, caller: Caller, key: str
) -> dict[str, Any]:
    """Point the branding at an uploaded logo once S3 shows it exists, typed and sized."""
    caller.require("admin")
    if not key.startswith(branding_prefix(caller.company)) or ".." in key:
        raise ForbiddenError("that key is not this company's")
    try:
        head = await asyncio.to_thread(s3.head_object, Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise NotFoundError("nothing was uploaded under that key") from None
        raise UnavailableError("storage refused the check") from None
    except BotoCoreError:
        raise UnavailableError("storage unavailable") from None
    if head.get("ContentType") not in LOGO_TYPES or not key.endswith(
        "." + LOGO_TYPES[head["ContentType"]]
    ):
        raise InvalidError("the uploaded object is not a PNG, JPEG or WebP")
    if int(head.get("ContentLength", 0)) > MAX_LOGO_BYTES:
        raise TooLargeError("the uploaded logo is larger than 1 MiB")
    # The signed PUT fixes the declared type, not the bytes: an SVG sent as image/png stops here.
    if not _signature_matches(head["ContentType"], await _first_bytes(s3, bucket, key)):
        raise InvalidError("the uploaded bytes are not the PNG, JPEG or WebP they claim to be")
    return await update_company(conn, caller, logo_key=key)


async def _first_bytes(s3: Any, bucket: str, key: str) -> bytes:
    try:
        got = await asyncio.to_thread(
            s3.get_object, Bucket=bucket, Key=key, Range=f"bytes=0-{SIGNATURE_BYTES - 1}"
        )
        body: bytes = await asyncio.to_thread(got["Body"].read)
    except (ClientError, BotoCoreError):
        raise UnavailableError("storage refused the read") from None
    return body


def logo_url(s3: Any, bucket: str, key: str | None) -> str | None:
    """A short-lived GET link for the current logo (the bucket itself stays private)."""
    if not key:
        return None
    url: str = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )
    return url
