"""Where the database is: DATABASE_URL, or a private embedded PostgreSQL; and migrations.

With `settings.database_url` set, that server is used as is. Without it,
`open_database` starts (or joins) the embedded PostgreSQL 18 whose data lives
in `settings.data_dir / "pg"`, creates the `todo` database if missing and
yields a libpq URI for it: `postgresql://postgres:@/todo?host=<socket dir>`.
Only the parent process does this; workers receive the URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import alembic.config
import psycopg
import sqlalchemy as sa
from alembic import command
from psycopg import conninfo, sql

from server.config import Settings
from server.db import embedded

DATABASE_NAME = "todo"
"""The database created on the embedded server."""

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
"""Alembic's script location: `migrations/` at the top of the repository."""


@contextlib.contextmanager
def open_database(settings: Settings) -> Iterator[str]:
    """Resolve the database the server uses, starting the embedded one if needed.

    `settings.database_url` is yielded as is. Otherwise the embedded server in
    `settings.data_dir / "pg"` is started (or joined, if another process runs
    it), the `todo` database is created if missing, and its libpq URI is
    yielded. Leaving the block releases the embedded server: it stops unless
    another live process still holds it (see `server.db.embedded`).

    Args:
        settings: `database_url`, or else `data_dir` for the embedded server.

    Yields:
        A libpq URI (or conninfo string) usable by psycopg and `run_migrations`.
    """
    if settings.database_url:
        yield settings.database_url
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with embedded.embedded_server(settings.data_dir / "pg") as server:
        ensure_database(server.get_uri(), DATABASE_NAME)
        yield server.get_uri(DATABASE_NAME)


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server `server_url` points at, unless it exists."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is not None:
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # created concurrently
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def describe(url: str) -> str:
    """A printable description of the database, without credentials."""
    params = conninfo.conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"database {params.get('dbname', '?')} at {host}:{port}"


def sync_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine on the sync psycopg 3 driver (`postgresql+psycopg`), unpooled.

    psycopg opens the connections itself, so any libpq URI or conninfo string works.
    """
    return sa.create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(url),
        poolclass=sa.pool.NullPool,
    )


def alembic_config(url: str) -> alembic.config.Config:
    """Alembic's configuration, built in code (there is no alembic.ini)."""
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = url
    return config


def run_migrations(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the latest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at `url` to `revision` (`base` removes every table)."""
    command.downgrade(alembic_config(url), revision)
