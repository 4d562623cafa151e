"""Our own signing keys: the kid is the RFC 7638 thumbprint, the JWKS lists every key, and a
rotation keeps tokens signed by the previous key valid while that key is listed."""

from __future__ import annotations

import base64
import json
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from controlroom import errors, settings
from controlroom.adapters import signing, tokens

ISSUER = "https://control.example"

# RFC 7638 §3.1's example key and the thumbprint the RFC computes for it
RFC_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
    "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
    "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
    "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
    "Cur-kEgU8awapJzKnqDKgw"
)
RFC_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture(scope="module")
def pems() -> tuple[str, str]:
    return signing.generate_pem(), signing.generate_pem()


def _public_from_jwk(n: str, e: str) -> rsa.RSAPublicKey:
    def num(v: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")

    return rsa.RSAPublicNumbers(num(e), num(n)).public_key()


def test_kid_is_the_rfc7638_thumbprint() -> None:
    assert signing.thumbprint(_public_from_jwk(RFC_N, "AQAB")) == RFC_THUMBPRINT


def test_a_loaded_key_has_its_thumbprint_as_kid(pems: tuple[str, str]) -> None:
    (key,) = signing.load_keys(pems[0])
    jwk = key.public_jwk()
    assert key.kid == signing.thumbprint(key.public)
    assert jwk["kid"] == key.kid and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}  # public members only
    assert "private" not in repr(key).lower() and key.kid in repr(key)


def test_two_keys_both_in_the_jwks_current_first(pems: tuple[str, str]) -> None:
    keys = signing.load_keys(pems[1] + "\n" + pems[0])
    signer = signing.Signer(keys, ISSUER)
    published = signer.jwks()["keys"]
    assert [k["kid"] for k in published] == [keys[0].kid, keys[1].kid]
    token = signer.access_token("alice", uuid.uuid4(), "viewer", uuid.uuid4())
    assert jwt.get_unverified_header(token)["kid"] == keys[0].kid  # signs with the current


def test_rotation_keeps_the_previous_keys_tokens_valid_while_listed(
    pems: tuple[str, str],
) -> None:
    old, new = pems
    before = signing.Signer(signing.load_keys(old), ISSUER)
    company, session = uuid.uuid4(), uuid.uuid4()
    issued = before.access_token("alice", company, "operator", session)

    during = signing.Signer(signing.load_keys(new + old), ISSUER)  # new key first, old listed
    verifier = tokens.TokenVerifier(issuer=ISSUER, audience="controlroom", keys=during)
    claims = verifier.verify(issued)
    assert (claims.subject, claims.company_id, claims.role) == ("alice", company, "operator")
    fresh = during.access_token("bob", company, "viewer", session)
    assert verifier.verify(fresh).subject == "bob"

    after = signing.Signer(signing.load_keys(new), ISSUER)  # the old key dropped
    verifier = tokens.TokenVerifier(issuer=ISSUER, audience="controlroom", keys=after)
    with pytest.raises(errors.AuthError, match="unknown signing key"):
        verifier.verify(issued)
    assert verifier.verify(fresh).subject == "bob"


def test_claims_of_a_member_token(pems: tuple[str, str]) -> None:
    signer = signing.Signer(signing.load_keys(pems[0]), ISSUER, access_ttl_seconds=900)
    session = uuid.uuid4()
    token = signer.access_token("alice", uuid.uuid4(), "admin", session)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["aud"] == "controlroom"
    assert claims["sid"] == str(session) and claims["exp"] - claims["iat"] == 900


def test_platform_and_member_tokens_are_not_interchangeable(pems: tuple[str, str]) -> None:
    signer = signing.Signer(signing.load_keys(pems[0]), ISSUER)
    verifier = tokens.TokenVerifier(issuer=ISSUER, audience="controlroom", keys=signer)
    platform = signer.platform_token("op-1", "op@example.com", uuid.uuid4())
    member = signer.access_token("alice", uuid.uuid4(), "owner", uuid.uuid4())
    caller = verifier.verify_platform(platform)
    assert (caller.subject, caller.email) == ("op-1", "op@example.com")
    with pytest.raises(errors.AuthError, match="not for this service"):
        verifier.verify(platform)
    with pytest.raises(errors.AuthError, match="not for this service"):
        verifier.verify_platform(member)


def test_another_issuer_or_audience_is_refused(pems: tuple[str, str]) -> None:
    keys = signing.load_keys(pems[0])
    verifier = tokens.TokenVerifier(
        issuer=ISSUER, audience="controlroom", keys=signing.Signer(keys, ISSUER)
    )
    other_issuer = signing.Signer(keys, "https://elsewhere.example")
    other_audience = signing.Signer(keys, ISSUER, audience="another-app")
    for signer in (other_issuer, other_audience):
        token = signer.access_token("alice", uuid.uuid4(), "owner", uuid.uuid4())
        with pytest.raises(errors.AuthError, match="not for this service"):
            verifier.verify(token)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no PEM private key"),
        ("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----", "cannot be read"),
    ],
)
def test_unusable_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(errors.SettingsError, match=message):
        signing.load_keys(text)


def test_the_same_key_twice_is_refused(pems: tuple[str, str]) -> None:
    with pytest.raises(errors.SettingsError, match="same key twice"):
        signing.load_keys(pems[0] + pems[0])


def test_settings_take_keys_and_the_public_url(pems: tuple[str, str]) -> None:
    env = {"TOKEN_SIGNING_KEYS": pems[0].replace("\n", "\\n"), "PUBLIC_URL": ISSUER + "/"}
    cfg = settings.AuthSettings.from_env(env)
    assert cfg.issuer == ISSUER and cfg.audience == "controlroom"
    assert cfg.access_ttl_seconds == 900 and cfg.refresh_ttl_seconds == 30 * 24 * 3600
    assert cfg.cookie_secure and not cfg.dev_token_sign_in and cfg.oidc is None
    assert cfg.signing_keys is not None and "PRIVATE" not in repr(cfg)
    assert len(signing.load_keys(cfg.signing_keys.reveal())) == 1  # escaped newlines work
    with pytest.raises(errors.SettingsError, match="PUBLIC_URL"):
        settings.AuthSettings.from_env({"TOKEN_SIGNING_KEYS": pems[0]})
    with pytest.raises(errors.SettingsError, match="SESSION_SECRET"):
        settings.AuthSettings.from_env(
            {**env, "OIDC_ISSUER": "https://idp", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s"}
        )
    oidc = settings.AuthSettings.from_env(
        {
            **env,
            "OIDC_ISSUER": "https://tenant.eu.auth0.com/",
            "OIDC_CLIENT_ID": "c",
            "OIDC_CLIENT_SECRET": "hunter2",
            "SESSION_SECRET": "s" * 32,
        }
    ).oidc
    assert oidc is not None and oidc.issuer == "https://tenant.eu.auth0.com/"  # kept as written
    assert oidc.scopes == "openid email profile" and "hunter2" not in repr(oidc)


def test_jwks_document_is_json(pems: tuple[str, str]) -> None:
    signer = signing.Signer(signing.load_keys(pems[0]), ISSUER)
    document = json.loads(json.dumps(signer.jwks()))
    assert jwt.PyJWKSet.from_dict(document).keys[0].key_id == signer.current.kid
