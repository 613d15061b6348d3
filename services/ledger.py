"""The budget ledger: append-only entries per budget, and the balance they add up to.

Entries: `reserve` (the estimate, while a request is offered or booked), `release` (giving a
reservation back, on cancel, settle or a cheaper interpreter), `charge` (the actual cost, on
settle, or a cancellation fee), `adjust` (a coordinator's signed correction of the charges,
with a reason). available = total - open reservations - charges.

The budget row carries running totals that change in the same transaction as each entry. Every
posting first locks that row (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite transactions here
begin IMMEDIATE and so already hold the write lock), so two requests can never both spend the
last euro; CHECK constraints on the row are the database's own last word.

Two more running totals are kept the same way, for reading without going through the ledger: the
change per budget and Berlin day of posting (`budget_day`, the budget picture's history) and each
request's open reservation (`open_reservation`, deleted at 0). They always equal the entries' sums.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Integer, Select, Table, bindparam, delete, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from db.models import Budget, BudgetDayTotal, LedgerEntry, OpenReservation, Request
from db.upsert import built_for, insert_on
from services.audit import record
from services.budget_alerts import check_budget_alerts
from services.clock import BERLIN
from services.errors import BudgetExceeded, InvalidInput, NotFound
from services.text import N_
from services.vocabulary import LedgerKind


@dataclass(frozen=True)
class Balance:
    year: int
    total_cents: int
    reserved_cents: int
    charged_cents: int

    @property
    def available_cents(self) -> int:
        return self.total_cents - self.reserved_cents - self.charged_cents

    @property
    def used_percent(self) -> float:
        """Share of the total that is charged or reserved."""
        if self.total_cents == 0:
            return 100.0
        return 100 * (self.reserved_cents + self.charged_cents) / self.total_cents


def fiscal_year(moment: datetime) -> int:
    """The fiscal (calendar) year a moment falls in, in Berlin."""
    return moment.astimezone(BERLIN).year


def balance_of(budget: Budget) -> Balance:
    return Balance(budget.fiscal_year, budget.total_cents, budget.reserved_cents, budget.charged_cents)


# Read on every booking, release and charge: built once (a build costs ~0.4 ms), run with parameters.
_BUDGET = select(Budget).where(
    col(Budget.district_id) == bindparam("district_id"), col(Budget.fiscal_year) == bindparam("year")
)
# The row as it is once locked: an object this session loaded earlier keeps stale totals otherwise.
_BUDGET_LOCKED = _BUDGET.with_for_update().execution_options(populate_existing=True)
_RESERVED = sa_select(func.sum(OpenReservation.amount_cents)).where(
    col(OpenReservation.request_id) == bindparam("request_id")
)


def find_budget(session: Session, district_id: int, year: int, *, lock: bool = False) -> Budget | None:
    query = _BUDGET_LOCKED if lock else _BUDGET
    return session.exec(query, params={"district_id": district_id, "year": year}).first()


def get_budget(session: Session, district_id: int, year: int, *, lock: bool = False) -> Budget:
    budget = find_budget(session, district_id, year, lock=lock)
    if budget is None:
        raise NotFound(N_("There is no budget for {year} yet."), year=year)
    return budget


def set_total(
    session: Session, *, district_id: int, year: int, total_cents: int, actor: str, now: datetime
) -> Budget:
    """Create or change a year's budget; it may not drop below what is already reserved or charged."""
    if not 2000 <= year <= 2100:
        raise InvalidInput(N_("“{value}” is not a year."), value=year)
    budget = find_budget(session, district_id, year, lock=True)
    if budget is None:
        budget = Budget(district_id=district_id, fiscal_year=year, total_cents=total_cents, updated_at=now)
    else:
        committed = budget.reserved_cents + budget.charged_cents
        if total_cents < committed:
            raise BudgetExceeded(
                N_("The budget cannot be less than what is already reserved or charged ({committed_cents})."),
                committed_cents=committed,
            )
        budget.total_cents = total_cents
        budget.updated_at = now
    session.add(budget)
    session.flush()
    assert budget.id is not None
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="budget.set",
        entity="budget",
        entity_id=budget.id,
        now=now,
        total_cents=total_cents,
    )
    return budget


def open_reservation(session: Session, request_id: int) -> int:
    """What is still reserved for a request: its reserves minus its releases (on any budget)."""
    total = session.execute(_RESERVED, {"request_id": request_id}).scalar_one()
    return int(total or 0)


def _adding(
    dialect: str, table: Table, keys: list[str], added: list[str], row: "Select[Any] | None"
) -> Insert:
    """INSERT a row (its values bound when run, or a SELECT of one row naming its columns), or, where
    a row with these `keys` exists, add its `added` amounts to it: one statement either way."""
    insert = insert_on(dialect, table)
    if row is not None:
        insert = insert.from_select([c.name for c in row.selected_columns], row)
    return insert.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + insert.excluded[name] for name in added}
    )


_DAYS = cast(Table, BudgetDayTotal.__table__)  # type: ignore[attr-defined]
_OPEN = cast(Table, OpenReservation.__table__)  # type: ignore[attr-defined]
_REQUEST = cast(Table, Request.__table__)  # type: ignore[attr-defined]


# Built once per database kind and run with bound values (`db.upsert.built_for`): built anew, the two
# statements cost each posting about 1 ms of Python, under the budget row's lock.
def _day_adding(dialect: str) -> Insert:
    return _adding(dialect, _DAYS, ["budget_id", "day"], ["charged_cents", "reserved_cents"], None)


