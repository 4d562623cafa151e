"""Cluster set-up done once by an administrator: roles, the database, and migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from controlroom.logs import fields

log = logging.getLogger(__name__)

OWNER_ROLE = "controlroom_owner"
APP_ROLE = "controlroom_app"
ROUTER_ROLE = "controlroom_router"

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def _ensure_login_role(cur: psycopg.Cursor[object], role: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    # Neither role may bypass RLS or create roles; the runtime role also inherits nothing.
    cur.execute(
        sql.SQL(
            "{} ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
        ).format(sql.SQL(verb), sql.Identifier(role), sql.Literal(password))
    )


def bootstrap(admin_url: str, database: str, owner_password: str, app_password: str) -> None:
    """Create the three roles and the database (idempotent). Needs a superuser-like URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_login_role(cur, OWNER_ROLE, owner_password)
        _ensure_login_role(cur, APP_ROLE, app_password)
        cur.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(sql.Identifier(APP_ROLE)))
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROUTER_ROLE,))
        if not cur.fetchone():
            cur.execute(
                sql.SQL("CREATE ROLE {} NOLOGIN NOBYPASSRLS").format(sql.Identifier(ROUTER_ROLE))
            )
        # The owner hands route_broadcaster() to the router role, so it must be a member.
        cur.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(ROUTER_ROLE), sql.Identifier(OWNER_ROLE)
            )
        )
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if not cur.fetchone():
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database), sql.Identifier(OWNER_ROLE)
                )
            )
    with psycopg.connect(with_database(admin_url, database), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(
                sql.Identifier(APP_ROLE), sql.Identifier(ROUTER_ROLE)
            )
        )
    log.info("database roles ready", extra=fields(database=database))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def migrate(owner_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> int:
    """Apply pending SQL migrations with yoyo as the owner role; returns how many ran."""
    from yoyo import get_backend, read_migrations

    scheme_url = owner_url.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
    backend = get_backend(scheme_url)
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        count = len(pending)
        backend.apply_migrations(pending)
    log.info("migrations applied", extra=fields(applied=count))
    return count
