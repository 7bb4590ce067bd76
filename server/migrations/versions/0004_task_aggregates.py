"""Query shapes at a million tasks: per-user aggregates, the task_tags walk, reminders order.

- `task_counts`: per user, the number of tasks in total, completed, per priority,
  per category and per tag (what `tasks:stats` and `tags` return unfiltered);
- `task_time_counts`: per user and 15-minute bucket, completions (kind 1) and
  open tasks by due date (kind 2), for `completed_per_day`, `overdue` and
  `due_today` in any time zone (every zone's offset is a multiple of 15 minutes);
- `task_tags`: one row per (task, tag) in listing order, so a tag filter walks it
  newest first and stops at the page;
- `ix_tasks_user_id_remind_at` gains `id`, the reminders' tie-breaker, so the
  reminders query stops at its limit instead of sorting the window.

All three tables are kept by statement-level AFTER triggers on `tasks` with
transition tables: they run inside every write statement (the single writes,
the batches, deletions and the account-deletion cascade), in its transaction,
and see exactly the row versions the statement wrote. Concurrent writers meet
on the counter rows' locks (`ON CONFLICT DO UPDATE` adds to the latest
committed value), so the counts stay exact; rows are upserted in key order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 01:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIELDS = "user_id, id, completed, completed_at, priority, category, tags, due_at, created_at"
_BUCKET = "date_bin('15 minutes', {}, timestamptz '2000-01-01 00:00+00')"

_COUNTS = """
WITH d AS ({delta}),
x AS (
    SELECT user_id, 'total' AS dimension, '' AS value, sign FROM d
    UNION ALL SELECT user_id, 'completed', '', sign FROM d WHERE completed
    UNION ALL SELECT user_id, 'priority', priority::text, sign FROM d
    UNION ALL SELECT user_id, 'category', category, sign FROM d
    UNION ALL SELECT d.user_id, 'tag', tag, sign FROM d CROSS JOIN LATERAL unnest(d.tags) AS tag
),
s AS (
    SELECT user_id, dimension, value, sum(sign) AS n FROM x
    GROUP BY user_id, dimension, value HAVING sum(sign) <> 0
)
{apply_counts}
"""

_TIMES = """
WITH d AS ({delta}),
x AS (
    SELECT user_id, 1::smallint AS kind, {completed_bucket} AS bucket, sign FROM d
    WHERE completed AND completed_at IS NOT NULL
    UNION ALL
    SELECT user_id, 2::smallint, {due_bucket}, sign FROM d
    WHERE NOT completed AND due_at IS NOT NULL
),
s AS (
    SELECT user_id, kind, bucket, sum(sign) AS n FROM x
    GROUP BY user_id, kind, bucket HAVING sum(sign) <> 0
)
{apply_times}
""".replace("{completed_bucket}", _BUCKET.format("completed_at")).replace(
    "{due_bucket}", _BUCKET.format("due_at")
)

_UPSERT_COUNTS = """
INSERT INTO task_counts AS c (user_id, dimension, value, n)
SELECT user_id, dimension, value, n FROM s ORDER BY user_id, dimension, value
ON CONFLICT (user_id, dimension, value) DO UPDATE SET n = c.n + excluded.n"""

# A deletion only ever lowers rows that exist; UPDATE (not upsert) also stays quiet when the
# account-deletion cascade has removed the user's counter rows first.
_LOWER_COUNTS = """
UPDATE task_counts AS c SET n = c.n + s.n FROM s
WHERE c.user_id = s.user_id AND c.dimension = s.dimension AND c.value = s.value"""

_UPSERT_TIMES = """
INSERT INTO task_time_counts AS c (user_id, kind, bucket, n)
SELECT user_id, kind, bucket, n FROM s ORDER BY user_id, kind, bucket
ON CONFLICT (user_id, kind, bucket) DO UPDATE SET n = c.n + excluded.n"""

_LOWER_TIMES = """
UPDATE task_time_counts AS c SET n = c.n + s.n FROM s
WHERE c.user_id = s.user_id AND c.kind = s.kind AND c.bucket = s.bucket"""

_ADD_TAGS = """
INSERT INTO task_tags (user_id, tag, created_at, task_id)
SELECT DISTINCT r.user_id, tag, r.created_at, r.id
FROM ({rows}) AS r CROSS JOIN LATERAL unnest(r.tags) AS tag
ON CONFLICT DO NOTHING"""

_REMOVE_TAGS = """
DELETE FROM task_tags AS t
USING (SELECT DISTINCT r.user_id, tag, r.created_at, r.id
       FROM ({rows}) AS r CROSS JOIN LATERAL unnest(r.tags) AS tag) AS o
