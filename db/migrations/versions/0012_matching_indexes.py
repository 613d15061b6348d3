"""Matching reads bookings per interpreter: by start time (the month's minutes, answered from the
index alone: it carries state and duration) and by booking time ("last served"). Two composite
indexes; the single-column one on `interpreter_id` is their prefix and goes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_interpreter_starts",
            ["interpreter_id", "starts_at", "state", "duration_minutes"],
            unique=False,
        )
        batch_op.create_index("ix_request_interpreter_booked", ["interpreter_id", "booked_at"], unique=False)
        batch_op.drop_index(batch_op.f("ix_request_interpreter_id"))


def downgrade() -> None:
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_interpreter_id"), ["interpreter_id"], unique=False)
        batch_op.drop_index("ix_request_interpreter_booked")
        batch_op.drop_index("ix_request_interpreter_starts")
