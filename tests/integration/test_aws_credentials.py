"""Federated AWS credentials against real stand-ins: the metadata server's identity endpoint
(controlroom/dev/metadata.py) and moto's STS and S3 (a ThreadedMotoServer on loopback)."""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import jwt
import pytest
from botocore.credentials import ReadOnlyCredentials
from moto.server import ThreadedMotoServer

from controlroom import services, settings
from controlroom.adapters import aws_identity, db, s3
from controlroom.dev.metadata import IdentityRequest, MetadataServer
from controlroom.dev.stack.process import free_port
from tests.unit.test_s3 import resign

ROLE = "arn:aws:iam::123456789012:role/controlroom-test-realtime"
AUDIENCE = "controlroom-aws-test"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def metadata() -> Iterator[MetadataServer]:
    with MetadataServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Iterator[None]:
    for cached in (aws_identity.session, aws_identity._rds_client, s3._federated):
        cached.cache_clear()
    yield
    for cached in (aws_identity.session, aws_identity._rds_client, s3._federated):
        cached.cache_clear()


def _env(metadata: MetadataServer, moto: str, **more: str) -> dict[str, str]:
    return {
        "AWS_ROLE_ARN": ROLE,
        "AWS_WEB_IDENTITY_AUDIENCE": AUDIENCE,
        "AWS_REGION": "eu-west-1",
        "GCE_METADATA_HOST": metadata.host,
        "AWS_ENDPOINT_URL_STS": moto,
        **more,
    }


