from __future__ import annotations

import urllib.parse
from datetime import datetime
from unittest import mock

import botocore.auth
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from controlroom import settings
from controlroom.adapters import s3


def test_lifecycle_defaults() -> None:
    rules = {r["ID"]: r for r in s3.lifecycle_rules()["Rules"]}
    # Parquet (what Athena reads) only ever moves to classes Athena reads as they are
    assert rules["parquet-tiering"]["Filter"] == {"Prefix": "events/parquet/"}
    assert rules["parquet-tiering"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 90, "StorageClass": "GLACIER_IR"},
    ]
    # the NDJSON copy, which nothing queries, may go to Glacier
    assert rules["ndjson-tiering"]["Filter"] == {"Prefix": "events/ndjson/"}
    assert rules["ndjson-tiering"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 90, "StorageClass": "GLACIER"},
    ]
    for rule in ("parquet-tiering", "ndjson-tiering"):
        assert rules[rule]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }


@pytest.mark.parametrize(("ia", "glacier"), [(10, 90), (90, 90), (120, 60), (30, 59)])
def test_lifecycle_refuses_what_s3_would(ia: int, glacier: int) -> None:
    # STANDARD_IA from day 30; a colder class only after 30 days in STANDARD_IA
    with pytest.raises(ValueError, match="infrequent_access_days"):
        s3.lifecycle_rules(ia, glacier)


# --- regions and presigning: the credential scope names the bucket's region -------------------

KEYS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def resign(
    url: str, credentials: ReadOnlyCredentials, region: str, method: str, **headers: str
) -> str:
    """The signature botocore's SigV4 query signer computes, independently of the client, for
    the request `url` presigns: same credentials, same timestamp, the scope's region."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    bare = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    request = AWSRequest(method=method, url=bare, headers=headers)
    signer = S3SigV4QueryAuth(credentials, "s3", region, expires=int(query["X-Amz-Expires"]))
    when = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        signer.add_auth(request)
    signed = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.prepare().url).query))
    return signed["X-Amz-Signature"]


def _scope(url: str) -> list[str]:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    return query["X-Amz-Credential"].split("/")


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2"])
def test_presigned_urls_are_scoped_to_the_configured_region(region: str) -> None:
    aws = settings.AwsSettings.from_env({"AWS_REGION": region})
    client = s3.client(aws=aws, credentials=KEYS)
    put = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": "branding", "Key": "tenants/x/logo.png", "ContentType": "image/png"},
        ExpiresIn=300,
    )
    get = client.generate_presigned_url(
        "get_object", Params={"Bucket": "branding", "Key": "tenants/x/logo.png"}, ExpiresIn=300
    )
    creds = ReadOnlyCredentials(*KEYS, None)
    for url, method, headers in ((put, "PUT", {"Content-Type": "image/png"}), (get, "GET", {})):
        key, _date, scope_region, service, terminal = _scope(url)
        assert (key, scope_region, service, terminal) == (KEYS[0], region, "s3", "aws4_request")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert resign(url, creds, region, method, **headers) == query["X-Amz-Signature"]
        # the recomputation is not trivially equal: another region signs differently
        assert resign(url, creds, "us-east-1", method, **headers) != query["X-Amz-Signature"]


def test_no_region_is_assumed_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # an explicit region beats AWS_REGION; without either, boto's own configuration decides
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    aws = settings.AwsSettings.from_env({"AWS_REGION": "eu-west-1"})
    assert s3.client(aws=aws, credentials=KEYS).meta.region_name == "eu-west-1"
    assert s3.client(aws=aws, region="eu-central-1", credentials=KEYS).meta.region_name == (
        "eu-central-1"
    )
    assert s3.client(credentials=KEYS).meta.region_name == "sa-east-1"
