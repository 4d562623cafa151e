"""The integration tier: one real local stack per test session, started here, stopped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev.stack import Endpoints, LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(Path(tmp_path_factory.mktemp("stack")))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def endpoints(local_stack: LocalStack) -> Endpoints:
    assert local_stack.endpoints is not None
    return local_stack.endpoints


@pytest.fixture(scope="session")
def db_settings(endpoints: Endpoints) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(endpoints.env())


@pytest.fixture
def app_conn(db_settings: settings.DatabaseSettings) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the runtime role: the only kind that proves anything about RLS."""
    with db.connect(db_settings) as conn:
        yield conn


@pytest.fixture
def owner_conn(endpoints: Endpoints) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(endpoints.owner_url, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def superuser_conn(endpoints: Endpoints) -> Iterator[psycopg.Connection[Any]]:
    url = endpoints.admin_url.rsplit("/", 1)[0] + "/controlroom"
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        yield conn


def new_company(conn: psycopg.Connection[Any], name: str = "Acme") -> uuid.UUID:
    """A company created the way the product creates one: as the runtime role, in its tenant."""
    company_id = uuid.uuid4()
    with db.tenant_transaction(conn, company_id):
        conn.execute(
            "INSERT INTO companies (id, name, slug) VALUES (%s, %s, %s)",
            (company_id, name, f"c-{company_id.hex[:12]}"),
        )
    return company_id


@contextmanager
def services_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[LocalStack]:
    """A stack of its own with our services (functions, relay): for modules that stop parts."""
    stack = LocalStack(Path(tmp_path_factory.mktemp(name)), services=True)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def stack_env(stack: LocalStack) -> dict[str, str]:
    assert stack.endpoints is not None
    return stack.endpoints.env()
