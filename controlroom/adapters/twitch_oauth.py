"""Twitch's OAuth for a broadcaster's consent: the authorize URL (state, PKCE S256), the code
exchange (client secret and code verifier) and token validation. The user token is only
validated, never kept."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from controlroom.errors import BadRequestError, UnavailableError
from controlroom.settings import Secret


@dataclass(frozen=True)
class OAuthConfig:
    client_id: str
    client_secret: Secret
    authorize_url: str = "https://id.twitch.tv/oauth2/authorize"
    token_url: str = "https://id.twitch.tv/oauth2/token"  # noqa: S105 - a URL, not a secret
    validate_url: str = "https://id.twitch.tv/oauth2/validate"


@dataclass(frozen=True)
class TokenInfo:
    """What /oauth2/validate says about a user access token."""

    client_id: str
    user_id: str
    login: str
    scopes: tuple[str, ...]


def new_verifier() -> str:
    """A PKCE code verifier: 43-128 characters of the unreserved set (RFC 7636)."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """The S256 code challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    config: OAuthConfig, *, redirect_uri: str, state: str, verifier: str, scopes: list[str]
) -> str:
    query = {
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
        "force_verify": "true",  # the creator sees which account and scopes they grant
    }
    return f"{config.authorize_url}?{urlencode(query)}"


async def exchange_code(
    client: httpx.AsyncClient, config: OAuthConfig, *, code: str, verifier: str, redirect_uri: str
) -> str:
    """The user access token for an authorization code; BadRequestError if Twitch refuses it
    (a replayed or foreign code, a verifier that does not match)."""
    form = {
        "client_id": config.client_id,
        "client_secret": config.client_secret.reveal(),
        "code": code,
        "code_verifier": verifier,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    try:
        response = await client.post(config.token_url, data=form)
    except httpx.HTTPError:
        raise UnavailableError("Twitch could not be reached; try again") from None
    if response.status_code >= 500:
        raise UnavailableError("Twitch is unavailable; try again")
    body = _json(response)
    token = body.get("access_token")
    if response.status_code != 200 or not isinstance(token, str) or not token:
        raise BadRequestError("Twitch refused the authorization code")
    return token


async def validate(client: httpx.AsyncClient, config: OAuthConfig, token: str) -> TokenInfo:
    """Who the token belongs to and what it may do, as Twitch says; it must be ours."""
    try:
        response = await client.get(
            config.validate_url, headers={"Authorization": f"OAuth {token}"}
        )
    except httpx.HTTPError:
        raise UnavailableError("Twitch could not be reached; try again") from None
    if response.status_code >= 500:
        raise UnavailableError("Twitch is unavailable; try again")
    body = _json(response)
    if response.status_code != 200 or not body.get("user_id"):
        raise BadRequestError("Twitch did not confirm the token")
    if body.get("client_id") != config.client_id:
        raise BadRequestError("the token was issued to another application")
    raw_scopes = body.get("scopes")
    if not isinstance(raw_scopes, list):
        raw_scopes = []
    return TokenInfo(
        client_id=str(body["client_id"]),
        user_id=str(body["user_id"]),
        login=str(body.get("login") or ""),
        scopes=tuple(str(s) for s in raw_scopes if isinstance(s, str)),
    )


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
