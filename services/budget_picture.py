"""The budget over its fiscal year: charged and reserved money day by day, and where the pace leads.

The history is rebuilt from the append-only ledger: at the end of each day, what was charged
(charges and a coordinator's adjustments) and what was still reserved (reserves minus releases).

The projection starts from the money committed today (charged plus reserved, bookings ahead
included) and adds, for every day left in the year, the year's average daily spending so far: the
money of the sessions that have taken place (charged, or reserved while their report is awaited)
divided by the days since 1 January. Counting only sessions held keeps bookings made in December
for January from looking like a January spending spree. The budget runs out on the first day that
line reaches the total.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from db.models import Budget, LedgerEntry, Request
from services.clock import BERLIN
from services.vocabulary import LedgerKind


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
    held_cents: int  # the money of sessions that have taken place
    today: date
    elapsed_days: int
    year_end_cents: int
    runs_out_on: date | None

    def committed_on(self, day: date) -> float:
        """The projected committed money (cents) on a day from today on."""
        return self.committed_cents + self.held_cents * (day - self.today).days / self.elapsed_days


@dataclass(frozen=True)
class _Entry:
    kind: str
    amount_cents: int
    day: date  # when it was posted, in Berlin
    session_begun: bool  # its request's session had begun by now (False for entries without one)


def _entries(session: Session, budget: Budget, now: datetime) -> list[_Entry]:
    """The budget's ledger, read once for both the history and the pace."""
    query = (
        select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.created_at, Request.starts_at)
        .join(Request, col(Request.id) == LedgerEntry.request_id, isouter=True)
        .where(LedgerEntry.budget_id == budget.id)
        .order_by(col(LedgerEntry.id))
    )
    return [
        _Entry(kind, amount, created.astimezone(BERLIN).date(), starts_at is not None and starts_at <= now)
        for kind, amount, created, starts_at in session.exec(query)
    ]


def budget_history(entries: list[_Entry], year: int, today: date) -> list[BudgetDay]:
    """One point per day from 1 January to `today` (or the year's end, if that is earlier)."""
    first = date(year, 1, 1)
    last = min(today, date(year, 12, 31))
    charged: dict[date, int] = {}
    reserved: dict[date, int] = {}
    for entry in entries:
        day = max(first, entry.day)
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


def project(total_cents: int, committed_cents: int, held_cents: int, year: int, today: date) -> Projection:
    """Extend today's `committed_cents` by the daily pace of `held_cents`, spent since 1 January."""
    length = days_in_year(year)
    elapsed = max(1, min((today - date(year, 1, 1)).days + 1, length))
    today = date(year, 1, 1) + timedelta(days=elapsed - 1)
    # Integer arithmetic throughout: the pace is held/elapsed cents per day, kept as a fraction.
    year_end = committed_cents + (held_cents * (length - elapsed) + elapsed // 2) // elapsed
    runs_out: date | None = None
    if committed_cents >= total_cents:
        runs_out = today
    elif held_cents > 0:
        more = -(-(total_cents - committed_cents) * elapsed // held_cents)  # days until the line reaches it
        if elapsed + more <= length:
            runs_out = today + timedelta(days=more)
    return Projection(total_cents, committed_cents, held_cents, today, elapsed, year_end, runs_out)


def held_cents(entries: list[_Entry]) -> int:
    """The money of sessions that have begun: charged, or still reserved while the report is awaited."""
    held = 0
    for entry in entries:
        if entry.kind in (LedgerKind.CHARGE, LedgerKind.ADJUST):
            held += entry.amount_cents
        elif entry.session_begun:
            held += entry.amount_cents if entry.kind == LedgerKind.RESERVE else -entry.amount_cents
    return held


def _projection(budget: Budget, entries: list[_Entry], now: datetime) -> Projection:
    committed = budget.charged_cents + budget.reserved_cents
    today = now.astimezone(BERLIN).date()
    return project(budget.total_cents, committed, held_cents(entries), budget.fiscal_year, today)


def projection_of(session: Session, budget: Budget, now: datetime) -> Projection:
    """Where the budget's year leads from `now`."""
    return _projection(budget, _entries(session, budget, now), now)


def budget_picture(session: Session, budget: Budget, now: datetime) -> tuple[list[BudgetDay], Projection]:
    """The history up to today and its projection, for the budget chart."""
    entries = _entries(session, budget, now)
    history = budget_history(entries, budget.fiscal_year, now.astimezone(BERLIN).date())
    return history, _projection(budget, entries, now)
