"""Strangers cost nothing: one bounded counter row per chat for wrong invite codes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stranger_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "user_hash"),
    )
    with op.batch_alter_table("stranger_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stranger_attempt_window_start"), ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stranger_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stranger_attempt_window_start"))

    op.drop_table("stranger_attempt")
