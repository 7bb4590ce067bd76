"""Initial schema: users, sessions, tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:47:27.144176
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("refresh_jti", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"], unique=False)
    op.create_index(
        "ix_sessions_revoked_at",
        "sessions",
        ["revoked_at"],
        unique=False,
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.SmallInteger(), server_default=sa.text("2"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("category", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name=op.f("ck_tasks_priority")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tasks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index("ix_tasks_user_id_tags", "tasks", ["user_id", "tags"], postgresql_using="gin")
    op.create_index(
        "ix_tasks_user_id_created_at_id",
        "tasks",
        ["user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    for column in ("completed", "priority", "category"):
        op.create_index(
            f"ix_tasks_user_id_{column}_created_at_id",
            "tasks",
            ["user_id", column, sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        )
    op.create_index(
        "ix_tasks_user_id_updated_at_id",
        "tasks",
        ["user_id", sa.literal_column("updated_at DESC"), sa.literal_column("id DESC")],
    )
    op.create_index("ix_tasks_user_id_due_at_id", "tasks", ["user_id", "due_at", "id"])
    op.create_index(
        "ix_tasks_user_id_due_order",
        "tasks",
        ["user_id", sa.text("(due_at IS NULL)"), "due_at", "id"],
    )
    op.create_index(
        "ix_tasks_user_id_lower_title_id", "tasks", ["user_id", sa.text("lower(title)"), "id"]
    )
    op.create_index(
        "ix_tasks_user_id_remind_at",
        "tasks",
        ["user_id", "remind_at"],
        postgresql_where=sa.text("NOT completed AND remind_at IS NOT NULL"),
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in ("title", "description"):
        op.create_index(
            f"ix_tasks_{column}_trgm",
            "tasks",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    for index in (
        "ix_tasks_title_trgm",
        "ix_tasks_description_trgm",
        "ix_tasks_user_id_remind_at",
        "ix_tasks_user_id_lower_title_id",
        "ix_tasks_user_id_due_order",
        "ix_tasks_user_id_due_at_id",
        "ix_tasks_user_id_updated_at_id",
        "ix_tasks_user_id_completed_created_at_id",
        "ix_tasks_user_id_priority_created_at_id",
        "ix_tasks_user_id_category_created_at_id",
    ):
        op.drop_index(index, table_name="tasks")
    op.drop_index("ix_tasks_user_id_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_tags", table_name="tasks", postgresql_using="gin")
    op.drop_table("tasks")
    op.drop_index("ix_sessions_revoked_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("users")
