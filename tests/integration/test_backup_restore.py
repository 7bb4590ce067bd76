"""seed -> backup -> restore into a new database: every row identical, sessions included.

Runs the commands in-process through `server.cli.main.main` with DATABASE_URL pointing at
scratch databases on the test server (embedded PostgreSQL 18 or TEST_DATABASE_URL), using
the pg_dump/pg_restore that fit that server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.cli import main, seed
from server.db import database
from tests.conftest import _with_dbname, temporary_database

pytestmark = pytest.mark.integration


def _env(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "TODO_BCRYPT_ROUNDS": "4"}


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the public schema, in a stable order."""
    with psycopg.connect(url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }


@pytest.fixture
def seeded(postgres_server_url: str) -> Iterator[str]:
    """A migrated database with demo data, sessions in every state and a task change."""
    with temporary_database(postgres_server_url, prefix="todo_backup") as url:
        assert main.main(["migrate"], env=_env(url)) == main.OK
        argv = ["seed", "--users", "3", "--tasks", "40"]
        assert main.main(argv, env=_env(url)) == main.OK
        with psycopg.connect(url, autocommit=True) as connection:
            users = [r[0] for r in connection.execute("SELECT id FROM users ORDER BY email")]
            connection.execute(
                "INSERT INTO sessions (user_id, refresh_jti, expires_at, revoked_at) VALUES"
                " (%(a)s, 'live', now() + interval '1 day', NULL),"
                " (%(a)s, 'logged-out', now() + interval '1 day', now()),"
                " (%(b)s, 'other-live', now() + interval '1 day', NULL),"
                " (NULL, 'deleted-user', now() + interval '1 day', now() - interval '1 hour')",
                {"a": users[0], "b": users[1]},
            )
            connection.execute("UPDATE users SET change_seq = 1 WHERE id = %s", (users[0],))
            connection.execute(
                "INSERT INTO task_changes (user_id, seq, task_id, event_type, task)"
                " VALUES (%s, 1, gen_random_uuid(), 3, NULL)",
                (users[0],),
            )
        yield url


def test_round_trip_restores_every_row(
    seeded: str, postgres_server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "todo.dump"
    assert main.main(["backup", str(backup)], env=_env(seeded)) == main.OK
    assert backup.stat().st_size > 0
    assert not list(tmp_path.glob(".*.partial"))
    out = capsys.readouterr()
    assert "tables [" in out.err  # progress
    before = _snapshot(seeded)
    assert len(before["tasks"]) == 3 * 40 and len(before["sessions"]) == 4

    name = f"todo_restored_{uuid.uuid4().hex[:12]}"  # does not exist yet: restore creates it
    restored = _with_dbname(postgres_server_url, name)
    try:
        assert main.main(["restore", str(backup)], env=_env(restored)) == main.OK
        assert "tables [" in capsys.readouterr().err
        after = _snapshot(restored)
        assert after == before  # every row of every table, alembic_version included
        revoked = {row[2]: row[5] is not None for row in after["sessions"]}
        assert revoked == {
            "live": False,
            "logged-out": True,
            "other-live": False,
            "deleted-user": True,
        }
        assert main.main(["check"], env=_env(restored)) == main.OK
        # A second restore into the now non-empty database is refused and changes nothing.
        assert main.main(["restore", str(backup)], env=_env(restored)) == main.FAILED
        assert "not empty" in capsys.readouterr().err
        assert _snapshot(restored) == before
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_seed_is_idempotent_and_tops_up(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(seeded)
    assert main.main(["seed", "--users", "3", "--tasks", "40"], env=_env(seeded)) == main.OK
    assert _snapshot(seeded) == before
    assert "0 users created (3 existed), 0 tasks added" in capsys.readouterr().out
    assert main.main(["seed", "--users", "4", "--tasks", "50"], env=_env(seeded)) == main.OK
    out = capsys.readouterr().out
    assert "1 users created (3 existed), 80 tasks added" in out
    assert "demo4@example.com" in out and "demo-password" in out
    with psycopg.connect(seeded) as connection:
        counts = connection.execute(
            "SELECT u.email, count(t.id) FROM users u LEFT JOIN tasks t ON t.user_id = u.id"
            " GROUP BY u.email ORDER BY u.email"
        ).fetchall()
    assert counts == [(email, 50) for email in sorted(seed.demo_emails(4))]


def test_seed_accounts_log_in_with_the_printed_password(seeded: str) -> None:
    import asyncio

    from server.auth import passwords
    from server.auth.hash_pool import HashPool

    with psycopg.connect(seeded) as connection:
        row = connection.execute(
            "SELECT password_hash FROM users WHERE email = 'demo1@example.com'"
        ).fetchone()
    assert row is not None
    pool = HashPool(slots=1, queue=0, max_wait_s=0.0, priority="normal")
    hasher = passwords.PasswordHasher(4, pool)
    assert asyncio.run(hasher.verify(passwords.normalize("demo-password"), row[0]))
    pool.close()


def test_restore_refuses_what_is_not_a_backup(
    postgres_server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_text("not an archive at all, just text")
    with temporary_database(postgres_server_url, prefix="todo_junk") as url:
        assert main.main(["restore", str(junk)], env=_env(url)) == main.FAILED
        assert "not a backup" in capsys.readouterr().err
        assert _snapshot(url) == {}


def test_check_migrate_downgrade(postgres_server_url: str) -> None:
    with temporary_database(postgres_server_url, prefix="todo_cli") as url:
        assert main.main(["check"], env=_env(url)) == main.FAILED  # never migrated
        assert main.main(["migrate"], env=_env(url)) == main.OK
        assert main.main(["check"], env=_env(url)) == main.OK
        assert main.main(["downgrade", "-1"], env=_env(url)) == main.OK
        assert main.main(["check"], env=_env(url)) == main.FAILED
        current, heads = database.revisions(url)
        assert current and current != heads
        assert main.main(["downgrade", "nonsense"], env=_env(url)) == main.FAILED
        assert main.main(["migrate"], env=_env(url)) == main.OK


def test_an_unreachable_database_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/todo?connect_timeout=2"}
    assert main.main(["check"], env=env) == main.UNREACHABLE
    assert "cannot reach the database" in capsys.readouterr().err


def test_serve_refuses_a_database_behind_head(postgres_server_url: str) -> None:
    from server.config import ConfigError

    with temporary_database(postgres_server_url, prefix="todo_behind") as url:
        with pytest.raises(ConfigError, match="run `python -m server migrate` first"):
            database.prepare_schema(url, migrate=False)
        database.prepare_schema(url, migrate=True)
        database.prepare_schema(url, migrate=False)