def _open_adding(dialect: str) -> Insert:
    # The start time as the database holds it (the foreign key compares with that, not with an
    # unflushed change in this session, which reaches the copy by the cascade when it is flushed).
    held = sa_select(
        _REQUEST.c.id.label("request_id"),
        bindparam("held_budget_id", type_=Integer).label("budget_id"),
        _REQUEST.c.starts_at,
        bindparam("held_cents", type_=Integer).label("amount_cents"),
    ).where(_REQUEST.c.id == bindparam("held_request_id"))
    added = _adding(dialect, _OPEN, ["request_id", "budget_id"], ["amount_cents"], held)
    return added.returning(_OPEN.c.amount_cents)


def _keep_totals(
    session: Session, budget_id: int, kind: LedgerKind, amount: int, request_id: int | None, now: datetime
) -> None:
    """Add an entry to its Berlin day's totals and to its request's open reservation (the budget row
    is locked, so nobody else adds meanwhile); a reservation that reaches 0 goes."""
    charges = kind not in (LedgerKind.RESERVE, LedgerKind.RELEASE)
    signed = -amount if kind is LedgerKind.RELEASE else amount
    day = {
        "budget_id": budget_id,
        "day": now.astimezone(BERLIN).date(),
        "charged_cents": signed if charges else 0,
        "reserved_cents": 0 if charges else signed,
    }
    session.execute(built_for(session, _day_adding), day)
    if charges or request_id is None:
        return
    held = {"held_request_id": request_id, "held_budget_id": budget_id, "held_cents": signed}
    if session.execute(built_for(session, _open_adding), held).scalar_one() == 0:
        session.execute(delete(_OPEN).where(_OPEN.c.request_id == request_id, _OPEN.c.budget_id == budget_id))


def _post(
    session: Session,
    budget: Budget,
    *,
    kind: LedgerKind,
    amount_cents: int,
    request_id: int | None,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    assert budget.id is not None
    if kind is LedgerKind.RESERVE:
        budget.reserved_cents += amount_cents
    elif kind is LedgerKind.RELEASE:
        budget.reserved_cents -= amount_cents
    else:
        budget.charged_cents += amount_cents
    budget.updated_at = now
    session.add(budget)
    session.add(
        LedgerEntry(
            budget_id=budget.id,
            request_id=request_id,
            kind=kind.value,
            amount_cents=amount_cents,
            reason=reason,
            actor=actor,
            created_at=now,
        )
    )
    _keep_totals(session, budget.id, kind, amount_cents, request_id, now)
    if kind is not LedgerKind.RELEASE:
        check_budget_alerts(session, budget, now)


def _require_available(budget: Budget, needed_cents: int) -> None:
    available = balance_of(budget).available_cents
    if needed_cents > available:
        raise BudgetExceeded(
            N_("Not enough budget: {needed_cents} needed, {available_cents} available."),
            needed_cents=needed_cents,
            available_cents=available,
        )


def set_reservation(
    session: Session, budget: Budget, *, request_id: int, amount_cents: int, actor: str, now: datetime
) -> None:
    """Make the request's open reservation exactly `amount_cents`; raises BudgetExceeded if it cannot grow."""
    current = open_reservation(session, request_id)
    delta = amount_cents - current
    if delta > 0:
        _require_available(budget, delta)
        _post(
            session,
            budget,
            kind=LedgerKind.RESERVE,
            amount_cents=delta,
            request_id=request_id,
            actor=actor,
            now=now,
        )
    elif delta < 0:
        _post(
            session,
            budget,
            kind=LedgerKind.RELEASE,
            amount_cents=-delta,
            request_id=request_id,
            actor=actor,
            now=now,
        )


def settle(
    session: Session, budget: Budget, *, request_id: int, charge_cents: int, actor: str, now: datetime
) -> None:
    """Release what is reserved for the request and charge what it cost, as one step.

    Raises BudgetExceeded when the actual cost exceeds the reservation by more than is available.
    """
    reserved = open_reservation(session, request_id)
    _require_available(budget, charge_cents - reserved)
    if reserved:
        _post(
            session,
            budget,
            kind=LedgerKind.RELEASE,
            amount_cents=reserved,
            request_id=request_id,
            actor=actor,
            now=now,
        )
    if charge_cents:
        _post(
            session,
            budget,
            kind=LedgerKind.CHARGE,
            amount_cents=charge_cents,
            request_id=request_id,
            actor=actor,
            now=now,
        )


def adjust(
    session: Session,
    budget: Budget,
    *,
    amount_cents: int,
    reason: str,
    request_id: int | None,
    actor: str,
    now: datetime,
) -> None:
    """A coordinator's signed correction of the charges (positive costs more), always with a reason."""
    if not reason.strip():
        raise InvalidInput(N_("A correction needs a reason."))
    if amount_cents > 0:
        _require_available(budget, amount_cents)
    if -amount_cents > budget.charged_cents:
        raise InvalidInput(N_("A correction cannot refund more than was charged."))
    _post(
        session,
        budget,
        kind=LedgerKind.ADJUST,
        amount_cents=amount_cents,
        request_id=request_id,
        actor=actor,
        now=now,
        reason=reason.strip(),
    )


def ledger_sums(session: Session, budget_id: int) -> Balance:
    """The balance recomputed from the entries alone (the running totals must always equal it)."""
    budget = session.get(Budget, budget_id)
    assert budget is not None
    sums = dict(
        session.exec(
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount_cents))
            .where(LedgerEntry.budget_id == budget_id)
            .group_by(col(LedgerEntry.kind))
        ).all()
    )

    def total(kind: LedgerKind) -> int:
        return int(sums.get(kind, 0) or 0)

    reserved = total(LedgerKind.RESERVE) - total(LedgerKind.RELEASE)
    charged = total(LedgerKind.CHARGE) + total(LedgerKind.ADJUST)
    return Balance(budget.fiscal_year, budget.total_cents, reserved, charged)
