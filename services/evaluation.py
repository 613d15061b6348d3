"""The evaluation for a period: does the pool cover the demand, what did it cost, what is missing.

A request belongs to the period its session starts in (Berlin dates, both ends included). Each
request has one outcome: `filled` (an interpreter was booked, even if the school cancelled
later), `not_covered` (nobody in the pool speaks the language), `not_filled` (people speak it,
but nobody could or would take it), `rejected` (turned down by a coordinator), `cancelled`
(withdrawn by the school before anyone was booked) or `open` (still being decided). The fill
rate is filled / (filled + not covered + not filled): the demand that ran its course, without
what the school or the coordinator withdrew. Time to fill runs from the request to the booking.

Sessions and hours are those actually interpreted (settled sessions); cost is what was charged
for the sessions of the period: settled sessions and late-cancellation fees, as in the monthly
billing. Every month the period touches is listed, a month without requests as nought.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median

from sqlmodel import Session, col, select

from db.models import Interpreter, Request, School, UnmetDemand
from services.billing_report import MAX_YEAR, MIN_YEAR, BillingLine, paid_lines
from services.clock import BERLIN
from services.errors import InvalidInput
from services.text import N_
from services.vocabulary import Mode, RequestState, UnmetReason

OUTCOMES = ("filled", "not_covered", "not_filled", "rejected", "cancelled", "open")
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included

    def bounds(self) -> tuple[datetime, datetime]:
        return (
            datetime.combine(self.start, time(0), tzinfo=BERLIN),
            datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=BERLIN),
        )


@dataclass
class Group:
    """The requests of one language, mode, school or month, and the work done for them."""

    key: str
    requests: int = 0
    filled: int = 0
    not_covered: int = 0
    not_filled: int = 0
    sessions: int = 0
    minutes: int = 0
    cost_cents: int = 0

    @property
    def fill_rate_percent(self) -> float | None:
        ran_its_course = self.filled + self.not_covered + self.not_filled
        return round(100 * self.filled / ran_its_course, 1) if ran_its_course else None


@dataclass
class Worker:
    """One interpreter's share of the period's work."""

    name: str
    sessions: int = 0
    minutes: int = 0
    cost_cents: int = 0
    share_percent: float = 0.0


@dataclass
class Evaluation:
    period: Period
    outcomes: dict[str, int]
    total: Group
    median_fill_minutes: int | None
    mean_fill_minutes: int | None
    by_language: list[Group]
    by_mode: list[Group]
    by_school: list[Group]
    by_month: list[Group]
    interpreters: list[Worker] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """Plain figures (cents, minutes, codes) for other programs."""

        def group(g: Group) -> dict[str, object]:
            return {**asdict(g), "fill_rate_percent": g.fill_rate_percent}

        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "outcomes": self.outcomes,
            "total": group(self.total),
            "time_to_fill_minutes": {"median": self.median_fill_minutes, "mean": self.mean_fill_minutes},
            "by_language": [group(g) for g in self.by_language],
            "by_mode": [group(g) for g in self.by_mode],
            "by_school": [group(g) for g in self.by_school],
            "by_month": [group(g) for g in self.by_month],
            "interpreters": [asdict(w) for w in self.interpreters],
        }


DATE_FORMATS = (r"(\d{4})-(\d{1,2})-(\d{1,2})", r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


def parse_date(text: str) -> date:
    """`2026-06-30` or `30.6.2026`; anything else is refused with a sentence."""
    cleaned = text.strip()
    for number, pattern in enumerate(DATE_FORMATS):
        found = re.fullmatch(pattern, cleaned)
        if found:
            parts = [int(part) for part in found.groups()]
            year, month, day = parts if number == 0 else parts[::-1]
            if not MIN_YEAR <= year <= MAX_YEAR:
                break
            try:
                return date(year, month, day)
            except ValueError:
                break
    raise InvalidInput(N_("“{value}” is not a date; write e.g. 2026-06-30."), value=text)


def make_period(start: date, end: date) -> Period:
    if end < start:
        raise InvalidInput(N_("The period ends before it begins."))
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(N_("Please choose a period of at most three years."))
    return Period(start, end)


def period_from_text(text: str, today: date) -> Period:
    """What a coordinator types after /evaluation: nothing (this year so far), a year (`2026`), or two
    dates (`2026-01-01 2026-06-30`)."""
    words = text.replace("–", " ").replace(" - ", " ").split()
    if not words:
        return make_period(date(today.year, 1, 1), today)
    if len(words) == 1 and re.fullmatch(r"\d{4}", words[0]):
        year = int(words[0])
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise InvalidInput(N_("“{value}” is not a year."), value=words[0])
        return make_period(date(year, 1, 1), date(year, 12, 31))
    if len(words) == 2:
        return make_period(parse_date(words[0]), parse_date(words[1]))
    raise InvalidInput(N_("Please write a year (2026) or two dates (2026-01-01 2026-06-30)."))


def outcome_of(request: Request, unmet: set[str]) -> str:
    """The one outcome a request counts as (see the module's description)."""
    if request.interpreter_id is not None:
        return "filled"
    if UnmetReason.NOT_COVERED.value in unmet:
        return "not_covered"
    if UnmetReason.NOT_FILLED.value in unmet:
        return "not_filled"
    if request.state == RequestState.REJECTED.value:
        return "rejected"
    if request.state == RequestState.CANCELLED.value:
        return "cancelled"
    return "open"


def _count(group: Group, outcome: str) -> None:
    group.requests += 1
    if outcome == "filled":
        group.filled += 1
    elif outcome == "not_covered":
        group.not_covered += 1
    elif outcome == "not_filled":
        group.not_filled += 1


def _work(group: Group, line: BillingLine) -> None:
    group.sessions += 0 if line.cancelled else 1  # a late cancellation is paid, but nobody interpreted
    group.minutes += line.minutes
    group.cost_cents += line.amount_cents


def _grouped(
    requests: Iterable[Request],
    outcomes: dict[int, str],
    lines: dict[int, BillingLine],
    key: Callable[[Request], str],
) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for request in requests:
        assert request.id is not None
        group = groups.setdefault(key(request), Group(key(request)))
        _count(group, outcomes[request.id])
        if request.id in lines:
            _work(group, lines[request.id])
    return groups


def _months(period: Period) -> list[str]:
    """`YYYY-MM` of every month the period touches."""
    keys, month = [], period.start.replace(day=1)
    while month <= period.end:
        keys.append(month.strftime("%Y-%m"))
        month = (month + timedelta(days=32)).replace(day=1)
    return keys


def _busiest_first(groups: dict[str, Group]) -> list[Group]:
    return sorted(groups.values(), key=lambda g: (-g.requests, g.key))


def evaluate(session: Session, district_id: int, period: Period) -> Evaluation:
    """The evaluation of the sessions that start within the period."""
    start, end = period.bounds()
    requests = session.exec(
        select(Request)
        .where(
            Request.district_id == district_id,
            col(Request.starts_at) >= start,
            col(Request.starts_at) < end,
        )
        .order_by(col(Request.starts_at), col(Request.id))
    ).all()
    ids = [r.id for r in requests]
    unmet: dict[int, set[str]] = {}
    for request_id, reason in session.exec(
        select(UnmetDemand.request_id, UnmetDemand.reason).where(col(UnmetDemand.request_id).in_(ids or [0]))
    ):
        unmet.setdefault(request_id, set()).add(reason)
    outcomes = {r.id: outcome_of(r, unmet.get(r.id or 0, set())) for r in requests if r.id is not None}
    paid = paid_lines(session, district_id, start, end)
    lines = {line.request_id: line for found in paid.values() for line in found}
    schools = {s.id: s.name for s in session.exec(select(School).where(School.district_id == district_id))}

    total = _grouped(requests, outcomes, lines, lambda _r: "total").get("total", Group("total"))
    waits = [
        int((r.booked_at - r.created_at).total_seconds() // 60)
        for r in requests
        if r.booked_at is not None and r.interpreter_id is not None
    ]
    modes = _grouped(requests, outcomes, lines, lambda r: r.mode)
    months = {key: Group(key) for key in _months(period)}  # a month without requests shows as nought
    months.update(
        _grouped(requests, outcomes, lines, lambda r: r.starts_at.astimezone(BERLIN).strftime("%Y-%m"))
    )
    return Evaluation(
        period=period,
        outcomes={name: sum(1 for o in outcomes.values() if o == name) for name in OUTCOMES},
        total=total,
        median_fill_minutes=int(median(waits)) if waits else None,
        mean_fill_minutes=round(sum(waits) / len(waits)) if waits else None,
        by_language=_busiest_first(_grouped(requests, outcomes, lines, lambda r: r.language)),
        by_mode=[modes[m.value] for m in Mode if m.value in modes],
        by_school=_busiest_first(
            _grouped(requests, outcomes, lines, lambda r: schools.get(r.school_id, "?"))
        ),
        by_month=[months[key] for key in sorted(months)],
        interpreters=_spread(session, district_id, paid),
    )


def _spread(session: Session, district_id: int, paid: dict[int, list[BillingLine]]) -> list[Worker]:
    """Every active interpreter (and anyone paid in the period), most minutes first."""
    people = session.exec(
        select(Interpreter).where(
            Interpreter.district_id == district_id,
            col(Interpreter.active).is_(True) | col(Interpreter.id).in_(list(paid) or [0]),
        )
    ).all()
    workers = []
    for person in people:
        worker = Worker(person.name)
        for line in paid.get(person.id or 0, []):
            worker.sessions += 0 if line.cancelled else 1
            worker.minutes += line.minutes
            worker.cost_cents += line.amount_cents
        workers.append(worker)
    all_minutes = sum(w.minutes for w in workers)
    for worker in workers:
        worker.share_percent = round(100 * worker.minutes / all_minutes, 1) if all_minutes else 0.0
    return sorted(workers, key=lambda w: (-w.minutes, -w.sessions, w.name))
