"""Invitations on the real stack: owners and admins invite by email (the mail arrives at the
catcher over SMTP), list and revoke; accepting binds the signed-in person once, before expiry,
for the invited email only. Every refusal leaves the database as it was."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from controlroom import edge, errors, settings
from controlroom.adapters import db
from controlroom.core.identity import Person
from controlroom.dev.stack import LocalStack
from controlroom.usecases import companies, invitations
from tests.integration.conftest import services_stack, stack_env
from tests.integration.listener import wait_for

T = TypeVar("T")
ROLES = ("viewer", "operator", "admin", "owner")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "invitations") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


def run(cfg: settings.DatabaseSettings, work: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        async with await db.connect_async(cfg, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(go())


@dataclass
class Agency:
    company: uuid.UUID
    name: str
    owner_link: str  # the owner invitation made with the company


def make_agency(cfg: settings.DatabaseSettings, name: str) -> Agency:
    """A company as operators create it, plus one member of each role."""
    created = run(
        cfg,
        lambda conn: companies.create(
            conn, "test", name, f"first-owner@{name}.example", public_url="http://app.test"
        ),
    )
    company = uuid.UUID(created.company["id"])
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        for role in ROLES:
            user = conn.execute(
                "INSERT INTO users (company_id, subject, email) VALUES (%s, %s, %s) RETURNING id",
                (company, f"{name}-{role}", f"{role}@{name}.example"),
            ).fetchone()
            assert user is not None
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
                (company, user["id"], role),
            )
    return Agency(company, name, created.invitation_url)


@pytest.fixture(scope="module")
def agencies(cfg: settings.DatabaseSettings) -> tuple[Agency, Agency]:
    return make_agency(cfg, "inv-alpha"), make_agency(cfg, "inv-bravo")


def api(
    stack: LocalStack,
    agency: Agency,
    role: str,
    method: str,
    path: str,
    body: Any = None,
    subject: str | None = None,
) -> tuple[int, Any]:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    token = stack.keys.token(subject or f"{agency.name}-{role}", agency.company, role)
    request = urllib.request.Request(
        stack.endpoints.relay_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None


def snapshot(cfg: settings.DatabaseSettings, company: uuid.UUID) -> dict[str, Any]:
    """Everything an invitation can change: invitations, users, members, the audit trail."""
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("invitations", "users", "members", "audit_logs")
        }


def token_of(url: str) -> tuple[str, str]:
    company, _, token = url.split("#invite=")[1].partition(".")
    return company, token


def person(subject: str, email: str, verified: bool = True) -> Person:
    return Person("https://idp.example", subject, email, verified, subject.title())


def accept(cfg: settings.DatabaseSettings, url: str, who: Person) -> dict[str, Any]:
    company, token = token_of(url)
    return run(cfg, lambda conn: invitations.accept(conn, company, token, who))


def refused(
    cfg: settings.DatabaseSettings,
    company: uuid.UUID,
    kind: type[Exception],
    work: Callable[[], Any],
) -> None:
    """`work` fails with `kind`, and nothing in the company changed."""
    before = snapshot(cfg, company)
    with pytest.raises(kind):
        work()
    assert snapshot(cfg, company) == before


def test_an_admin_invites_and_the_mail_arrives_over_smtp(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    status, made = api(
        stack,
        a,
        "admin",
        "POST",
        "/api/invitations",
        {"email": "New.Op@Example.com", "role": "operator"},
    )
    assert status == 201, made
    assert made["email"] == "new.op@example.com" and made["status"] == "pending"
    assert made["mailed"] is True and f"/#invite={a.company}." in made["url"]
    assert wait_for(
        lambda: any(made["url"] in m["links"] for m in stack.mail.messages()), timeout=10
    )
    mail = next(m for m in stack.mail.messages() if made["url"] in m["links"])
    assert mail["to"] == ["new.op@example.com"] and "inv-alpha" in mail["subject"]
    status, listed = api(stack, a, "admin", "GET", "/api/invitations")
    assert status == 200
    assert {i["email"]: i["status"] for i in listed} == {
        "new.op@example.com": "pending",
        "first-owner@inv-alpha.example": "pending",
    }
    assert all("url" not in i and "token_hash" not in i for i in listed)
    # the mailed link is accepted by the invited person, once
    joined = accept(cfg, made["url"], person("new-op", "new.op@example.com"))
    assert joined == {
        "id": str(a.company),
        "name": "inv-alpha",
        "slug": "inv-alpha",
        "role": "operator",
    }
    status, members = api(stack, a, "admin", "GET", "/api/members")
    assert {"subject": "new-op", "role": "operator"}.items() <= next(
        m for m in members if m["subject"] == "new-op"
    ).items()
    status, listed = api(stack, a, "admin", "GET", "/api/invitations")
    assert next(i for i in listed if i["id"] == made["id"])["status"] == "accepted"
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
        actions = [
            r["action"]
            for r in conn.execute(
                "SELECT action FROM audit_logs WHERE target_id IN (%s, "
                "(SELECT id::text FROM users WHERE subject = 'new-op')) ORDER BY id",
                (made["id"],),
            ).fetchall()
        ]
    assert actions == ["invitation.create", "member.join"]
    # the new member is served with a token for the company
    status, me = api(stack, a, "operator", "GET", "/api/me", subject="new-op")
    assert status == 200 and me["role"] == "operator"


def test_who_may_invite_whom(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    before = snapshot(cfg, a.company)
    for role, wanted, expected in (
        ("admin", "owner", 403),  # an admin cannot invite an owner
        ("admin", "admin", 403),  # nor another admin
        ("operator", "viewer", 403),
        ("viewer", "viewer", 403),
    ):
        body = {"email": f"{wanted}-by-{role}@example.com", "role": wanted}
        assert api(stack, a, role, "POST", "/api/invitations", body)[0] == expected
    assert api(stack, a, "operator", "GET", "/api/invitations")[0] == 403
    assert (
        api(stack, a, "admin", "POST", "/api/invitations", {"email": "nope", "role": "viewer"})[0]
        == 422
    )
    assert snapshot(cfg, a.company) == before
    status, made = api(
        stack,
        a,
        "owner",
        "POST",
        "/api/invitations",
        {"email": "co-owner@example.com", "role": "owner"},
    )
    assert status == 201 and made["role"] == "owner"
    # an admin cannot revoke an owner's invitation either; the owner can
    assert api(stack, a, "admin", "DELETE", f"/api/invitations/{made['id']}")[0] == 403
    assert api(stack, a, "owner", "DELETE", f"/api/invitations/{made['id']}")[0] == 204


def test_expired_used_and_revoked_invitations_are_gone(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    made = {}
    for name in ("used", "revoked", "expired"):
        status, made[name] = api(
            stack,
            a,
            "admin",
            "POST",
            "/api/invitations",
            {"email": f"{name}@example.com", "role": "viewer"},
        )
        assert status == 201
    accept(cfg, made["used"]["url"], person("used-person", "used@example.com"))
    assert api(stack, a, "admin", "DELETE", f"/api/invitations/{made['revoked']['id']}")[0] == 204
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
        conn.execute(
            "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = %s",
            (made["expired"]["id"],),
        )
    for name in ("used", "revoked", "expired"):
        url = made[name]["url"]
        company, token = token_of(url)
        preview = run(cfg, lambda conn, c=company, t=token: invitations.preview(conn, c, t))
        assert preview["status"] == name.replace("used", "accepted")
        # the invited person themselves, or anyone else: 410, nothing changed
        refused(
            cfg,
            a.company,
            errors.GoneError,
            lambda u=url, n=name: accept(cfg, u, person(f"late-{n}", f"{n}@example.com")),
        )
    assert (
        edge.answer(errors.GoneError("this invitation is expired"), logging.getLogger("t")).status
        == 410
    )
    # revoking again changes nothing; revoking an accepted one is a conflict
    before = snapshot(cfg, a.company)
    assert api(stack, a, "admin", "DELETE", f"/api/invitations/{made['revoked']['id']}")[0] == 204
    assert snapshot(cfg, a.company) == before
    assert api(stack, a, "admin", "DELETE", f"/api/invitations/{made['used']['id']}")[0] == 409


def test_the_invited_email_must_be_the_verified_one(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    status, made = api(
        stack,
        a,
        "admin",
        "POST",
        "/api/invitations",
        {"email": "right@example.com", "role": "viewer"},
    )
    assert status == 201
    url = made["url"]
    refused(
        cfg,
        a.company,
        errors.ForbiddenError,
        lambda: accept(cfg, url, person("wrong", "wrong@example.com")),
    )
    refused(
        cfg,
        a.company,
        errors.ForbiddenError,
        lambda: accept(cfg, url, person("unverified", "right@example.com", verified=False)),
    )
    # status 403 at the edge
    assert edge.answer(errors.ForbiddenError("x"), logging.getLogger("t")).status == 403
    # an existing member cannot take a second membership through an invitation
    refused(
        cfg,
        a.company,
        errors.ConflictError,
        lambda: accept(cfg, url, person("inv-alpha-viewer", "RIGHT@example.com")),
    )
    # a forged or mangled token is simply unknown
    company, token = token_of(url)
    for bad_company, bad_token in (
        (company, token[:-2] + "xx"),
        ("not-a-uuid", token),
        (company, "../.."),
    ):
        refused(
            cfg,
            a.company,
            errors.NotFoundError,
            lambda c=bad_company, t=bad_token: run(
                cfg, lambda conn: invitations.accept(conn, c, t, person("p", "right@example.com"))
            ),
        )
    joined = accept(cfg, url, person("right", "Right@Example.com"))
    assert joined["role"] == "viewer"


def test_single_use_under_concurrent_accepts(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    status, made = api(
        stack,
        a,
        "admin",
        "POST",
        "/api/invitations",
        {"email": "race@example.com", "role": "viewer"},
    )
    assert status == 201
    company, token = token_of(made["url"])

    async def one(subject: str) -> str:
        async with await db.connect_async(cfg, autocommit=True) as conn:
            try:
                await invitations.accept(conn, company, token, person(subject, "race@example.com"))
            except errors.GoneError:
                return "gone"
            return "joined"

    async def both() -> list[str]:
        return list(await asyncio.gather(*(one(f"racer-{i}") for i in range(4))))

    assert sorted(asyncio.run(both())) == ["gone", "gone", "gone", "joined"]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
        joined = conn.execute(
            "SELECT count(*) AS n FROM users WHERE subject LIKE 'racer-%%'"
        ).fetchone()
    assert joined is not None and joined["n"] == 1


def test_another_company_cannot_see_revoke_or_use_the_invitations(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    status, made = api(
        stack,
        a,
        "admin",
        "POST",
        "/api/invitations",
        {"email": "private@example.com", "role": "viewer"},
    )
    assert status == 201
    status, listed = api(stack, b, "owner", "GET", "/api/invitations")
    assert status == 200
    assert {i["email"] for i in listed} == {"first-owner@inv-bravo.example"}
    before = snapshot(cfg, a.company)
    assert api(stack, b, "owner", "DELETE", f"/api/invitations/{made['id']}")[0] == 404
    # A's token presented with B's company id: unknown there
    _, token = token_of(made["url"])
    refused(
        cfg,
        b.company,
        errors.NotFoundError,
        lambda: run(
            cfg,
            lambda conn: invitations.accept(
                conn, b.company, token, person("p", "private@example.com")
            ),
        ),
    )
    assert snapshot(cfg, a.company) == before
    status, listed = api(stack, a, "admin", "GET", "/api/invitations")
    assert next(i for i in listed if i["id"] == made["id"])["status"] == "pending"


def test_a_suspended_company_accepts_nobody(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    _, b = agencies
    run(cfg, lambda conn: companies.suspend(conn, "test", b.company))
    try:
        refused(
            cfg,
            b.company,
            errors.ForbiddenError,
            lambda: accept(cfg, b.owner_link, person("boss", "first-owner@inv-bravo.example")),
        )
        assert api(stack, b, "owner", "GET", "/api/invitations")[0] == 401
    finally:
        run(cfg, lambda conn: companies.resume(conn, "test", b.company))
    joined = accept(cfg, b.owner_link, person("boss", "first-owner@inv-bravo.example"))
    assert joined["role"] == "owner"
