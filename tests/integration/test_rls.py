"""The RLS matrix, always as the runtime role: tenants cannot see or touch each other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from controlroom import settings
from controlroom.adapters import db, eventstore
from tests.integration.tenant_data import Tenant, populate, sample_event

# table -> (its tenant column, a harmless SET clause, an INSERT that names a company)
TENANT_TABLES: dict[str, tuple[str, str]] = {
    "companies": ("id", "name = name"),
    "users": ("company_id", "email = email"),
    "members": ("company_id", "role = role"),
    "creators": ("company_id", "notes = notes"),
    "event_sequences": ("company_id", "last_seq = last_seq"),
    "events": ("company_id", "topic = topic"),
    "audit_logs": ("company_id", "action = action"),
    "archive_manifests": ("company_id", "row_count = row_count"),
    "event_acks": ("company_id", "note = note"),
}


def insert_for(table: str, victim: Tenant) -> tuple[str, tuple[Any, ...]]:
    """An INSERT of a fresh row that claims to belong to `victim`'s company."""
    c = victim.company_id
    return {
        "companies": ("INSERT INTO companies (id, name, slug) VALUES (%s, 'x', 'x')", (c,)),
        "users": (
            "INSERT INTO users (company_id, subject) VALUES (%s, %s)",
            (c, str(uuid.uuid4())),
        ),
        "members": (
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (c, uuid.uuid4()),
        ),
        "creators": (
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, '999999', 'intruder', 'Intruder')",
            (c,),
        ),
        "event_sequences": (
            "INSERT INTO event_sequences (company_id, last_seq) VALUES (%s, 1000)",
            (c,),
        ),
        "events": (
            "INSERT INTO events (company_id, seq, twitch_message_id, dedup_key, type, version, "
            "topic, occurred_at, received_at, broadcaster_user_id, payload) VALUES "
            "(%s, 1000, 'forged', 'forged', 't', '1', 'stream', now(), now(), '1', '{}')",
            (c,),
        ),
        "audit_logs": (
            "INSERT INTO audit_logs (company_id, id, actor_subject, action, target_type, "
            "prev_hash, hash) VALUES (%s, 0, 'x', 'forged', 'x', '', '')",
            (c,),
        ),
        "event_acks": (
            "INSERT INTO event_acks (company_id, seq, user_id) VALUES (%s, 1, %s)",
            (c, victim.user_id),
        ),
        "archive_manifests": (
            "INSERT INTO archive_manifests (company_id, day, object_keys, row_count, checksums, "
            "schema_version, exported_at) VALUES (%s, '2020-01-01', '[]', 0, '{}', 1, now())",
            (c,),
        ),
    }[table]


@pytest.fixture(scope="module")
def tenants(db_settings: settings.DatabaseSettings) -> Iterator[tuple[Tenant, Tenant]]:
    with db.connect(db_settings) as conn:
        a = populate(conn, "alpha", "7001")
        b = populate(conn, "bravo", "7002")
    yield a, b


def count_visible(
    conn: psycopg.Connection[Any], table: str, column: str, company: uuid.UUID
) -> int:
    row = conn.execute(
        f"SELECT count(*) AS n FROM {table} WHERE {column} = %s", (company,)
    ).fetchone()
    return int(row["n"])


