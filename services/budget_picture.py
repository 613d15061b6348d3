"""The budget over its fiscal year: charged and reserved money day by day, and where the pace leads.

The history is rebuilt from the append-only ledger: at the end of each day, what was charged
(charges and a coordinator's adjustments) and what was still reserved (reserves minus releases).
The projection extends the money committed so far (charged plus reserved) at the year's average
daily pace up to today; the budget runs out on the first day that line reaches the total. Using
committed money rather than charges alone counts bookings as soon as they are made, which is
when a coordinator can still act on them.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from db.models import Budget, LedgerEntry
from services.vocabulary import LedgerKind

BERLIN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class BudgetDay:
    day: date
    charged_cents: int
    reserved_cents: int

    @property
    def committed_cents(self) -> int:
        return self.charged_cents + self.reserved_cents


@dataclass(frozen=True)
class Projection:
    """Where the year's pace leads: committed money at the year's end, and the day the money runs out."""

    total_cents: int
    committed_cents: int
    year_end_cents: int
    runs_out_on: date | None


def budget_history(session: Session, budget: Budget, today: date) -> list[BudgetDay]:
    """One point per day from 1 January to `today` (or the year's end, if that is earlier)."""
    first = date(budget.fiscal_year, 1, 1)
    last = min(today, date(budget.fiscal_year, 12, 31))
    charged: dict[date, int] = {}
    reserved: dict[date, int] = {}
    entries = session.exec(
        select(LedgerEntry).where(LedgerEntry.budget_id == budget.id).order_by(col(LedgerEntry.id))
    )
    for entry in entries:
        day = max(first, entry.created_at.astimezone(BERLIN).date())
        if entry.kind in (LedgerKind.CHARGE, LedgerKind.ADJUST):
            charged[day] = charged.get(day, 0) + entry.amount_cents
        elif entry.kind == LedgerKind.RESERVE:
            reserved[day] = reserved.get(day, 0) + entry.amount_cents
        else:
            reserved[day] = reserved.get(day, 0) - entry.amount_cents
    history: list[BudgetDay] = []
    running_charged = running_reserved = 0
    day = first
    while day <= last:
        running_charged += charged.get(day, 0)
        running_reserved += reserved.get(day, 0)
        history.append(BudgetDay(day, running_charged, running_reserved))
        day += timedelta(days=1)
    return history


def days_in_year(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def project(total_cents: int, committed_cents: int, year: int, today: date) -> Projection:
    """Extend `committed_cents`, spent over the days from 1 January to `today`, at the same pace."""
    elapsed = (today - date(year, 1, 1)).days + 1
    length = days_in_year(year)
    elapsed = max(1, min(elapsed, length))
    # Integer arithmetic throughout: the pace is committed/elapsed cents per day, kept as a fraction.
    year_end = (committed_cents * length + elapsed // 2) // elapsed
    if committed_cents >= total_cents:
        runs_out: date | None = min(today, date(year, 12, 31))
    elif committed_cents <= 0:
        runs_out = None
    else:
        day_number = -(-total_cents * elapsed // committed_cents)  # the first day the line reaches the total
        runs_out = date(year, 1, 1) + timedelta(days=day_number - 1) if day_number <= length else None
    return Projection(total_cents, committed_cents, max(year_end, committed_cents), runs_out)


def budget_picture(session: Session, budget: Budget, now: datetime) -> tuple[list[BudgetDay], Projection]:
    """The history up to today and its projection, for the budget chart."""
    today = now.astimezone(BERLIN).date()
    history = budget_history(session, budget, today)
    committed = budget.charged_cents + budget.reserved_cents
    return history, project(budget.total_cents, committed, budget.fiscal_year, today)
