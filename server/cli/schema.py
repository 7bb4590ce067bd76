"""`migrate`, `downgrade REV` and `check`: the schema, through Alembic."""

from __future__ import annotations

import argparse
import logging

from server.config import Settings
from server.db import database

OK, FAILED = 0, 1


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the schema commands on the CLI's subparsers."""
    migrate = commands.add_parser(
        "migrate", help="apply every migration (to head)", description=migrate_command.__doc__
    )
    migrate.set_defaults(handler=migrate_command)
    downgrade = commands.add_parser(
        "downgrade", help="downgrade to a revision", description=downgrade_command.__doc__
    )
    downgrade.add_argument("revision", metavar="REV", help="revision id, -1, or base")
    downgrade.set_defaults(handler=downgrade_command)
    check = commands.add_parser(
        "check", help="exit 1 unless the database is at head", description=check_command.__doc__
    )
    check.set_defaults(handler=check_command)


def _alembic_logs() -> None:
    """Show Alembic's "Running upgrade a -> b" lines: the progress of a migration."""
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)


def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    """Upgrade the database (DATABASE_URL, or the embedded one) to the latest revision."""
    _alembic_logs()
    with database.open_database(settings) as url:
        print(f"==> migrating {database.describe(url)} to head", flush=True)
        database.run_migrations(url)
        current, _ = database.revisions(url)
    print(f"==> at revision {', '.join(current)}", flush=True)
    return OK


def downgrade_command(settings: Settings, args: argparse.Namespace) -> int:
    """Downgrade the database to REV (an id, `-1` for one step, `base` to drop every table).

    Stop the servers first: the code they run expects the latest schema.
    """
    _alembic_logs()
    with database.open_database(settings) as url:
        print(f"==> downgrading {database.describe(url)} to {args.revision}", flush=True)
        database.downgrade(url, args.revision)
        current, _ = database.revisions(url)
    print(f"==> at revision {', '.join(current) or 'none (base)'}", flush=True)
    return OK


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 if the database is at the latest revision, 1 if not (3: unreachable)."""
    with database.open_database(settings) as url:
        current, heads = database.revisions(url)
        where = database.describe(url)
    shown = ", ".join(current) or "none"
    if current == heads:
        print(f"{where}: at head ({shown})", flush=True)
        return OK
    print(f"{where}: at {shown}, head is {', '.join(heads)}: run migrate", flush=True)
    return FAILED
