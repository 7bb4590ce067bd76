"""`python -m server.db.migrate`: apply the migrations to the configured database.

Uses `DATABASE_URL`, or the embedded PostgreSQL in `TODO_DATA_DIR`, exactly as
the server does (`make migrate`).
"""

from __future__ import annotations

import logging

from server.config import Settings
from server.db import database


def main() -> None:
    """Resolve the database from the environment and upgrade it to the latest revision."""
    logging.basicConfig(level=logging.WARNING, format="    %(message)s")
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # "Running upgrade"
    settings = Settings.from_env()
    if settings.database_url:
        print("==> using DATABASE_URL", flush=True)
    else:
        print(f"==> using the embedded PostgreSQL in {settings.data_dir}", flush=True)
    with database.open_database(settings) as url:
        print(f"==> migrating {database.describe(url)} to head", flush=True)
        database.run_migrations(url)
    print("==> migrations applied", flush=True)


if __name__ == "__main__":
    main()
