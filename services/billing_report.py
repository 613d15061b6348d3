"""The monthly billing: what each interpreter is paid for the sessions of one month.

A session counts in the month it took place (its start, in Berlin). Paid are settled sessions
(as confirmed or corrected) and late cancellations (the mode's minimum, no travel). Amounts are
the ones charged to the budget; billed minutes follow from the policy's steps.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time

from babel.dates import get_month_names
from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Budget, Closeout, Interpreter, LedgerEntry, Request, School
from services.billing import billed_minutes
from services.clock import BERLIN
from services.errors import InvalidInput
from services.policy import load_policy
from services.text import N_
from services.vocabulary import LedgerKind, Mode, RequestState

MIN_YEAR, MAX_YEAR = 2000, 2100  # the years a budget may have; beyond them dates overflow


@dataclass(frozen=True)
class BillingLine:
    starts_at: datetime
    request_id: int
    school: str
    mode: str
    minutes: int
    billed_minutes: int
    km: int
    expenses_cents: int
    amount_cents: int
    cancelled: bool = False


@dataclass(frozen=True)
class InterpreterBilling:
    interpreter_id: int
    name: str
    lines: tuple[BillingLine, ...]

    @property
    def minutes(self) -> int:
        return sum(line.minutes for line in self.lines)

    @property
    def billed_minutes(self) -> int:
        return sum(line.billed_minutes for line in self.lines)

    @property
    def km(self) -> int:
        return sum(line.km for line in self.lines)

    @property
    def expenses_cents(self) -> int:
        return sum(line.expenses_cents for line in self.lines)

    @property
    def amount_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


def _month_names() -> dict[str, int]:
    """Month names people type, German and English, full and short (`november`, `nov`, `märz`, `mrz`)."""
    names: dict[str, int] = {}
    for locale in ("de", "en"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                names[name.casefold().rstrip(".")] = number
    names["mrz"] = 3
    return names


_NUMERIC_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$|^(\d{1,2})[./](\d{4})$", re.ASCII)


def parse_month(text: str, today: date | None = None) -> date:
    """`2026-05`, `05/2026`, `5.2026`, `Mai 2026`, `November` or `nov` as the first of that month.

    A month named without its year is the latest one that has begun by `today` (the billing is
    asked for after the month). Anything else is refused with a sentence.
    """
    cleaned = " ".join(text.strip().casefold().split())
    year: int | None = None
    month: int | None = None
    if numeric := _NUMERIC_MONTH.match(cleaned):
        y1, m1, m2, y2 = numeric.groups()
        year, month = (int(y1), int(m1)) if y1 else (int(y2), int(m2))
    else:
        name, _, rest = cleaned.partition(" ")
        month = _month_names().get(name.rstrip("."))
        if month is not None and rest:
            year = int(rest) if re.fullmatch(r"\d{4}", rest, re.ASCII) else None
            month = month if year is not None else None
        elif month is not None:
            now = today or datetime.now(BERLIN).date()
            year = now.year if month <= now.month else now.year - 1
    if year is not None and month is not None and 1 <= month <= 12 and MIN_YEAR <= year <= MAX_YEAR:
        return date(year, month, 1)
    raise InvalidInput(N_("“{value}” is not a month; write e.g. 2026-05 or November 2026."), value=text)


def _month_bounds(first: date) -> tuple[datetime, datetime]:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime.combine(first, time(0), tzinfo=BERLIN),
        datetime.combine(following, time(0), tzinfo=BERLIN),
    )


def paid_lines(
    session: Session, district_id: int, start: datetime, end: datetime
) -> dict[int, list[BillingLine]]:
    """Each paid session that started in [start, end), by interpreter id."""
    policy = load_policy(session, district_id)
    in_period = (
        Request.district_id == district_id,
        col(Request.starts_at) >= start,
        col(Request.starts_at) < end,
        col(Request.interpreter_id).is_not(None),
    )
    lines: dict[int, list[BillingLine]] = {}
    settled = session.exec(
        select(Request, Closeout, School)
        .join(Closeout, col(Closeout.request_id) == Request.id)
        .join(School, col(School.id) == Request.school_id)
        .where(*in_period, Request.state == RequestState.SETTLED.value)
    ).all()
    for request, closeout, school in settled:
        assert request.id is not None
        assert request.interpreter_id is not None
        steps = policy.billing_steps(Mode(request.mode))
        lines.setdefault(request.interpreter_id, []).append(
            BillingLine(
                starts_at=request.starts_at,
                request_id=request.id,
                school=school.name,
                mode=request.mode,
                minutes=closeout.actual_minutes,
                billed_minutes=billed_minutes(closeout.actual_minutes, *steps),
                km=closeout.km,
                expenses_cents=closeout.expenses_cents,
                amount_cents=closeout.amount_cents or 0,
            )
        )
    fees = session.exec(
        select(Request, School, func.sum(LedgerEntry.amount_cents))
        .join(LedgerEntry, col(LedgerEntry.request_id) == Request.id)
        .join(Budget, col(Budget.id) == LedgerEntry.budget_id)
        .join(School, col(School.id) == Request.school_id)
        .where(
            *in_period,
            Request.state == RequestState.CANCELLED.value,
            LedgerEntry.kind == LedgerKind.CHARGE.value,
        )
        .group_by(col(Request.id), col(School.id))
    ).all()
    for request, school, fee in fees:
        assert request.id is not None
        assert request.interpreter_id is not None
        minimum, _ = policy.billing_steps(Mode(request.mode))
        lines.setdefault(request.interpreter_id, []).append(
            BillingLine(
                starts_at=request.starts_at,
                request_id=request.id,
                school=school.name,
                mode=request.mode,
                minutes=0,
                billed_minutes=minimum,
                km=0,
                expenses_cents=0,
                amount_cents=int(fee or 0),
                cancelled=True,
            )
        )
    return lines


def monthly_billing(session: Session, district_id: int, month: date) -> list[InterpreterBilling]:
    """Per interpreter (by name), each paid session of the month in time order, with totals."""
    lines = paid_lines(session, district_id, *_month_bounds(month))
    names = {
        i.id: i.name for i in session.exec(select(Interpreter).where(col(Interpreter.id).in_(list(lines))))
    }
    result = [
        InterpreterBilling(
            interpreter_id, names[interpreter_id], tuple(sorted(found, key=lambda line: line.starts_at))
        )
        for interpreter_id, found in lines.items()
    ]
    return sorted(result, key=lambda billing: billing.name)


def paid_in_year(session: Session, district_id: int, interpreter_id: int, year: int) -> int:
    """What an interpreter is paid for the sessions of a calendar year (by session date, Berlin)."""
    start = datetime(year, 1, 1, tzinfo=BERLIN)
    end = datetime(year + 1, 1, 1, tzinfo=BERLIN)
    lines = paid_lines(session, district_id, start, end).get(interpreter_id, [])
    return sum(line.amount_cents for line in lines)
