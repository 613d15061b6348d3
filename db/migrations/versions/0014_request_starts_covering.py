"""Matching reads the bookings around a session's time (who is busy then) by start time; the index
on `starts_at` alone sent every hit to the table (on PostgreSQL ~140 pages per request). It now
carries what the check needs (interpreter, state, mode, duration, id), so the window is read from
the index alone. It replaces the single-column one, whose prefix it is: no extra index to keep.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["starts_at", "interpreter_id", "state", "mode", "duration_minutes", "id"]


def upgrade() -> None:
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.create_index("ix_request_starts_busy", COLUMNS, unique=False)
        batch_op.drop_index(batch_op.f("ix_request_starts_at"))


def downgrade() -> None:
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_starts_at"), ["starts_at"], unique=False)
        batch_op.drop_index("ix_request_starts_busy")
