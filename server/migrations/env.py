"""Alembic environment: the schema of `server.db.models`, on the sync psycopg 3 driver.

`server.db.database.alembic_config(url)` builds the configuration in code and
passes the URL the server resolved in `config.attributes["database_url"]`; a
caller may pass an open SQLAlchemy connection in `config.attributes["connection"]`
instead. Run from the Alembic command line (`alembic.ini` at the top of the
repository: `alembic current`, `alembic history`, `alembic upgrade head`), neither
is set, and the database is resolved exactly as the server does it: DATABASE_URL,
else the embedded PostgreSQL in TODO_DATA_DIR.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from server.config import Settings
from server.db import database, models

config = context.config
target_metadata = models.Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade --sql`) without a database."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on one opened from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url")
    if not url:
        with database.open_database(Settings.from_env()) as resolved:
            _run_on(resolved)
        return
    _run_on(url)


def _run_on(url: str) -> None:
    engine = database.sync_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
