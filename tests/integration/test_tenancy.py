"""The tenant lifecycle on the real stack: platform operators create companies (API and CLI,
the owner's invitation arriving at the mail catcher), suspend them (REST, sockets and
ingestion stop), delete, restore and purge them (rows under RLS and S3 prefixes gone, the
platform audit keeping the record)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt
import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db, eventstore, s3
from controlroom.core.identity import Person
from controlroom.dev import twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.local import ARCHIVE_BUCKET, BRANDING_BUCKET
from controlroom.usecases import companies
from tests.integration.conftest import new_company, services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.relay_client import FeedClient
from tests.integration.tenant_data import sample_event

T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "tenancy") as running:
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


def platform_token(stack: LocalStack, env: dict[str, str], subject: str, email: str) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "email": email,
        "iss": env["JWT_ISSUER"],
        "aud": "controlroom-platform",
        "iat": now,
        "nbf": now - timedelta(seconds=5),
        "exp": now + timedelta(minutes=15),
    }
    return jwt.encode(
        claims, stack.keys.private_pem, algorithm="RS256", headers={"kid": stack.keys.kid}
    )


def call(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
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


@pytest.fixture(scope="module")
def operator(stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings) -> str:
    """A platform operator, listed by the CLI and bound at "sign-in"; their platform token."""
    cli = [sys.executable, "-m", "controlroom.dev.cli"]
    listed = subprocess.run(
        [*cli, "operator", "add", "--email", "Ops@Platform.example"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "is now a platform operator" in listed.stdout
    person = Person("https://idp.example", "ops-subject", "ops@platform.example", True)
    assert run(cfg, lambda conn: companies.operator_for(conn, person))
    return platform_token(stack, env, "ops-subject", "ops@platform.example")


def mails_to(stack: LocalStack, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.mail.messages() if address in m["to"]]


def platform_actions(cfg: settings.DatabaseSettings, company: uuid.UUID) -> list[str]:
    with db.connect(cfg, autocommit=True) as conn, companies.platform_transaction_sync(conn):
        rows = conn.execute(
            "SELECT action FROM platform_audit WHERE company_id = %s ORDER BY id", (company,)
        ).fetchall()
    return [r["action"] for r in rows]


def test_an_operator_creates_a_company_and_the_owner_invitation_is_mailed(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings, operator: str
) -> None:
    base = env["RELAY_URL"]
    status, created = call(
        base,
        operator,
        "POST",
        "/api/platform/companies",
        {"name": "Northwind Talent", "owner_email": "Boss@Northwind.example"},
    )
    assert status == 201, created
    company = created["company"]
    assert company["status"] == "active" and company["slug"] == "northwind-talent"
    url = created["invitation_url"]
    assert f"/#invite={company['id']}." in url
    assert created["mailed"] is True
    assert wait_for(lambda: bool(mails_to(stack, "boss@northwind.example")))
    (mail,) = mails_to(stack, "boss@northwind.example")
    assert url in mail["links"] and "Northwind Talent" in mail["subject"]
    # the owner's invitation is a tenant row, audited in the company's own trail too
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company["id"]):
        invitation = conn.execute("SELECT email, role FROM invitations").fetchone()
        actions = [r["action"] for r in conn.execute("SELECT action FROM audit_logs").fetchall()]
    assert invitation == {"email": "boss@northwind.example", "role": "owner"}
    assert actions == ["invitation.create"]
    assert platform_actions(cfg, uuid.UUID(company["id"])) == ["company.create"]
    status, listed = call(base, operator, "GET", "/api/platform/companies")
    assert status == 200 and company["id"] in {c["id"] for c in listed}
    status, page = call(base, operator, "GET", f"/api/platform/audit?company_id={company['id']}")
    assert status == 200 and [e["action"] for e in page["items"]] == ["company.create"]
    assert page["items"][0]["actor"] == "ops@platform.example"


def test_the_platform_api_refuses_everyone_else(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings, operator: str
) -> None:
    base = env["RELAY_URL"]
    before = len(run(cfg, companies.list_companies))
    # a member's token (even an owner's) is not a platform token
    with db.connect(cfg) as conn:
        member_company = new_company(conn, "Member Co")
    member = stack.keys.token("some-owner", member_company, "owner")
    stranger = platform_token(stack, env, "not-an-operator", "x@platform.example")
    body = {"name": "Sneaky", "owner_email": "a@b.example"}
    assert call(base, member, "POST", "/api/platform/companies", body)[0] == 401
    assert call(base, stranger, "POST", "/api/platform/companies", body)[0] == 403
    assert call(base, stranger, "GET", "/api/platform/audit")[0] == 403
    assert call(base, "garbage", "GET", "/api/platform/companies")[0] == 401
    # and a platform token is not a member's token
    assert call(base, operator, "GET", "/api/me")[0] == 401
    assert len(run(cfg, companies.list_companies)) == before + 1  # only Member Co was added


def test_cli_creates_a_company_and_prints_the_link(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings
) -> None:
    cli = [sys.executable, "-m", "controlroom.dev.cli"]
    done = subprocess.run(
        [*cli, "company", "create", "--name", "Cli Agency", "--owner-email", "o@cli.example"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    link = next(line for line in done.stdout.splitlines() if "#invite=" in line)
    company = link.split("#invite=")[1].split(".")[0]
    assert "mailed to o@cli.example" in done.stdout
    assert wait_for(lambda: any(link in m["links"] for m in mails_to(stack, "o@cli.example")))
    listed = subprocess.run(
        [*cli, "company", "list"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"{company}  active" in listed.stdout
    assert platform_actions(cfg, uuid.UUID(company)) == ["company.create"]


def _agency(
    cfg: settings.DatabaseSettings, name: str, broadcaster: str
) -> tuple[uuid.UUID, uuid.UUID]:
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        with db.tenant_transaction(conn, company):
            user = conn.execute(
                "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                (company, f"user-{name}"),
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'admin')",
                (company, user),
            )
            creator = conn.execute(
                "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (company, broadcaster, f"c_{broadcaster}", f"C{broadcaster}"),
            ).fetchone()["id"]
    return company, creator


def _events(cfg: settings.DatabaseSettings, company: uuid.UUID) -> int:
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        return int(conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"])


def _deliver(env: dict[str, str], broadcaster: str, kind: str = "channel.raid") -> None:
    body = twitchsim.notification_body(kind, twitchsim.Broadcaster(broadcaster, f"c_{broadcaster}"))
    delivery = twitchsim.sign_delivery(body, env["EVENTSUB_SECRET"])
    assert twitchsim.post(env["WEBHOOK_URL"], delivery)[0] == 204


def test_a_suspended_company_is_refused_everywhere_until_resumed(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings, operator: str
) -> None:
    base = env["RELAY_URL"]
    broadcaster = "7700"
    paused, _ = _agency(cfg, "paused", broadcaster)
    watching, _ = _agency(cfg, "watching", broadcaster)  # the same creator, another agency
    token = stack.keys.token("user-paused", paused, "admin")
    feed = FeedClient(base)
    try:
        assert feed.connect({"token": token})
        feed.wait_live()
        status, changed = call(base, operator, "POST", f"/api/platform/companies/{paused}/suspend")
        assert status == 200 and changed["status"] == "suspended"
        # the open socket is closed by the relay's reconcile tick, saying why
        assert wait_for(lambda: any(n == "session_expired" for n, _ in feed.control), timeout=20)
        assert ("session_expired", {"reason": "company suspended"}) in feed.control
        assert wait_for(lambda: not feed.client.connected, timeout=10)
    finally:
        feed.close()
    again = FeedClient(base)
    try:
        assert not again.connect({"token": token})
        assert again.refused == "company suspended"
    finally:
        again.close()
    status, body = call(base, token, "GET", "/api/me")
    assert (status, body["detail"]) == (401, "company suspended")
    # ingestion is paused for it, not for the other agency watching the same broadcaster
    _deliver(env, broadcaster)
    assert wait_for(lambda: _events(cfg, watching) == 1, timeout=20)
    assert _events(cfg, paused) == 0
    # suspending twice changes nothing; resume brings everything back
    assert call(base, operator, "POST", f"/api/platform/companies/{paused}/suspend")[0] == 200
    status, changed = call(base, operator, "POST", f"/api/platform/companies/{paused}/resume")
    assert status == 200 and changed["status"] == "active"
    assert call(base, token, "GET", "/api/me")[0] == 200
    _deliver(env, broadcaster)
    assert wait_for(lambda: _events(cfg, paused) == 1 and _events(cfg, watching) == 2, timeout=20)
    assert platform_actions(cfg, paused) == ["company.suspend", "company.resume"]


def _fill(cfg: settings.DatabaseSettings, company: uuid.UUID, creator: uuid.UUID) -> None:
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        eventstore.append(
            conn, company, [sample_event(f"{company}-e{i}", "7800", creator) for i in range(3)]
        )
        conn.execute(
            "INSERT INTO invitations (company_id, email, role, token_hash, invited_by_subject, "
            "expires_at) VALUES (%s, 'x@y.example', 'viewer', %s, 'someone', now())",
            (company, uuid.uuid4().bytes),
        )
        conn.execute(
            "INSERT INTO audit_logs (company_id, actor_subject, action, target_type, id, "
            "prev_hash, hash) VALUES (%s, 'someone', 'test.row', 'company', 0, '', '')",
            (company,),
        )


def _objects(client: Any, bucket: str, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_delete_restore_then_purge_after_the_grace_period(
    stack: LocalStack, env: dict[str, str], cfg: settings.DatabaseSettings, operator: str
) -> None:
    base = env["RELAY_URL"]
    doomed, creator = _agency(cfg, "doomed", "7800")
    kept, kept_creator = _agency(cfg, "kept", "7801")
    _fill(cfg, doomed, creator)
    _fill(cfg, kept, kept_creator)
    client = s3.client(env["AWS_ENDPOINT_URL_S3"], credentials=("local", "local"))
    for company in (doomed, kept):
        events, logos = companies.company_prefixes(company)
        for prefix in events:  # one per format: events/parquet/… and events/ndjson/…
            client.put_object(
                Bucket=ARCHIVE_BUCKET, Key=f"{prefix}date=2026-01-01/part-a", Body=b"x"
            )
        client.put_object(Bucket=BRANDING_BUCKET, Key=f"{logos}logo-1.png", Body=b"x")
    token = stack.keys.token("user-doomed", doomed, "admin")

    status, deleting = call(base, operator, "DELETE", f"/api/platform/companies/{doomed}")
    assert status == 202 and deleting["status"] == "deleting"
    after = datetime.fromisoformat(deleting["delete_after"])
    assert timedelta(days=29) < after - datetime.now(UTC) <= timedelta(days=30)
    assert call(base, token, "GET", "/api/me")[0] == 401  # refused like a suspended company
    # not due yet: a purge run leaves it alone
    with db.connect(cfg, autocommit=True) as conn:
        assert companies.purge_due(conn, client, ARCHIVE_BUCKET, BRANDING_BUCKET).purged == []
    status, restored = call(base, operator, "POST", f"/api/platform/companies/{doomed}/restore")
    assert status == 200 and restored["status"] == "active" and restored["delete_after"] is None
    assert call(base, token, "GET", "/api/me")[0] == 200
    assert call(base, operator, "POST", f"/api/platform/companies/{kept}/restore")[0] == 409

    assert call(base, operator, "DELETE", f"/api/platform/companies/{doomed}")[0] == 202
    with db.connect(cfg, autocommit=True) as conn, companies.platform_transaction_sync(conn):
        conn.execute(
            "UPDATE companies SET delete_after = now() - interval '1 second' WHERE id = %s",
            (doomed,),
        )
    done = subprocess.run(
        [sys.executable, "-m", "controlroom.dev.cli", "company", "purge"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "companies purged: 1" in done.stdout
    with db.connect(cfg) as conn:
        assert companies.tenant_row_count(conn, doomed) == 0
        assert companies.tenant_row_count(conn, kept) > 5
    for company, expected in ((doomed, 0), (kept, 1)):
        events, logos = companies.company_prefixes(company)
        assert [len(_objects(client, ARCHIVE_BUCKET, p)) for p in events] == [expected] * 2
        assert len(_objects(client, BRANDING_BUCKET, logos)) == expected
    assert platform_actions(cfg, doomed) == [
        "company.delete",
        "company.restore",
        "company.delete",
        "company.purge",
    ]
    assert call(base, operator, "GET", f"/api/platform/companies/{doomed}")[0] == 404
    # the runtime role cannot call the purge for a company that is not due
    with db.connect(cfg, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute("SELECT purge_company(%s)", (kept,))
    with db.connect(cfg) as conn:
        assert companies.tenant_row_count(conn, kept) > 5
