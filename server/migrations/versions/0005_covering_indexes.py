"""Query shapes at a million tasks: two indexes cover what their walks filter or return.

- `ix_tasks_user_id_created_at_id` (the listing's index) includes `due_at`: a due-date
  range page walks the listing by index alone (the filter reads the index tuple, about
  2,000 of them for 51 matches at the bench's density) and reads only the page's rows
  from the table, instead of every walked row.
- `ix_tasks_user_id_remind_at_id` (open tasks with a reminder) includes `title` and
  `due_at`, the rest of what the reminders query returns: it becomes an index-only scan
  (up to 1,000 rows a call, each on its own heap page otherwise). `title` is at most
  200 characters, well within an index tuple.

Each index keeps its name and key columns, so no plan that used it changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 03:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTING = "ix_tasks_user_id_created_at_id"
_LISTING_KEYS = ["user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")]
_REMINDERS = "ix_tasks_user_id_remind_at_id"
_REMINDERS_KEYS = ["user_id", "remind_at", "id"]
_REMINDERS_WHERE = sa.text("NOT completed AND remind_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index(_LISTING, table_name="tasks")
    op.create_index(_LISTING, "tasks", _LISTING_KEYS, postgresql_include=["due_at"])
    op.drop_index(_REMINDERS, table_name="tasks")
    op.create_index(
        _REMINDERS,
        "tasks",
        _REMINDERS_KEYS,
        postgresql_where=_REMINDERS_WHERE,
        postgresql_include=["title", "due_at"],
    )


def downgrade() -> None:
    op.drop_index(_REMINDERS, table_name="tasks")
    op.create_index(_REMINDERS, "tasks", _REMINDERS_KEYS, postgresql_where=_REMINDERS_WHERE)
    op.drop_index(_LISTING, table_name="tasks")
    op.create_index(_LISTING, "tasks", _LISTING_KEYS)
