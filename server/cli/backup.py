"""`backup FILE` and `restore FILE`: pg_dump's custom format, with progress.

A backup is one pg_dump run, so it is consistent: pg_dump reads every table in one
repeatable-read snapshot while the service keeps writing. It is written to a hidden
`.FILE.partial` beside FILE and renamed when complete, so FILE is never half a backup.

A restore goes into an empty database only (created if it does not exist), in one
transaction (all or nothing), and then migrates it to head, so a backup taken by an
older release comes back on the current schema. Sessions are rows like any other:
every session revoked before the backup is revoked after the restore.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import psycopg
from psycopg import conninfo

from server.cli import pg_tools
from server.cli.progress import Progress
from server.config import Settings
from server.db import database

OK = 0
TABLES = """
SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `backup` and `restore` on the CLI's subparsers."""
    backup = commands.add_parser(
        "backup", help="write a pg_dump (custom format) of the database", description=__doc__
    )
    backup.add_argument("file", metavar="FILE", type=Path, help="the backup to write")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    backup.set_defaults(handler=backup_command)
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty database", description=__doc__
    )
    restore.add_argument("file", metavar="FILE", type=Path, help="a file written by backup")
    restore.set_defaults(handler=restore_command)
    for command in (backup, restore):
        command.add_argument(
            "--pg-bin",
            type=Path,
            metavar="DIR",
            help="folder of pg_dump/pg_restore (default: the newest fit one found)",
        )


def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    """Dump the database to FILE."""
    target: Path = args.file
    if target.exists() and not args.force:
        raise pg_tools.ToolError(f"{target} exists (--force overwrites it)")
    if not target.parent.is_dir():
        raise pg_tools.ToolError(f"folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    with database.open_database(settings) as url:
        tool = pg_tools.find("pg_dump", pg_tools.server_major(url), args.pg_bin)
        print(f"==> backing up {database.describe(url)} with {tool.path}", flush=True)
        revision = ", ".join(database.revisions(url)[0]) or "none"
        progress = Progress("tables", _count_tables(url), "tables")
        dbname, env = pg_tools.connection_args(url)
        command = [str(tool.path), "--format=custom", "--verbose", f"--file={partial}"]
        try:
            pg_tools.run(
                [*command, f"--dbname={dbname}"],
                env,
                lambda line: progress.advance() if "dumping contents of table" in line else None,
            )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        progress.finish()
    partial.replace(target)
    size = target.stat().st_size
    print(f"==> wrote {target} ({size / 1e6:,.1f} MB, schema revision {revision})", flush=True)
    return OK


def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    """Restore FILE into the (empty or missing) database, then migrate it to head."""
    source: Path = args.file
    if not source.is_file():
        raise pg_tools.ToolError(f"{source} does not exist")
    with database.open_database(settings) as url:
        _create_if_missing(url)
        tool = pg_tools.find("pg_restore", pg_tools.server_major(url), args.pg_bin)
        tables = _count_archive_tables(tool, source)
        _refuse_if_not_empty(url)
        print(f"==> restoring {source} into {database.describe(url)} with {tool.path}")
        progress = Progress("tables", tables, "tables")
        dbname, env = pg_tools.connection_args(url)
        pg_tools.run(
            [
                str(tool.path),
                "--verbose",
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "--no-acl",
                f"--dbname={dbname}",
                str(source),
            ],
            env,
            lambda line: progress.advance() if "processing data for table" in line else None,
        )
        progress.finish()
        print("==> migrating the restored database to head", flush=True)
        database.run_migrations(url)
        revision = ", ".join(database.revisions(url)[0])
    print(f"==> restored {source} (schema revision {revision})", flush=True)
    return OK


def _count_tables(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(TABLES).fetchone()
    return int(row[0]) if row else 0


def _count_archive_tables(tool: pg_tools.Tool, source: Path) -> int:
    """Table data entries in the archive's table of contents; checks it is an archive."""
    try:
        listing = pg_tools.table_of_contents(tool, source)
    except pg_tools.ToolError as error:
        raise pg_tools.ToolError(
            f"{source} is not a backup written by `backup` (a pg_dump custom-format archive): "
            f"{error}"
        ) from None
    return sum(" TABLE DATA " in line for line in listing)


def _create_if_missing(url: str) -> None:
    """Create the database `url` names when it does not exist yet (on the same server)."""
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
        name = str(conninfo.conninfo_to_dict(url)["dbname"])
        print(f"==> creating database {name}", flush=True)
        database.ensure_database(conninfo.make_conninfo(url, dbname="postgres"), name)


def _refuse_if_not_empty(url: str) -> None:
    if _count_tables(url):
        raise pg_tools.ToolError(
            f"{database.describe(url)} is not empty: restore only into an empty database "
            "(point DATABASE_URL at a new one; it is created if missing)"
        )
