"""PostgreSQL access as the runtime role: connection factories and the tenant transaction."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg_pool
from psycopg.rows import dict_row

from controlroom import settings
from controlroom.core.tenants import tenant_id
from controlroom.errors import TenantError

# A bind parameter, never string formatting: the tenant id cannot inject SQL.
_SET_TENANT = "SELECT set_config('app.company_id', %s, true)"


def _cloud_sql_connect(cfg: settings.DatabaseSettings) -> psycopg.Connection[dict[str, Any]]:
    assert cfg.cloud_sql_instance and cfg.password is not None
    conn: psycopg.Connection[dict[str, Any]] = _connector().connect(
        cfg.cloud_sql_instance,
        "psycopg",
        user=cfg.user,
        password=cfg.password.reveal(),
        dbname=cfg.name,
        row_factory=dict_row,
    )
    return conn


def _url_kwargs(cfg: settings.DatabaseSettings) -> dict[str, Any]:
    """Per-connection parameters beside DATABASE_URL: with IAM authentication, a fresh RDS
    token (15 minutes) as the password, and never without TLS (the token is a credential)."""
    if not cfg.iam_auth:
        return {}
    from controlroom.adapters import aws_identity  # botocore only where IAM auth is on

    assert cfg.url is not None and cfg.aws is not None
    info = psycopg.conninfo.conninfo_to_dict(cfg.url.reveal())
    kwargs: dict[str, Any] = {
        "password": aws_identity.db_auth_token(
            cfg.aws, str(info["host"]), int(info.get("port") or 5432), str(info["user"])
        )
    }
    if "sslmode" not in info:
        kwargs["sslmode"] = "require"
    return kwargs


_CONNECTOR: Any = None


def _connector() -> Any:
    # One connector per process: it caches certificates and refreshes them in the background.
    global _CONNECTOR  # noqa: PLW0603
    if _CONNECTOR is None:
        from google.cloud.sql.connector import Connector

        _CONNECTOR = Connector(refresh_strategy="lazy")
    return _CONNECTOR


def connect(
    cfg: settings.DatabaseSettings | None = None, *, autocommit: bool = False
) -> psycopg.Connection[dict[str, Any]]:
    """A synchronous connection as the runtime role, rows as dicts."""
    cfg = cfg or settings.database()
    if cfg.cloud_sql_instance:
        conn = _cloud_sql_connect(cfg)
        conn.autocommit = autocommit
        return conn
    assert cfg.url is not None
    return psycopg.connect(
        cfg.url.reveal(),
        row_factory=dict_row,
        autocommit=autocommit,
        connect_timeout=cfg.connect_timeout,
        **_url_kwargs(cfg),
    )


async def connect_async(
    cfg: settings.DatabaseSettings | None = None, *, autocommit: bool = False
) -> psycopg.AsyncConnection[dict[str, Any]]:
    """An asyncio connection as the runtime role, rows as dicts.

    With a Cloud SQL instance configured, Cloud Run's built-in Cloud SQL socket is used
    (the Python connector offers psycopg only synchronously); see docs/decisions.md.
    """
    cfg = cfg or settings.database()
    if cfg.cloud_sql_instance:
        assert cfg.password is not None
        return await psycopg.AsyncConnection.connect(
            host=f"/cloudsql/{cfg.cloud_sql_instance}",
            user=cfg.user,
            password=cfg.password.reveal(),
            dbname=cfg.name,
            row_factory=dict_row,
            autocommit=autocommit,
            connect_timeout=cfg.connect_timeout,
        )
    assert cfg.url is not None
    # a token may first need credentials from the metadata server and STS: off the loop
    extra = await asyncio.to_thread(_url_kwargs, cfg) if cfg.iam_auth else {}
    return await psycopg.AsyncConnection.connect(
        cfg.url.reveal(),
        row_factory=dict_row,
        autocommit=autocommit,
        connect_timeout=cfg.connect_timeout,
        **extra,
    )


@contextmanager
def tenant_transaction(
    conn: psycopg.Connection[Any], company_id: uuid.UUID | str
) -> Iterator[psycopg.Connection[Any]]:
    """One unit of work for one company: a transaction whose first statement sets the tenant.

    The setting is transaction-local, so it cannot leak into the next use of a pooled
    connection; commit on success, roll back on any exception.
    """
    tenant = tenant_id(company_id)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside an open transaction this would be a savepoint, and the tenant setting would
        # outlive it for the rest of the outer transaction.
        raise TenantError("tenant_transaction needs a connection outside any transaction")
    with conn.transaction():
        conn.execute(_SET_TENANT, (tenant,))
        yield conn


@asynccontextmanager
async def tenant_transaction_async(
    conn: psycopg.AsyncConnection[Any], company_id: uuid.UUID | str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The asyncio twin of tenant_transaction."""
    tenant = tenant_id(company_id)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise TenantError("tenant_transaction needs a connection outside any transaction")
    async with conn.transaction():
        await conn.execute(_SET_TENANT, (tenant,))
        yield conn


class Pool:
    """A small thread-safe pool of runtime-role connections (URL or Cloud SQL alike).

    Connections are autocommit, so every unit of work is its own `tenant_transaction`;
    a connection that broke (the server went away) is dropped instead of reused.
    """

    def __init__(self, cfg: settings.DatabaseSettings, max_idle: int = 8) -> None:
        self._cfg = cfg
        self._idle: list[psycopg.Connection[dict[str, Any]]] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        conn = None
        with self._lock:
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if not candidate.closed and not candidate.broken:
                    conn = candidate
        if conn is None:
            conn = connect(self._cfg, autocommit=True)
        healthy = False
        try:
            yield conn
            healthy = True
        finally:
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if healthy and idle and not conn.broken:
                with self._lock:
                    if len(self._idle) < self._max_idle:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def async_pool(
    cfg: settings.DatabaseSettings, min_size: int = 1, max_size: int = 10
) -> psycopg_pool.AsyncConnectionPool:
    """An asyncio pool of autocommit runtime-role connections (open it before use)."""
    if cfg.cloud_sql_instance:
        assert cfg.password is not None
        conninfo = psycopg.conninfo.make_conninfo(
            host=f"/cloudsql/{cfg.cloud_sql_instance}",
            user=cfg.user,
            password=cfg.password.reveal(),
            dbname=cfg.name,
        )
    else:
        assert cfg.url is not None
        conninfo = cfg.url.reveal()
    base: dict[str, Any] = {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": cfg.connect_timeout,
    }

    async def per_connection() -> dict[str, Any]:
        # each new connection of the pool signs its own IAM token
        return base | await asyncio.to_thread(_url_kwargs, cfg)

    return psycopg_pool.AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs=per_connection if cfg.iam_auth else base,
        timeout=cfg.connect_timeout,
        open=False,
    )
