"""Running totals of the ledger for the budget picture: per budget and Berlin day of posting
(`budget_day`), and each request's open reservation (`open_reservation`, with a copy of the
request's start time that the database keeps in step through a foreign key on (id, starts_at),
ON UPDATE CASCADE). Filled here from the ledger, then kept by every posting in the same transaction.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BERLIN = ZoneInfo("Europe/Berlin")

# Per entry its change to the charges (charge, adjust) and to the reservations (reserve - release).
_DAYS_POSTGRESQL = """
INSERT INTO budget_day (budget_id, day, charged_cents, reserved_cents)
SELECT budget_id, CAST(timezone('Europe/Berlin', created_at) AS DATE),
       SUM(CASE WHEN kind IN ('charge', 'adjust') THEN amount_cents ELSE 0 END),
       SUM(CASE WHEN kind IN ('charge', 'adjust') THEN 0
                WHEN kind = 'reserve' THEN amount_cents ELSE -amount_cents END)
FROM ledger_entry GROUP BY 1, 2
"""
_HOURS_SQLITE = """
SELECT budget_id, substr(created_at, 1, 13),
       SUM(CASE WHEN kind IN ('charge', 'adjust') THEN amount_cents ELSE 0 END),
       SUM(CASE WHEN kind IN ('charge', 'adjust') THEN 0
                WHEN kind = 'reserve' THEN amount_cents ELSE -amount_cents END)
FROM ledger_entry GROUP BY 1, 2
"""
_OPEN = """
INSERT INTO open_reservation (request_id, budget_id, starts_at, amount_cents)
SELECT e.request_id, e.budget_id, r.starts_at,
       SUM(CASE WHEN e.kind = 'reserve' THEN e.amount_cents ELSE -e.amount_cents END)
FROM ledger_entry e JOIN request r ON r.id = e.request_id
WHERE e.kind IN ('reserve', 'release')
GROUP BY e.request_id, e.budget_id, r.starts_at
HAVING SUM(CASE WHEN e.kind = 'reserve' THEN e.amount_cents ELSE -e.amount_cents END) <> 0
"""


def upgrade() -> None:
    budget_day = op.create_table(
        "budget_day",
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("charged_cents", sa.Integer(), nullable=False),
        sa.Column("reserved_cents", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"]),
        sa.PrimaryKeyConstraint("budget_id", "day"),
    )
    op.create_index("uq_request_id_starts", "request", ["id", "starts_at"], unique=True)
    op.create_table(
        "open_reservation",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"]),
        sa.ForeignKeyConstraint(
            ["request_id", "starts_at"],
            ["request.id", "request.starts_at"],
            name="fk_open_reservation_request_starts",
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "budget_id"),
    )
    op.create_index(
        "ix_open_reservation_budget_starts", "open_reservation", ["budget_id", "starts_at"], unique=False
    )
    connection = op.get_bind()
    assert budget_day is not None
    _fill_days(connection, budget_day)
    connection.execute(sa.text(_OPEN))


def _fill_days(connection: sa.Connection, budget_day: sa.Table) -> None:
    """The ledger summed per budget and Berlin day of posting.

    PostgreSQL groups by the Berlin day itself. SQLite has no time zones: it groups by the UTC hour
    (the stored text's first 13 characters), which Python puts into its Berlin day; exact, as
    Berlin's offset from UTC is whole hours.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(_DAYS_POSTGRESQL))
        return
    totals: dict[tuple[int, date], tuple[int, int]] = {}
    by_hour = connection.execute(sa.text(_HOURS_SQLITE))
    for budget_id, hour, charged, reserved in by_hour:
        day = datetime.fromisoformat(f"{hour}:00+00:00").astimezone(BERLIN).date()
        before = totals.get((budget_id, day), (0, 0))
        totals[(budget_id, day)] = (before[0] + int(charged), before[1] + int(reserved))
    rows = [
        {"budget_id": b, "day": d, "charged_cents": c, "reserved_cents": r}
        for (b, d), (c, r) in totals.items()
    ]
    if rows:
        connection.execute(budget_day.insert(), rows)


def downgrade() -> None:
    op.drop_index("ix_open_reservation_budget_starts", table_name="open_reservation")
    op.drop_table("open_reservation")
    op.drop_index("uq_request_id_starts", table_name="request")
    op.drop_table("budget_day")
