from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from controlroom import errors
from controlroom.adapters import tokens
from controlroom.core import roles, rooms
from controlroom.dev import devkeys

COMPANY = uuid.uuid4()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> devkeys.DevKeys:
    return devkeys.DevKeys.create(Path(tmp_path_factory.mktemp("idp")))


@pytest.fixture(scope="module")
def verifier(keys: devkeys.DevKeys) -> tokens.TokenVerifier:
    return tokens.TokenVerifier(
        issuer=devkeys.ISSUER, audience=devkeys.AUDIENCE, public_key_pem=keys.public_pem()
    )


def test_a_good_token_gives_its_claims(
    keys: devkeys.DevKeys, verifier: tokens.TokenVerifier
) -> None:
    claims = verifier.verify(keys.token("alice", COMPANY, "operator"))
    assert (claims.subject, claims.company_id, claims.role) == ("alice", COMPANY, "operator")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: k.token("a", COMPANY, "viewer", ttl=timedelta(minutes=-5)), "token expired"),
        (lambda k: k.token("a", COMPANY, "viewer", audience="other"), "token not for this service"),
        (
            lambda k: k.token("a", COMPANY, "viewer", issuer="https://x"),
            "token not for this service",
        ),
        (lambda k: k.token("a", COMPANY, "emperor"), "token has no valid role"),
        (lambda k: k.token("a", "not-a-uuid", "viewer"), "token has no company"),
        (
            lambda k: jwt.encode(
                {"sub": "a"}, "secret-key-for-hs256-test-only!!", algorithm="HS256"
            ),
            "algorithm not allowed",
        ),
        (lambda k: "a.b.c", "malformed token"),
        (lambda k: "", "missing token"),
        (lambda k: None, "missing token"),
    ],
)
def test_bad_tokens(
    keys: devkeys.DevKeys, verifier: tokens.TokenVerifier, make: object, reason: str
) -> None:
    with pytest.raises(errors.AuthError, match=f"^{reason}$"):
        verifier.verify(make(keys))  # type: ignore[operator]


def test_a_token_from_another_key_is_invalid(
    verifier: tokens.TokenVerifier, tmp_path: Path
) -> None:
    other = devkeys.DevKeys.create(tmp_path)
    with pytest.raises(errors.AuthError, match="invalid token"):
        verifier.verify(other.token("a", COMPANY, "viewer"))


def test_jwks_is_public_only(keys: devkeys.DevKeys, tmp_path: Path) -> None:
    fresh = devkeys.DevKeys.create(tmp_path)
    published = (tmp_path / "public" / "jwks.json").read_text()
    assert "PRIVATE" not in published and '"d"' not in published
    assert fresh.public_jwk()["kid"] == fresh.kid
    assert not (tmp_path / "public" / "signing-key.pem").exists()


def test_roles_are_ordered() -> None:
    assert roles.role_at_least("owner", "admin")
    assert not roles.role_at_least("viewer", "operator")
    assert not roles.role_at_least("superuser", "viewer")


def test_room_names_come_from_one_place() -> None:
    creator = uuid.uuid4()
    assert rooms.company_room(COMPANY) == f"company:{COMPANY}"
    assert rooms.creator_room(COMPANY, creator) == f"company:{COMPANY}:creator:{creator}"
    assert rooms.company_of(rooms.company_room(COMPANY)) == COMPANY
    for other in (rooms.creator_room(COMPANY, creator), "company:nope", "tenant:x", "company:"):
        assert rooms.company_of(other) is None
    with pytest.raises(ValueError, match="UUID"):
        rooms.company_room("'; DROP")
