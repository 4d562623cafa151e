"""The audit hash chain: appended by the runtime role, verified, and tamper-evident."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import psycopg

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev import cli, dbadmin, seed
from controlroom.dev.stack import Endpoints, LocalStack
from controlroom.usecases import audit
from tests.integration.conftest import new_company

ACTOR = audit.Actor("user-1")


def test_chain_is_built_and_verified(app_conn: psycopg.Connection[Any]) -> None:
    company = new_company(app_conn)
    with db.tenant_transaction(app_conn, company):
        ids = [
            audit.record(
                app_conn,
                company,
                ACTOR,
                action="creator.add",
                target_type="creator",
                target_id=str(i),
                after={"i": i},
            )
            for i in range(5)
        ]
        report = audit.verify_chain(app_conn)
        rows = app_conn.execute("SELECT id, prev_hash, hash FROM audit_logs ORDER BY id").fetchall()
    assert ids == [1, 2, 3, 4, 5]
    assert report == audit.ChainReport(checked=5, first_bad_id=None, reason=None)
    assert report.intact
    assert rows[0]["prev_hash"] == bytes(32)
    for earlier, later in itertools.pairwise(rows):
        assert later["prev_hash"] == earlier["hash"]


def test_verifier_detects_an_edited_row(
    app_conn: psycopg.Connection[Any], superuser_conn: psycopg.Connection[Any]
) -> None:
    company = new_company(app_conn)
    with db.tenant_transaction(app_conn, company):
        for i in range(4):
            audit.record(
                app_conn,
                company,
                ACTOR,
                action="member.role",
                target_type="member",
                target_id="m",
                before={"role": "viewer"},
                after={"role": "admin" if i == 2 else "operator"},
            )
    # someone with direct database access rewrites history
    superuser_conn.execute(
        'UPDATE audit_logs SET after = \'{"role": "viewer"}\' WHERE company_id = %s AND id = 3',
        (company,),
    )
    with db.tenant_transaction(app_conn, company):
        report = audit.verify_chain(app_conn)
    assert not report.intact
    assert report.first_bad_id == 3
    assert report.reason == "row content does not match its hash"


def test_verifier_detects_a_deleted_row(
    app_conn: psycopg.Connection[Any], superuser_conn: psycopg.Connection[Any]
) -> None:
    company = new_company(app_conn)
    with db.tenant_transaction(app_conn, company):
        for _ in range(3):
            audit.record(app_conn, company, ACTOR, action="creator.remove", target_type="creator")
    superuser_conn.execute("DELETE FROM audit_logs WHERE company_id = %s AND id = 2", (company,))
    with db.tenant_transaction(app_conn, company):
        report = audit.verify_chain(app_conn)
    assert report.first_bad_id == 3
    assert report.reason == "a row is missing before this one"


def test_concurrent_appends_never_fork_the_chain(db_settings: settings.DatabaseSettings) -> None:
    with db.connect(db_settings) as conn:
        company = new_company(conn)

    def append() -> None:
        with db.connect(db_settings) as conn:
            for i in range(20):
                with db.tenant_transaction(conn, company):
                    audit.record(
                        conn,
                        company,
                        ACTOR,
                        action="branding.update",
                        target_type="company",
                        after={"i": i},
                    )

    threads = [threading.Thread(target=append) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        report = audit.verify_chain(conn)
    assert report == audit.ChainReport(80, None, None)


def test_cli_verify_reports_intact_and_broken(
    endpoints: Endpoints,
    app_conn: psycopg.Connection[Any],
    superuser_conn: psycopg.Connection[Any],
    monkeypatch: Any,
    capsys: Any,
) -> None:
    company = new_company(app_conn)
    with db.tenant_transaction(app_conn, company):
        audit.record(app_conn, company, ACTOR, action="company.create", target_type="company")
    monkeypatch.setenv("DATABASE_URL", endpoints.database_url)
    settings.database.cache_clear()
    try:
        assert cli.main(["audit", "verify", "--company", str(company)]) == 0
        assert "intact: 1 row(s)" in capsys.readouterr().out
        superuser_conn.execute(
            "UPDATE audit_logs SET action = 'x' WHERE company_id = %s", (company,)
        )
        assert cli.main(["audit", "verify", "--company", str(company)]) == 1
        assert "BROKEN at row 1" in capsys.readouterr().out
    finally:
        settings.database.cache_clear()


def test_cli_bootstrap_migrate_and_seed(
    local_stack: LocalStack, endpoints: Endpoints, monkeypatch: Any, capsys: Any
) -> None:
    # roles belong to the cluster, so a second database reuses the stack's passwords
    owner_pw, app_pw = local_stack.state.owner_password, local_stack.state.app_password
    admin = endpoints.admin_url
    monkeypatch.setenv("DATABASE_ADMIN_URL", admin)
    monkeypatch.setenv("DATABASE_OWNER_PASSWORD", owner_pw)
    monkeypatch.setenv("DATABASE_APP_PASSWORD", app_pw)
    assert cli.main(["db", "bootstrap", "--database", "controlroom_cli"]) == 0
    owner = dbadmin.with_database(
        dbadmin.with_credentials(admin, dbadmin.OWNER_ROLE, owner_pw), "controlroom_cli"
    )
    app = dbadmin.with_database(
        dbadmin.with_credentials(admin, dbadmin.APP_ROLE, app_pw), "controlroom_cli"
    )
    monkeypatch.setenv("DATABASE_OWNER_URL", owner)
    assert cli.main(["db", "migrate"]) == 0
    migrations = len(list(dbadmin.MIGRATIONS_DIR.glob("*.sql")))
    assert f"{migrations} migration(s) applied" in capsys.readouterr().out
    monkeypatch.setenv("DATABASE_URL", app)
    settings.database.cache_clear()
    try:
        assert cli.main(["seed"]) == 0
        assert "created" in capsys.readouterr().out
        assert cli.main(["seed"]) == 0
        assert "already there" in capsys.readouterr().out
        with psycopg.connect(app) as conn, db.tenant_transaction(conn, seed.DEMO_COMPANY_ID):
            members = conn.execute("SELECT role FROM members ORDER BY role").fetchall()
        assert members == [("admin",), ("owner",)]
    finally:
        settings.database.cache_clear()
