"""The budget over its fiscal year: charged and reserved money day by day, and where the pace leads.

The history is rebuilt from the append-only ledger: at the end of each day, what was charged
(charges and a coordinator's adjustments) and what was still reserved (reserves minus releases).
It reads the daily totals kept with each entry (`budget_day`, about 370 rows a year) and the open
reservations (`open_reservation`), never the entries themselves; both always equal the ledger's sums.

The projection starts from the money committed today (charged plus reserved, bookings ahead
included) and adds, for every day left in the year, the year's average daily spending so far: the
money of the sessions that have taken place (charged, or reserved while their report is awaited)
divided by the days since 1 January. Counting only sessions held keeps bookings made in December
for January from looking like a January spending spree. The budget runs out on the first day that
line reaches the total.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Budget, BudgetDayTotal, OpenReservation
from services.clock import BERLIN


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
class _Ledger:
    """The budget's ledger as the database sums it: the change per Berlin day, and the money held."""

    charged_by_day: dict[date, int]  # charges and adjustments
    reserved_by_day: dict[date, int]  # reserves minus releases
    begun_reserved_cents: int  # reserves minus releases of requests whose session had begun by `now`

    @property
    def held_cents(self) -> int:
        """The money of sessions that have begun: charged, or still reserved while the report is awaited."""
        return sum(self.charged_by_day.values()) + self.begun_reserved_cents


def _days(session: Session, budget_id: int) -> list[tuple[date, int, int]]:
    """The change to the charges and to the reservations per Berlin day of posting: the running
    totals kept with each entry (`services.ledger`), one row a day."""
    by_day = select(
        col(BudgetDayTotal.day), BudgetDayTotal.charged_cents, BudgetDayTotal.reserved_cents
    ).where(BudgetDayTotal.budget_id == budget_id)
    return [(d, int(c), int(r)) for d, c, r in session.exec(by_day)]


def _begun_reserved(session: Session, budget_id: int, now: datetime) -> int:
    """What is reserved, net of releases, for requests whose session had begun by `now`: the open
    reservations (kept with each entry, 0 ones deleted) that started by then, one index range (each
    carries its request's start time, kept equal to it by the database)."""
    query = select(func.coalesce(func.sum(OpenReservation.amount_cents), 0)).where(
        OpenReservation.budget_id == budget_id, col(OpenReservation.starts_at) <= now
    )
    return int(session.exec(query).one())


def _ledger(session: Session, budget: Budget, now: datetime) -> _Ledger:
    """The budget's ledger summed for both the history and the pace."""
    assert budget.id is not None
    charged: dict[date, int] = {}
    reserved: dict[date, int] = {}
    for day, charged_change, reserved_change in _days(session, budget.id):
        charged[day] = charged.get(day, 0) + charged_change
        reserved[day] = reserved.get(day, 0) + reserved_change
    return _Ledger(charged, reserved, _begun_reserved(session, budget.id, now))


def budget_history(ledger: _Ledger, year: int, today: date) -> list[BudgetDay]:
    """One point per day from 1 January to `today` (or the year's end, if that is earlier).

    What was posted before 1 January (bookings for January made in December) counts on 1 January.
    """
    first = date(year, 1, 1)
    last = min(today, date(year, 12, 31))
    charged = _from_first(ledger.charged_by_day, first)
    reserved = _from_first(ledger.reserved_by_day, first)
    history: list[BudgetDay] = []
    running_charged = running_reserved = 0
    day = first
    while day <= last:
        running_charged += charged.get(day, 0)
        running_reserved += reserved.get(day, 0)
        history.append(BudgetDay(day, running_charged, running_reserved))
        day += timedelta(days=1)
    return history


def _from_first(by_day: dict[date, int], first: date) -> dict[date, int]:
    """The sums per day with the days before `first` added to `first`."""
    moved: dict[date, int] = {}
    for day, total in by_day.items():
        key = max(first, day)
        moved[key] = moved.get(key, 0) + total
    return moved


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


def _projection(budget: Budget, held: int, now: datetime) -> Projection:
    committed = budget.charged_cents + budget.reserved_cents
    today = now.astimezone(BERLIN).date()
    return project(budget.total_cents, committed, held, budget.fiscal_year, today)


def projection_of(session: Session, budget: Budget, now: datetime) -> Projection:
    """Where the budget's year leads from `now`.

    The charges come from the budget row's running total, which always equals the ledger's sum.
    """
    assert budget.id is not None
    return _projection(budget, budget.charged_cents + _begun_reserved(session, budget.id, now), now)


def budget_picture(session: Session, budget: Budget, now: datetime) -> tuple[list[BudgetDay], Projection]:
    """The history up to today and its projection, for the budget chart."""
    ledger = _ledger(session, budget, now)
    history = budget_history(ledger, budget.fiscal_year, now.astimezone(BERLIN).date())
    return history, _projection(budget, ledger.held_cents, now)
