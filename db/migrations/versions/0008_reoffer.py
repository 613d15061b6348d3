"""An interpreter may be offered a request again (after a hand-back); only one offer each may be open.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the unique constraint unnamed: PostgreSQL named it itself, SQLite's batch copy needs a name.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_name() -> str:
    return (
        "offer_request_id_interpreter_id_key"
        if op.get_bind().dialect.name == "postgresql"
        else "uq_offer_request_id"
    )


def upgrade() -> None:
    with op.batch_alter_table("offer", schema=None, naming_convention=_SQLITE_NAMES) as batch_op:
        batch_op.drop_constraint(_unique_name(), type_="unique")
        batch_op.create_index(
            "offer_one_open_per_interpreter",
            ["request_id", "interpreter_id"],
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.drop_index(
            "offer_one_open_per_interpreter",
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        )
        batch_op.create_unique_constraint(_unique_name(), ["request_id", "interpreter_id"])
