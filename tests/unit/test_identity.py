"""Sign-in rules without a database: which company a refresh picks, where sign-in may send
the browser, what a refresh token's hash is."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from controlroom import errors
from controlroom.usecases.identity import Membership, choose, token_hash
from realtime.auth import local_path

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def member(company: uuid.UUID, status: str = "active", role: str = "viewer") -> Membership:
    return Membership(company, f"name-{company.hex[:4]}", f"slug-{company.hex[:4]}", status, role)


def test_the_only_active_company_is_chosen() -> None:
    assert choose([member(A)], None, None) == member(A)
    assert choose([member(A), member(B, "suspended")], None, None) == member(A)


def test_several_companies_and_no_choice_choose_none() -> None:
    assert choose([member(A), member(B)], None, None) is None
    assert choose([], None, None) is None


def test_the_remembered_company_wins_while_usable() -> None:
    assert choose([member(A), member(B)], None, B) == member(B)
    assert choose([member(A), member(B, "suspended")], None, B) == member(A)
    assert choose([member(A), member(C)], None, B) is None  # no longer a member of B


def test_a_requested_company_must_be_ones_own_and_active() -> None:
    assert choose([member(A), member(B)], A, B) == member(A)
    with pytest.raises(errors.ForbiddenError, match="not a member"):
        choose([member(A)], B, None)
    with pytest.raises(errors.SuspendedError):
        choose([member(A, "deleting")], A, None)


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/#creators", "/#creators"),
        ("/invite?x=1", "/invite?x=1"),
        (None, "/"),
        ("", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_next_is_a_path_on_this_site(asked: str | None, goes_to: str) -> None:
    assert local_path(asked) == goes_to


def test_only_the_hash_of_a_refresh_token_is_kept() -> None:
    assert token_hash("abc") == hashlib.sha256(b"abc").digest()
