"""Answers to events are deliveries too (durable, paced, retried), sent part by part, under a lease.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.alter_column("outbox_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("attachment", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("parts_sent", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("give_up_at", db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE outbox_id IS NULL")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("give_up_at")
        batch_op.drop_column("parts_sent")
        batch_op.drop_column("attachment")
        batch_op.drop_column("body")
        batch_op.alter_column("outbox_id", existing_type=sa.Integer(), nullable=False)
