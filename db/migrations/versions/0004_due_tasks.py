"""Due tasks: offer expiry, reminders, closeout prompts, auto-confirmation, digests, budget alerts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "due_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=40), nullable=False),
        sa.Column("due_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subject_id", "variant"),
    )
    with op.batch_alter_table("due_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_due_task_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_due_task_done_at"), ["done_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_due_task_due_at"), ["due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("due_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_due_task_due_at"))
        batch_op.drop_index(batch_op.f("ix_due_task_done_at"))
        batch_op.drop_index(batch_op.f("ix_due_task_district_id"))

    op.drop_table("due_task")
