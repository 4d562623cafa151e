"""S3 clients and bucket set-up (the local stack's moto buckets mirror terraform's)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from controlroom import settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def client(
    endpoint_url: str | None = None,
    *,
    aws: settings.AwsSettings | None = None,
    region: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> S3Client:
    """An S3 client; with `endpoint_url` it talks to that endpoint (moto's server locally).

    Requests and presigned URLs are signed for `region`, else `aws.region` (AWS_REGION, the
    buckets' region); a URL scoped to another region is refused by S3. With `aws` federated
    (AWS_ROLE_ARN on Google Cloud), the role's credentials come from a Google identity token
    (adapters/aws_identity.py); `credentials` are fixed keys (the local stack's placeholders);
    otherwise boto3's usual chain applies.
    """
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        s3={"addressing_style": "path"} if endpoint_url else {},
        signature_version="s3v4",
    )
    region = region or (aws.region if aws else None)
    if credentials is not None:
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=config,
            aws_access_key_id=credentials[0],
            aws_secret_access_key=credentials[1],
        )
    if aws is not None and aws.federated:
        return _federated(aws).client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


@functools.cache
def _federated(aws: settings.AwsSettings) -> boto3.session.Session:
    # one boto3 session over the process's botocore session (boto3 registers its handlers on
    # it once; the credentials and their refresh are shared by every client)
    from controlroom.adapters import aws_identity

    return boto3.session.Session(botocore_session=aws_identity.session(aws))


def lifecycle_rules(
    infrequent_access_days: int = 30,
    glacier_days: int = 90,
    abort_multipart_days: int = 7,
    noncurrent_days: int = 30,
) -> dict[str, Any]:
    """The archive bucket's lifecycle (terraform's aws_storage sets the same rules).

    Parquet (`events/parquet/`, what Athena reads) goes to STANDARD_IA, then GLACIER_IR:
    both are read by Athena as they are. NDJSON (`events/ndjson/`, the raw copy nobody
    queries) goes to STANDARD_IA, then GLACIER, which Athena would skip. Replaced versions
    expire, and stale multipart uploads are aborted.
    """
    if not 30 <= infrequent_access_days <= glacier_days - 30:
        # S3 refuses STANDARD_IA before 30 days, and a colder class before 30 days in IA.
        raise ValueError("need 30 <= infrequent_access_days <= glacier_days - 30")

    def tiering(fmt: str, cold: str) -> dict[str, Any]:
        return {
            "ID": f"{fmt}-tiering",
            "Status": "Enabled",
            "Filter": {"Prefix": f"events/{fmt}/"},
            "Transitions": [
                {"Days": infrequent_access_days, "StorageClass": "STANDARD_IA"},
                {"Days": glacier_days, "StorageClass": cold},
            ],
            "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
        }

    return {
        "Rules": [
            tiering("parquet", "GLACIER_IR"),
            tiering("ndjson", "GLACIER"),
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
