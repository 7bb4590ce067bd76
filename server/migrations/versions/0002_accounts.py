"""Accounts: throttle buckets; deleting a user keeps their (revoked) sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
    )
    op.alter_column("sessions", "user_id", existing_type=sa.UUID(), nullable=True)
    op.drop_constraint("fk_sessions_user_id_users", "sessions", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_sessions_user_id_users"),
        "sessions",
        "users",
        ["user_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.execute("DELETE FROM sessions WHERE user_id IS NULL")
    op.drop_constraint("fk_sessions_user_id_users", "sessions", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_sessions_user_id_users"),
        "sessions",
        "users",
        ["user_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.alter_column("sessions", "user_id", existing_type=sa.UUID(), nullable=False)
    op.drop_table("rate_limits")