WHERE t.user_id = o.user_id AND t.tag = o.tag AND t.created_at = o.created_at
  AND t.task_id = o.id"""

_CHANGED = """
SELECT {side}.* FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
WHERE o.tags IS DISTINCT FROM n.tags OR o.created_at IS DISTINCT FROM n.created_at"""


def _delta(*sources: tuple[str, int]) -> str:
    return " UNION ALL ".join(f"SELECT {_FIELDS}, {sign} AS sign FROM {t}" for t, sign in sources)


def _function(name: str, statements: list[str]) -> str:
    body = ";\n".join(statements)
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
{body};
RETURN NULL;
END
$body$"""


_INSERTED = _delta(("new_rows", 1))
_DELETED = _delta(("old_rows", -1))
_UPDATED = _delta(("new_rows", 1), ("old_rows", -1))

_TRIGGERS = {
    # name: (event, transition tables, statements)
    "tasks_aggregates_insert": (
        "INSERT",
        "NEW TABLE AS new_rows",
        [
            _COUNTS.format(delta=_INSERTED, apply_counts=_UPSERT_COUNTS),
            _TIMES.format(delta=_INSERTED, apply_times=_UPSERT_TIMES),
            _ADD_TAGS.format(rows="SELECT * FROM new_rows"),
        ],
    ),
    "tasks_aggregates_update": (
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        [
            _COUNTS.format(delta=_UPDATED, apply_counts=_UPSERT_COUNTS),
            _TIMES.format(delta=_UPDATED, apply_times=_UPSERT_TIMES),
            _REMOVE_TAGS.format(rows=_CHANGED.format(side="o")),
            _ADD_TAGS.format(rows=_CHANGED.format(side="n")),
        ],
    ),
    "tasks_aggregates_delete": (
        "DELETE",
        "OLD TABLE AS old_rows",
        [
            _COUNTS.format(delta=_DELETED, apply_counts=_LOWER_COUNTS),
            _TIMES.format(delta=_DELETED, apply_times=_LOWER_TIMES),
            _REMOVE_TAGS.format(rows="SELECT * FROM old_rows"),
        ],
    ),
}


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("dimension", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_counts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "dimension", "value", name=op.f("pk_task_counts")),
    )
    op.create_table(
        "task_time_counts",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_task_time_counts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", "bucket", name=op.f("pk_task_time_counts")),
    )
    op.create_table(
        "task_tags",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "tag", "created_at", "task_id", name=op.f("pk_task_tags")
        ),
    )
    all_tasks = _delta(("tasks", 1))
    op.execute(_COUNTS.format(delta=all_tasks, apply_counts=_UPSERT_COUNTS))
    op.execute(_TIMES.format(delta=all_tasks, apply_times=_UPSERT_TIMES))
    op.execute(_ADD_TAGS.format(rows="SELECT * FROM tasks"))
    for name, (event, tables, statements) in _TRIGGERS.items():
        op.execute(_function(name, statements))
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON tasks REFERENCING {tables}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    op.drop_index("ix_tasks_user_id_remind_at", table_name="tasks")
    op.create_index(
        "ix_tasks_user_id_remind_at_id",
        "tasks",
        ["user_id", "remind_at", "id"],
        postgresql_where=sa.text("NOT completed AND remind_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_remind_at_id", table_name="tasks")
    op.create_index(
        "ix_tasks_user_id_remind_at",
        "tasks",
        ["user_id", "remind_at"],
        postgresql_where=sa.text("NOT completed AND remind_at IS NOT NULL"),
    )
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON tasks")
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("task_tags")
    op.drop_table("task_time_counts")
    op.drop_table("task_counts")