class Clock:
    """Now, shifted by what the test says: how close the credentials are to their end."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def test_a_token_for_the_audience_is_exchanged_for_the_roles_credentials(
    metadata: MetadataServer, moto: str
) -> None:
    aws = settings.AwsSettings.from_env(_env(metadata, moto), "realtime")
    sts_session = botocore.session.get_session()
    sent: list[dict[str, Any]] = []
    sts_session.register(
        "provide-client-params.sts.AssumeRoleWithWebIdentity",
        lambda params, **_: sent.append(dict(params)),
    )
    creds = aws_identity.WebIdentity(aws, sts_session).credentials().get_frozen_credentials()

    assert metadata.state.requests == [IdentityRequest(AUDIENCE, "full", "Google")]
    # what STS got: the role, the deployable as the session, a token Google's key signed
    # for our audience and for the service account (what the trust policy checks)
    assert [(p["RoleArn"], p["RoleSessionName"]) for p in sent] == [(ROLE, "realtime")]
    claims = jwt.decode(
        sent[0]["WebIdentityToken"],
        metadata.state.key.public_key(),
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer="https://accounts.google.com",
    )
    assert claims["sub"] == claims["azp"] == metadata.state.unique_id
    # the credentials are the assumed role's, as STS itself reports them
    who = botocore.session.get_session().create_client(
        "sts",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    arn = who.get_caller_identity()["Arn"]
    assert arn == "arn:aws:sts::123456789012:assumed-role/controlroom-test-realtime/realtime"


def test_credentials_are_refreshed_before_they_expire(metadata: MetadataServer, moto: str) -> None:
    aws = settings.AwsSettings.from_env(_env(metadata, moto))
    clock = Clock()
    creds = aws_identity.WebIdentity(aws).credentials(time_fetcher=clock)
    first = creds.get_frozen_credentials()
    clock.ahead = timedelta(minutes=30)  # 30 minutes left of the hour: kept
    assert creds.get_frozen_credentials() == first
    assert len(metadata.state.requests) == 1

    clock.ahead = timedelta(minutes=50)  # 10 minutes left: a new token, a new exchange
    second = creds.get_frozen_credentials()
    assert second.access_key != first.access_key
    assert len(metadata.state.requests) == 2
    clock.ahead = timedelta()  # the new credentials have their hour ahead
    assert creds.get_frozen_credentials() == second
    assert len(metadata.state.requests) == 2


def test_a_metadata_server_that_refuses_is_a_clear_error(
    metadata: MetadataServer, moto: str
) -> None:
    metadata.state.refuse = True
    aws = settings.AwsSettings.from_env(_env(metadata, moto))
    creds = aws_identity.WebIdentity(aws).credentials()
    with pytest.raises(
        aws_identity.FederationError,
        match=r"refused .*'controlroom-aws-test'.*503 metadata server unavailable",
    ):
        creds.get_frozen_credentials()
    # and the real endpoint's own refusal: a request without the header
    metadata.state.refuse = False
    plain = urllib.request.Request(
        f"http://{metadata.host}{aws_identity.IDENTITY_PATH}?audience=x",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(plain, timeout=3)
    assert refused.value.code == 403


def test_an_unreachable_metadata_server_is_a_clear_error() -> None:
    nobody = MetadataServer()  # never started: nothing listens on its port after closing
    host = nobody.host
    nobody._server.server_close()
    with pytest.raises(aws_identity.FederationError, match="could not be reached"):
        aws_identity.identity_token(AUDIENCE, host, timeout=1)


def test_an_expired_token_refused_in_the_mandatory_window_is_raised(
    metadata: MetadataServer, moto: str
) -> None:
    aws = settings.AwsSettings.from_env(_env(metadata, moto))
    clock = Clock()
    creds = aws_identity.WebIdentity(aws).credentials(time_fetcher=clock)
    first = creds.get_frozen_credentials()
    metadata.state.refuse = True
    clock.ahead = timedelta(minutes=47)  # advisory window: the refusal is logged, keys kept
    assert creds.get_frozen_credentials() == first
    clock.ahead = timedelta(minutes=55)  # mandatory window: nobody may sign with these
    with pytest.raises(aws_identity.FederationError):
        creds.get_frozen_credentials()


def test_s3_clients_sign_with_the_role_and_presign_for_the_buckets_region(
    metadata: MetadataServer, moto: str
) -> None:
    aws = settings.AwsSettings.from_env(_env(metadata, moto), "realtime")
    client = s3.client(moto, aws=aws)
    client.create_bucket(
        Bucket="branding-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    client.put_object(Bucket="branding-test", Key="tenants/a/logo.png", Body=b"\x89PNG")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "branding-test", "Key": "tenants/a/logo.png"}
    )
    creds = aws_identity.session(aws).get_credentials().get_frozen_credentials()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    key, _day, region, service, _ = query["X-Amz-Credential"].split("/")
    assert (key, region, service) == (creds.access_key, "eu-west-1", "s3")
    assert query["X-Amz-Security-Token"] == creds.token
    frozen = ReadOnlyCredentials(creds.access_key, creds.secret_key, creds.token)
    assert resign(url, frozen, "eu-west-1", "GET") == query["X-Amz-Signature"]
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as got:
        assert got.read() == b"\x89PNG"
    # one exchange for the process, however many clients
    s3.client(moto, aws=aws).list_buckets()
    assert len(metadata.state.requests) == 1


def test_rds_tokens_are_signed_with_the_federated_credentials(
    metadata: MetadataServer, moto: str
) -> None:
    env = _env(
        metadata,
        moto,
        DATABASE_IAM_AUTH="true",
        DATABASE_URL="postgresql://controlroom_app@proxy.example.internal:5432/controlroom",
    )
    cfg = settings.DatabaseSettings.from_env(env, "persist")
    assert cfg.aws is not None
    kwargs = db._url_kwargs(cfg)
    creds = aws_identity.session(cfg.aws).get_credentials().get_frozen_credentials()
    where, _, raw = kwargs["password"].partition("/?")
    query = dict(urllib.parse.parse_qsl(raw))
    assert where == "proxy.example.internal:5432"
    assert (query["Action"], query["DBUser"], query["X-Amz-Expires"]) == (
        "connect",
        "controlroom_app",
        "900",
    )
    key, _day, region, service, _ = query["X-Amz-Credential"].split("/")
    assert (key, region, service) == (creds.access_key, "eu-west-1", "rds-db")
    assert query["X-Amz-Security-Token"] == creds.token
    assert [r.audience for r in metadata.state.requests] == [AUDIENCE]
    # the role assumed for the database is the deployable's, named after it
    who = botocore.session.get_session().create_client(
        "sts",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    assert who.get_caller_identity()["Arn"].endswith("/controlroom-test-realtime/persist")


def test_the_archive_service_builds_its_s3_client_on_the_archive_role(
    metadata: MetadataServer, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(
        metadata,
        moto,
        AWS_ENDPOINT_URL_S3=moto,
        ARCHIVE_BUCKET="archive-test",
        DATABASE_URL="postgresql://unused",
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.archive.cache_clear()
    try:
        service = services.archive()
        assert service.cfg.aws.federated and service.cfg.aws.session_name == "archive"
        service.s3.create_bucket(
            Bucket="archive-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        assert service.s3.meta.region_name == "eu-west-1"
    finally:
        settings.archive.cache_clear()
    assert [r.audience for r in metadata.state.requests] == [AUDIENCE]
