"""AWS credentials on Google Cloud: a Google identity token exchanged with STS for a role.

The metadata server signs an identity token for a fixed audience; STS
AssumeRoleWithWebIdentity trades it for temporary credentials of the deployable's role, whose
trust policy checks the audience and the service account. botocore's RefreshableCredentials
fetch again before expiry (15 minutes ahead without blocking, 10 minutes ahead blocking), so
every client built from `session` signs with fresh credentials. Only botocore is imported:
the database's IAM tokens need this in functions that do not ship boto3.
"""

from __future__ import annotations

import functools
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError

from controlroom import settings

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
METHOD = "gce-web-identity"
# STS's default; the refresh starts 15 minutes before the end
SESSION_SECONDS = 3600


class FederationError(RuntimeError):
    """No AWS credentials: the metadata server or STS refused, or could not be reached."""


# The metadata server is link-local: never through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def identity_token(audience: str, host: str, timeout: float = 3.0) -> str:
    """A Google-signed identity token (a JWT) for `audience`, from the metadata server."""
    query = urllib.parse.urlencode({"audience": audience, "format": "full"})
    request = urllib.request.Request(
        f"http://{host}{IDENTITY_PATH}?{query}", headers={"Metadata-Flavor": "Google"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            body: bytes = answer.read()
    except urllib.error.HTTPError as refused:
        # the server's own words (no token in them) say why: no such account, no header...
        said = refused.read(200).decode("utf-8", "replace").strip()
        raise FederationError(
            f"the metadata server at {host} refused an identity token for audience "
            f"{audience!r}: HTTP {refused.code} {said}".rstrip()
        ) from None
    except (urllib.error.URLError, OSError) as failed:
        reason = getattr(failed, "reason", failed)
        raise FederationError(
            f"the metadata server at {host} could not be reached: {reason}"
        ) from None
    token = body.decode("ascii", "replace").strip()
    if token.count(".") != 2:
        raise FederationError(f"the metadata server at {host} answered something not a JWT")
    return token


class WebIdentity:
    """Fetches the deployable's role credentials: identity token, then STS."""

    def __init__(
        self,
        aws: settings.AwsSettings,
        sts_session: botocore.session.Session | None = None,
    ) -> None:
        if not aws.federated or aws.audience is None:
            raise ValueError("WebIdentity needs AWS_ROLE_ARN and AWS_WEB_IDENTITY_AUDIENCE")
        self._aws = aws
        self._sts_session = sts_session or botocore.session.get_session()

    def fetch(self) -> dict[str, str]:
        """One exchange, in the shape botocore's refresh expects."""
        aws = self._aws
        assert aws.role_arn and aws.audience
        token = identity_token(aws.audience, aws.metadata_host)
        # the token is the only proof: the request itself is not signed
        sts: Any = self._sts_session.create_client(
            "sts",
            region_name=aws.region,
            endpoint_url=aws.sts_endpoint_url,
            config=Config(signature_version=UNSIGNED, retries={"mode": "standard"}),
        )
        try:
            answer = sts.assume_role_with_web_identity(
                RoleArn=aws.role_arn,
                RoleSessionName=aws.session_name,
                WebIdentityToken=token,
                DurationSeconds=SESSION_SECONDS,
            )
        except ClientError as refused:
            error = refused.response.get("Error", {})
            raise FederationError(
                f"STS refused {aws.role_arn} for audience {aws.audience!r}: "
                f"{error.get('Code')}: {error.get('Message')}"
            ) from None
        except BotoCoreError as failed:
            raise FederationError(f"STS could not be reached: {failed}") from None
        creds = answer["Credentials"]
        expiration: datetime = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiration.isoformat(),
        }

    def credentials(
        self, time_fetcher: Callable[[], datetime] | None = None
    ) -> DeferredRefreshableCredentials:
        """Credentials fetched on first use and refreshed by botocore before they expire."""
        if time_fetcher is None:
            return DeferredRefreshableCredentials(refresh_using=self.fetch, method=METHOD)
        return DeferredRefreshableCredentials(
            refresh_using=self.fetch, method=METHOD, time_fetcher=time_fetcher
        )


class _Provider(CredentialProvider):
    METHOD = METHOD

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def session_with(credentials: Any) -> botocore.session.Session:
    """A botocore session whose only credentials are `credentials` (no fallback chain)."""
    session = botocore.session.get_session()
    session.register_component("credential_provider", CredentialResolver([_Provider(credentials)]))
    return session


@functools.cache
def session(aws: settings.AwsSettings) -> botocore.session.Session:
    """The process's botocore session for `aws`: federated credentials shared by every client
    built from it (one exchange, one refresh), or boto's ordinary chain when not federated."""
    if not aws.federated:
        return botocore.session.get_session()
    return session_with(WebIdentity(aws).credentials())


def db_auth_token(
    aws: settings.AwsSettings,
    host: str,
    port: int,
    user: str,
    botocore_session: botocore.session.Session | None = None,
) -> str:
    """An RDS IAM authentication token (valid 15 minutes) for user@host:port, signed offline
    with the deployable's credentials for the database's region."""
    assert aws.region is not None
    if botocore_session is None:
        rds = _rds_client(aws)
    else:
        rds = botocore_session.create_client("rds", region_name=aws.region)
    token: str = rds.generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=aws.region
    )
    return token


@functools.cache
def _rds_client(aws: settings.AwsSettings) -> Any:
    # one client per process: building one loads the service model (tens of milliseconds)
    return session(aws).create_client("rds", region_name=aws.region)
