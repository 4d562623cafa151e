"""AWS settings, RDS IAM tokens and the per-connection database parameters, offline."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials

from controlroom import errors, settings
from controlroom.adapters import aws_identity, db

FEDERATED = {
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/controlroom-prod-realtime",
    "AWS_WEB_IDENTITY_AUDIENCE": "controlroom-aws",
    "AWS_REGION": "eu-west-1",
}
IAM_URL = "postgresql://controlroom_app@proxy.example.internal:5432/controlroom"


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Iterator[None]:
    aws_identity.session.cache_clear()
    aws_identity._rds_client.cache_clear()
    yield
    aws_identity.session.cache_clear()
    aws_identity._rds_client.cache_clear()


def test_a_role_makes_the_settings_federated() -> None:
    aws = settings.AwsSettings.from_env(FEDERATED, "realtime")
    assert aws.federated
    assert (aws.role_arn, aws.audience, aws.region) == (
        FEDERATED["AWS_ROLE_ARN"],
        "controlroom-aws",
        "eu-west-1",
    )
    assert aws.session_name == "realtime"
    assert aws.metadata_host == "metadata.google.internal"


def test_the_deployables_name_their_sessions() -> None:
    env = {
        **FEDERATED,
        "DATABASE_URL": "postgresql://x",
        "ARCHIVE_BUCKET": "a",
    }
    assert settings.ArchiveSettings.from_env(env).aws.session_name == "archive"
    assert settings.AwsSettings.from_env(
        env | {"AWS_ROLE_SESSION_NAME": "archive-2"}
    ).session_name == ("archive-2")
    with pytest.raises(errors.SettingsError, match="AWS_ROLE_SESSION_NAME"):
        settings.AwsSettings.from_env(env | {"AWS_ROLE_SESSION_NAME": "no spaces"})


@pytest.mark.parametrize("missing", ["AWS_WEB_IDENTITY_AUDIENCE", "AWS_REGION"])
def test_a_role_needs_an_audience_and_a_region(missing: str) -> None:
    env = {k: v for k, v in FEDERATED.items() if k != missing}
    with pytest.raises(errors.SettingsError, match=missing):
        settings.AwsSettings.from_env(env)


def test_explicit_keys_or_no_role_keep_the_ordinary_chain() -> None:
    local = settings.AwsSettings.from_env({**FEDERATED, "AWS_ACCESS_KEY_ID": "local"})
    assert not local.federated
    assert not settings.AwsSettings.from_env({"AWS_DEFAULT_REGION": "us-west-2"}).federated
    assert settings.AwsSettings.from_env({"AWS_DEFAULT_REGION": "us-west-2"}).region == "us-west-2"
    assert settings.AwsSettings.from_env({}).region is None


def test_database_iam_auth_needs_a_passwordless_url_and_a_region() -> None:
    env = {**FEDERATED, "DATABASE_IAM_AUTH": "true", "DATABASE_URL": IAM_URL}
    cfg = settings.DatabaseSettings.from_env(env, "persist")
    assert cfg.iam_auth and cfg.aws is not None
    assert cfg.aws.session_name == "persist"
    with pytest.raises(errors.SettingsError, match="must not carry a password") as refused:
        settings.DatabaseSettings.from_env(
            env | {"DATABASE_URL": "postgresql://app:hunter2@proxy:5432/db"}
        )
    assert "hunter2" not in str(refused.value)
    with pytest.raises(errors.SettingsError, match="name the user and the host"):
        settings.DatabaseSettings.from_env(env | {"DATABASE_URL": "postgresql:///db"})
    with pytest.raises(errors.SettingsError, match="AWS_REGION"):
        settings.DatabaseSettings.from_env(
            {"DATABASE_IAM_AUTH": "true", "DATABASE_URL": IAM_URL, "AWS_ACCESS_KEY_ID": "k"}
        )
    with pytest.raises(errors.SettingsError, match="not with CLOUD_SQL_INSTANCE"):
        settings.DatabaseSettings.from_env(env | {"CLOUD_SQL_INSTANCE": "p:r:i"})
    # off by default: the URL is used as it is
    assert not settings.DatabaseSettings.from_env({"DATABASE_URL": IAM_URL}).iam_auth


def _token_query(token: str) -> tuple[str, dict[str, str]]:
    where, _, query = token.partition("/?")
    return where, dict(urllib.parse.parse_qsl(query))


def test_an_rds_token_names_the_proxy_the_user_and_the_region() -> None:
    aws = settings.AwsSettings.from_env(FEDERATED)
    static = aws_identity.session_with(Credentials("ASIAEXAMPLE", "secret", "session-token"))
    token = aws_identity.db_auth_token(
        aws, "proxy.example.internal", 5432, "controlroom_app", botocore_session=static
    )
    where, query = _token_query(token)
    assert where == "proxy.example.internal:5432"
    assert query["Action"] == "connect"
    assert query["DBUser"] == "controlroom_app"
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Security-Token"] == "session-token"
    key, _day, region, service, _ = query["X-Amz-Credential"].split("/")
    assert (key, region, service) == ("ASIAEXAMPLE", "eu-west-1", "rds-db")


def test_each_iam_connection_gets_a_token_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    # not federated here (explicit keys): the same code path signs with whatever chain applies
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = {
        "DATABASE_IAM_AUTH": "on",
        "DATABASE_URL": IAM_URL,
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDLOCAL",
    }
    cfg = settings.DatabaseSettings.from_env(env)
    kwargs = db._url_kwargs(cfg)
    assert kwargs["sslmode"] == "require"
    where, query = _token_query(kwargs["password"])
    assert where == "proxy.example.internal:5432" and query["DBUser"] == "controlroom_app"
    assert query["X-Amz-Credential"].startswith("AKIDLOCAL/")
    verified = settings.DatabaseSettings.from_env(
        env | {"DATABASE_URL": IAM_URL + "?sslmode=verify-full"}
    )
    assert "sslmode" not in db._url_kwargs(verified)
    assert db._url_kwargs(settings.DatabaseSettings.from_env({"DATABASE_URL": IAM_URL})) == {}


def test_the_async_pool_signs_a_token_for_each_new_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = {"DATABASE_IAM_AUTH": "true", "DATABASE_URL": IAM_URL, "AWS_REGION": "eu-west-1"}
    pool = db.async_pool(settings.DatabaseSettings.from_env(env | {"AWS_ACCESS_KEY_ID": "k"}))
    assert callable(pool.kwargs)
    kwargs = asyncio.run(pool.kwargs())  # type: ignore[arg-type,operator]  # as the pool does
    assert kwargs["autocommit"] is True and kwargs["password"].startswith(
        "proxy.example.internal:5432/?Action=connect"
    )
    plain = db.async_pool(settings.DatabaseSettings.from_env({"DATABASE_URL": IAM_URL}))
    assert isinstance(plain.kwargs, dict) and "password" not in plain.kwargs
