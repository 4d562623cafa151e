"""S3 clients and bucket set-up (the local stack's moto buckets mirror terraform's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def client(
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    credentials: tuple[str, str] | None = None,
) -> S3Client:
    """An S3 client; with `endpoint_url` it talks to that endpoint (moto's server locally).

    Without `credentials`, boto3's usual chain applies (web identity federation in
    production); the local stack passes its own placeholder keys.
    """
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        s3={"addressing_style": "path"} if endpoint_url else {},
        signature_version="s3v4",
    )
    access_key, secret_key = credentials or (None, None)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=config,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )


def lifecycle_rules(
    infrequent_access_days: int = 30, glacier_days: int = 90, abort_multipart_days: int = 7
) -> dict[str, Any]:
    """The archive bucket's lifecycle: IA, then Glacier; stale multipart uploads aborted."""
    if not 30 <= infrequent_access_days < glacier_days:
        # S3 refuses STANDARD_IA before 30 days, and Glacier must come after IA.
        raise ValueError("need 30 <= infrequent_access_days < glacier_days")
    return {
        "Rules": [
            {
                "ID": "archive-tiering",
                "Status": "Enabled",
                "Filter": {"Prefix": "events/"},
                "Transitions": [
                    {"Days": infrequent_access_days, "StorageClass": "STANDARD_IA"},
                    {"Days": glacier_days, "StorageClass": "GLACIER"},
                ],
            },
            {
                "ID": "abort-incomplete-multipart",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_multipart_days},
            },
        ]
    }


def ensure_bucket(s3: S3Client, bucket: str) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)


def branding_cors(origins: list[str]) -> dict[str, Any]:
    """The branding bucket's CORS: the dashboard's origins may PUT (pre-signed) and GET."""
    return {
        "CORSRules": [
            {
                "AllowedOrigins": origins,
                "AllowedMethods": ["PUT", "GET"],
                "AllowedHeaders": ["Content-Type"],
                "MaxAgeSeconds": 3600,
            }
        ]
    }
