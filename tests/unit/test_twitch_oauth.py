"""The consent's OAuth pieces that need no network: PKCE and the authorize URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from controlroom.adapters import twitch_oauth
from controlroom.settings import Secret


def test_s256_challenge_matches_rfc_7636() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636, appendix B
    assert twitch_oauth.challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifiers_are_long_random_and_unreserved() -> None:
    first, second = twitch_oauth.new_verifier(), twitch_oauth.new_verifier()
    assert first != second
    assert 43 <= len(first) <= 128
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def test_the_authorize_url_carries_state_pkce_and_scopes() -> None:
    config = twitch_oauth.OAuthConfig("client-1", Secret("s3cret"))
    url = twitch_oauth.authorize_url(
        config,
        redirect_uri="https://cr.example/connect/callback",
        state="st4te",
        verifier="v" * 50,
        scopes=["bits:read", "moderator:read:followers"],
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == config.authorize_url
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == "client-1"
    assert query["response_type"] == "code"
    assert query["state"] == "st4te"
    assert query["scope"] == "bits:read moderator:read:followers"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == twitch_oauth.challenge("v" * 50)
    assert "s3cret" not in url
