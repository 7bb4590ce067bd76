from __future__ import annotations

import psycopg
from alembic import autogenerate, migration

from server.db import database, models

TABLES = {
    "users",
    "sessions",
    "tasks",
    "rate_limits",
    "task_changes",
    "idempotency_keys",
    "task_counts",
    "task_time_counts",
    "task_tags",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def _schema_differences(url: str) -> list[object]:
    engine = database.sync_engine(url)
    try:
        with engine.connect() as connection:
            context = migration.MigrationContext.configure(connection)
            return list(autogenerate.compare_metadata(context, models.Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_database_url: str) -> None:
    database.run_migrations(scratch_database_url)
    assert _tables(scratch_database_url) == TABLES | {"alembic_version"}
    assert _schema_differences(scratch_database_url) == []  # models and migrations agree

    database.downgrade(scratch_database_url, "base")
    assert _tables(scratch_database_url) == {"alembic_version"}

    database.run_migrations(scratch_database_url)
    assert _tables(scratch_database_url) == TABLES | {"alembic_version"}


def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    database.run_migrations(database_url)

    assert _schema_differences(database_url) == []