def rows_of(conn: psycopg.Connection[Any], table: str, column: str, tenant: Tenant) -> list[Any]:
    with db.tenant_transaction(conn, tenant.company_id):
        return conn.execute(
            f"SELECT * FROM {table} WHERE {column} = %s ORDER BY 1, 2", (tenant.company_id,)
        ).fetchall()


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_cannot_see_b(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = tenants
    column, _ = TENANT_TABLES[table]
    with db.tenant_transaction(app_conn, a.company_id):
        assert count_visible(app_conn, table, column, b.company_id) == 0
        assert count_visible(app_conn, table, column, a.company_id) >= 1
        others = app_conn.execute(
            f"SELECT count(*) AS n FROM {table} WHERE {column} <> %s", (a.company_id,)
        ).fetchone()
        assert others["n"] == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_cannot_update_or_delete_b(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = tenants
    column, set_clause = TENANT_TABLES[table]
    before = rows_of(app_conn, table, column, b)
    for statement in (
        f"UPDATE {table} SET {set_clause} WHERE {column} = %s",
        f"DELETE FROM {table} WHERE {column} = %s",
    ):
        try:
            with db.tenant_transaction(app_conn, a.company_id):
                cur = app_conn.execute(statement, (b.company_id,))
                assert cur.rowcount == 0, statement
        except errors.InsufficientPrivilege:
            pass  # the runtime role lacks the privilege outright: refused as well
    assert rows_of(app_conn, table, column, b) == before


# the tenant tables the runtime role may UPDATE at all (0002's grants); the others refuse first
UPDATABLE = {
    "companies",
    "users",
    "members",
    "creators",
    "event_sequences",
    "archive_manifests",
    "event_acks",
}


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_cannot_move_its_own_rows_into_b(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = tenants
    column, _ = TENANT_TABLES[table]
    before_a, before_b = rows_of(app_conn, table, column, a), rows_of(app_conn, table, column, b)
    assert before_a, "nothing of A's to move"
    with app_conn.transaction():
        may_update = app_conn.execute(
            "SELECT has_table_privilege(%s, 'UPDATE') AS ok", (table,)
        ).fetchone()["ok"]
    assert may_update == (table in UPDATABLE)
    # the rows pass the policy's USING (they are A's), so only its WITH CHECK stands in the way
    with (
        pytest.raises(errors.InsufficientPrivilege) as refused,
        db.tenant_transaction(app_conn, a.company_id),
    ):
        app_conn.execute(
            f"UPDATE {table} SET {column} = %s WHERE {column} = %s", (b.company_id, a.company_id)
        )
    expected = (
        f'new row violates row-level security policy for table "{table}"'
        if may_update
        else f"permission denied for table {table}"
    )
    assert str(refused.value).startswith(expected), str(refused.value)
    assert rows_of(app_conn, table, column, a) == before_a
    assert rows_of(app_conn, table, column, b) == before_b


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_cannot_insert_into_b(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = tenants
    sql, params = insert_for(table, b)
    with pytest.raises(errors.InsufficientPrivilege), db.tenant_transaction(app_conn, a.company_id):
        app_conn.execute(sql, params)


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("setting", [None, "", "not-a-uuid", "'; DROP TABLE events; --"])
def test_no_or_malformed_tenant_sees_nothing_and_writes_nothing(
    app_conn: psycopg.Connection[Any],
    tenants: tuple[Tenant, Tenant],
    table: str,
    setting: str | None,
) -> None:
    _, b = tenants
    _, set_clause = TENANT_TABLES[table]
    with app_conn.transaction():
        if setting is not None:
            app_conn.execute("SELECT set_config('app.company_id', %s, true)", (setting,))
        assert app_conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0
        for statement in (
            f"UPDATE {table} SET {set_clause}",
            f"DELETE FROM {table}",
        ):
            try:
                with app_conn.transaction():
                    assert app_conn.execute(statement).rowcount == 0
            except errors.InsufficientPrivilege:
                pass
    sql, params = insert_for(table, b)
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        if setting is not None:
            app_conn.execute("SELECT set_config('app.company_id', %s, true)", (setting,))
        app_conn.execute(sql, params)


def test_composite_foreign_keys_cannot_cross_tenants(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    # a membership in A that points at B's user
    with pytest.raises(errors.ForeignKeyViolation), db.tenant_transaction(app_conn, a.company_id):
        app_conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (a.company_id, b.user_id),
        )
    # an event in A that points at B's creator
    with pytest.raises(errors.ForeignKeyViolation), db.tenant_transaction(app_conn, a.company_id):
        eventstore.append(app_conn, a.company_id, [sample_event("cross", "7001", b.creator_id)])


def test_runtime_role_cannot_switch_rls_off(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("ALTER TABLE events DISABLE ROW LEVEL SECURITY")
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("ALTER TABLE events NO FORCE ROW LEVEL SECURITY")
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("DROP POLICY tenant_isolation ON events")
    # row_security=off makes a query that RLS would filter fail instead of bypassing it
    with pytest.raises(errors.InsufficientPrivilege), db.tenant_transaction(app_conn, a.company_id):
        app_conn.execute("SET LOCAL row_security = off")
        app_conn.execute("SELECT count(*) FROM events").fetchone()
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("SET LOCAL ROLE controlroom_owner")


def test_runtime_role_attributes(app_conn: psycopg.Connection[Any]) -> None:
    role = app_conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = current_user"
    ).fetchone()
    assert role == {
        "rolsuper": False,
        "rolbypassrls": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
    }
    owned = app_conn.execute(
        "SELECT count(*) AS n FROM pg_class WHERE relowner = "
        "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchone()
    assert owned["n"] == 0


def test_audit_rows_are_append_only_for_the_runtime_role(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    for statement in ("UPDATE audit_logs SET action = 'rewritten'", "DELETE FROM audit_logs"):
        with (
            pytest.raises(errors.InsufficientPrivilege),
            db.tenant_transaction(app_conn, a.company_id),
        ):
            app_conn.execute(statement)


def test_routing_only_through_the_security_definer_function(
    app_conn: psycopg.Connection[Any], tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    with app_conn.transaction():
        # without a tenant the runtime role reads no creator at all ...
        assert app_conn.execute("SELECT count(*) AS n FROM creators").fetchone()["n"] == 0
        # ... but the routing function answers for every company that watches
        routes = app_conn.execute("SELECT * FROM route_broadcaster(%s)", ("7002",)).fetchall()
    assert routes == [{"company_id": b.company_id, "creator_id": b.creator_id}]
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("SET LOCAL ROLE controlroom_router")
    assert a.broadcaster_id != b.broadcaster_id


def test_platform_tables(
    app_conn: psycopg.Connection[Any],
    superuser_conn: psycopg.Connection[Any],
    tenants: tuple[Tenant, Tenant],
) -> None:
    a, b = tenants
    # written by the platform (the superuser here; security-definer functions in the product)
    with superuser_conn.transaction():
        for broadcaster in (a.broadcaster_id, b.broadcaster_id):
            superuser_conn.execute(
                "INSERT INTO eventsub_subscriptions (broadcaster_user_id, type, version, status) "
                "VALUES (%s, 'stream.online', '1', 'enabled')",
                (broadcaster,),
            )
    with db.tenant_transaction(app_conn, a.company_id):
        seen = app_conn.execute("SELECT broadcaster_user_id FROM eventsub_subscriptions").fetchall()
        assert seen == [{"broadcaster_user_id": a.broadcaster_id}]
        with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
            app_conn.execute("UPDATE eventsub_subscriptions SET status = 'x'")
    # dead letters: append, never read back
    with app_conn.transaction():
        app_conn.execute(
            "INSERT INTO ingest_dead_letters (reason, raw_body) VALUES ('unparseable', %s)",
            (b"\x00not json",),
        )
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("SELECT * FROM ingest_dead_letters")


def test_tenant_indexes_lead_with_company_and_no_global_unique(
    owner_conn: psycopg.Connection[Any],
) -> None:
    rows = owner_conn.execute(
        """
        SELECT c.relname AS table_name, i.relname AS index_name, ix.indisunique AS is_unique,
               a.attname AS first_column
        FROM pg_index ix
        JOIN pg_class c ON c.oid = ix.indrelid
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ix.indkey[0]
        WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)
        """,
        (list(TENANT_TABLES),),
    ).fetchall()
    assert rows
    # the single exception: the routing index read only by route_broadcaster (decisions.md)
    offenders = [
        r
        for r in rows
        if r["first_column"] not in {"company_id"}
        and not (r["table_name"] == "companies" and r["first_column"] == "id")
        and r["index_name"] != "creators_routing"
    ]
    assert offenders == []
    routing = [r for r in rows if r["index_name"] == "creators_routing"]
    assert routing and not routing[0]["is_unique"]


def test_every_tenant_table_forces_rls(owner_conn: psycopg.Connection[Any]) -> None:
    rows = owner_conn.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "AND relname NOT LIKE '%%yoyo%%'"  # the migration tool's own bookkeeping
    ).fetchall()
    unprotected = [
        r["relname"] for r in rows if not (r["relrowsecurity"] and r["relforcerowsecurity"])
    ]
    assert unprotected == []
    assert set(TENANT_TABLES) <= {r["relname"] for r in rows}
