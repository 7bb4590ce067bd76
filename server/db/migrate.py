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
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    settings = Settings.from_env()
    source = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    print(f"==> using {source}", flush=True)
    with database.open_database(settings) as handle:
        print(f"==> migrating {database.describe(handle.url)} to head", flush=True)
        database.run_migrations(handle.url)
    print("==> migrations applied", flush=True)


if __name__ == "__main__":
    main()
