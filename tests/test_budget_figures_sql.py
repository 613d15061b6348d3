"""The budget picture summed in the database equals the old entry-by-entry algorithm, on both databases.

`reference_picture` is the algorithm /budget used before the ledger was summed in SQL: every entry
read through the ORM, its posting time turned into a Berlin day in Python. It is kept here only as
the yardstick. The ledgers put entries on both sides of Berlin and UTC midnights, of both changes
of the clocks in 2026 (29 March, 25 October), and of the fiscal year's first and last day.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from db.models import Budget, LedgerEntry, Request
from db.uow import UnitOfWork
from services import ledger
from services.budget_picture import BudgetDay, Projection, budget_picture, project, projection_of
from services.clock import BERLIN
from services.ledger import get_budget
from services.vocabulary import LedgerKind, Mode, RequestState, Topic
from tests.builders import World, build_world

MakeUow = Callable[[], UnitOfWork]
YEAR = 2026


@dataclass(frozen=True)
class _OldEntry:
    kind: str
    amount_cents: int
    day: date
    session_begun: bool


def reference_picture(session: Session, budget: Budget, now: datetime) -> tuple[list[BudgetDay], Projection]:
    """The budget picture as it was computed before: every ledger entry read and bucketed in Python."""
    query = (
        select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.created_at, Request.starts_at)
        .join(Request, col(Request.id) == LedgerEntry.request_id, isouter=True)
        .where(LedgerEntry.budget_id == budget.id)
        .order_by(col(LedgerEntry.id))
    )
    entries = [
        _OldEntry(kind, amount, created.astimezone(BERLIN).date(), starts_at is not None and starts_at <= now)
        for kind, amount, created, starts_at in session.exec(query)
    ]
    year, today = budget.fiscal_year, now.astimezone(BERLIN).date()
    first, last = date(year, 1, 1), min(today, date(year, 12, 31))
    charged: dict[date, int] = {}
    reserved: dict[date, int] = {}
    held = 0
    for entry in entries:
        day = max(first, entry.day)
        if entry.kind in (LedgerKind.CHARGE, LedgerKind.ADJUST):
            charged[day] = charged.get(day, 0) + entry.amount_cents
            held += entry.amount_cents
        elif entry.kind == LedgerKind.RESERVE:
            reserved[day] = reserved.get(day, 0) + entry.amount_cents
            held += entry.amount_cents if entry.session_begun else 0
        else:
            reserved[day] = reserved.get(day, 0) - entry.amount_cents
            held -= entry.amount_cents if entry.session_begun else 0
    history: list[BudgetDay] = []
    running_charged = running_reserved = 0
    day = first
    while day <= last:
        running_charged += charged.get(day, 0)
        running_reserved += reserved.get(day, 0)
        history.append(BudgetDay(day, running_charged, running_reserved))
        day += timedelta(days=1)
    committed = budget.charged_cents + budget.reserved_cents
    return history, project(budget.total_cents, committed, held, year, today)


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0, year: int = YEAR) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def add_request(session: Session, world: World, starts_at: datetime) -> int:
    request = Request(
        district_id=world.district_id,
        school_id=world.school_id,
        language="ar",
        mode=Mode.PHONE.value,
        topic=Topic.PARENT_TALK.value,
        starts_at=starts_at,
        duration_minutes=60,
        place="",
        place_latitude=0.0,
        place_longitude=0.0,
        state=RequestState.BOOKED.value,
        created_at=starts_at - timedelta(days=30),
        updated_at=starts_at - timedelta(days=30),
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    return request.id


def post(
    session: Session, budget: Budget, kind: LedgerKind, cents: int, at: datetime, request_id: int | None
) -> None:
    """One ledger entry with the budget's running totals kept by the services' own posting."""
    ledger._post(session, budget, kind=kind, amount_cents=cents, request_id=request_id, actor="t", now=at)
    session.flush()


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow, budget_cents=1_000_000_00)


# (kind, cents, posted at (UTC), the Berlin day it belongs to)
EDGES = [
    (LedgerKind.RESERVE, 1, utc(12, 31, 22, 59, 59, year=2025), date(2025, 12, 31)),  # counts on 1 January
    (LedgerKind.RESERVE, 2, utc(12, 31, 23, year=2025), date(2026, 1, 1)),
    (LedgerKind.CHARGE, 4, utc(3, 28, 22, 59, 59), date(2026, 3, 28)),  # 23:59:59 CET
    (LedgerKind.CHARGE, 8, utc(3, 28, 23), date(2026, 3, 29)),  # midnight CET, UTC still on the 28th
    (LedgerKind.RESERVE, 16, utc(3, 29, 0, 59, 59), date(2026, 3, 29)),  # 01:59:59 CET, the clocks jump
    (LedgerKind.RESERVE, 32, utc(3, 29, 1), date(2026, 3, 29)),  # 03:00 CEST
    (LedgerKind.ADJUST, -3, utc(3, 29, 21, 59, 59), date(2026, 3, 29)),  # 23:59:59 CEST
    (LedgerKind.ADJUST, 64, utc(3, 29, 22), date(2026, 3, 30)),  # midnight CEST
    (LedgerKind.RELEASE, 5, utc(10, 24, 21, 59, 59), date(2026, 10, 24)),
    (LedgerKind.RELEASE, 6, utc(10, 24, 22), date(2026, 10, 25)),
    (LedgerKind.CHARGE, 128, utc(10, 25, 0, 30), date(2026, 10, 25)),  # 02:30 CEST
    (LedgerKind.CHARGE, 256, utc(10, 25, 1, 30), date(2026, 10, 25)),  # 02:30 CET, an hour later
    (LedgerKind.RESERVE, 512, utc(10, 25, 22, 59, 59), date(2026, 10, 25)),  # the 25-hour day's last second
    (LedgerKind.RESERVE, 1024, utc(10, 25, 23), date(2026, 10, 26)),
    (LedgerKind.CHARGE, 2048, utc(12, 31, 22, 59, 59), date(2026, 12, 31)),
    (LedgerKind.CHARGE, 4096, utc(12, 31, 23), date(2027, 1, 1)),  # next year's: never on this year's line
]


def build_edges(session: Session, world: World) -> Budget:
    budget = get_budget(session, world.district_id, YEAR)
    begun = add_request(session, world, utc(3, 29, 1))  # began at 03:00 CEST on 29 March
    ahead = add_request(session, world, utc(12, 31, 23))
    for i, (kind, cents, at, _day) in enumerate(EDGES):
        post(session, budget, kind, cents, at, [begun, ahead, None][i % 3])
    return budget


def day_change(day: date, kinds: tuple[LedgerKind, ...]) -> int:
    signs = {LedgerKind.RELEASE: -1}
    return sum(
        signs.get(k, 1) * c for k, c, _at, d in EDGES if k in kinds and max(d, date(YEAR, 1, 1)) == day
    )


@pytest.mark.parametrize(
    "now",
    [
        utc(3, 29, 0, 59, 59),  # before the clocks jump; the begun request has not begun
        utc(3, 29, 1),
        utc(10, 25, 1, 30),
        utc(12, 31, 22, 59, 59),
        utc(12, 31, 23),  # already 2027 in Berlin: the whole year is shown
        utc(2, 1, 12, year=2027),
    ],
)
def test_the_figures_from_sql_equal_the_entry_by_entry_ones_across_the_clock_changes(
    world: World, now: datetime
) -> None:
    with world.make_uow() as u:
        budget = build_edges(u.session, world)
        history, projection = budget_picture(u.session, budget, now)
        assert (history, projection) == reference_picture(u.session, budget, now)
        assert projection_of(u.session, budget, now) == projection


def test_the_history_counts_each_entry_on_its_berlin_day(world: World) -> None:
    now = utc(12, 31, 22, 59, 59)  # 23:59:59 on 31 December in Berlin
    with world.make_uow() as u:
        budget = build_edges(u.session, world)
        history, projection = budget_picture(u.session, budget, now)
    points = {p.day: (p.charged_cents, p.reserved_cents) for p in history}
    assert len(history) == 365
    assert points[date(2026, 1, 1)] == (0, 1 + 2)
    assert points[date(2026, 3, 28)] == (4, 3)
    assert points[date(2026, 3, 29)] == (4 + 8 - 3, 3 + 16 + 32)
    assert points[date(2026, 3, 30)] == (4 + 8 - 3 + 64, 51)
    assert points[date(2026, 10, 24)] == (73, 51 - 5)
    assert points[date(2026, 10, 25)] == (73 + 128 + 256, 46 - 6 + 512)
    assert points[date(2026, 10, 26)] == (457, 552 + 1024)
    assert points[date(2026, 12, 31)] == (457 + 2048, 1576)
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        charged = day_change(day, (LedgerKind.CHARGE, LedgerKind.ADJUST))
        reserved = day_change(day, (LedgerKind.RESERVE, LedgerKind.RELEASE))
        before = points[day - timedelta(days=1)]
        assert points[day] == (before[0] + charged, before[1] + reserved)
    # Held: every charge and adjustment (the 4096 posted in 2027 too) and the net reservation of the
    # request that began on 29 March (every third entry from the first: reserve 1, release 6, reserve 512);
    # the request ahead (reserves 2 and 1024, release 5) has not begun a second before.
    charges = 4 + 8 - 3 + 64 + 128 + 256 + 2048 + 4096
    assert projection.held_cents == charges + 1 - 6 + 512
    assert projection.committed_cents == charges + (1 + 2 + 16 + 32 - 5 - 6 + 512 + 1024)


_SPAN = int((utc(1, 8, 0, year=2027) - utc(12, 20, 0, year=2025)).total_seconds())
_KINDS = st.sampled_from([LedgerKind.RESERVE, LedgerKind.RELEASE, LedgerKind.CHARGE, LedgerKind.ADJUST])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(
        st.tuples(
            _KINDS,
            st.integers(min_value=1, max_value=100_000),
            st.integers(min_value=0, max_value=_SPAN),
            st.integers(min_value=0, max_value=3),  # which request (3: none)
        ),
        max_size=40,
    ),
    starts=st.lists(st.integers(min_value=0, max_value=_SPAN), min_size=3, max_size=3),
    now_seconds=st.integers(min_value=0, max_value=_SPAN),
)
def test_any_ledger_gives_the_same_figures_as_before(
    world: World, entries: list[tuple[LedgerKind, int, int, int]], starts: list[int], now_seconds: int
) -> None:
    origin = utc(12, 20, 0, year=2025)
    now = origin + timedelta(seconds=now_seconds)
    with world.make_uow() as u:  # never committed: each example leaves the database as it was
        budget = get_budget(u.session, world.district_id, YEAR)
        requests = [add_request(u.session, world, origin + timedelta(seconds=s)) for s in starts]
        for kind, cents, seconds, which in entries:
            amount = -cents if kind is LedgerKind.ADJUST and cents % 2 else cents
            if kind is LedgerKind.RELEASE:  # never more than is reserved: the row's CHECK says so
                amount = min(amount, budget.reserved_cents)
            request_id = requests[which] if which < 3 else None
            post(u.session, budget, kind, amount, origin + timedelta(seconds=seconds), request_id)
        history, projection = budget_picture(u.session, budget, now)
        assert (history, projection) == reference_picture(u.session, budget, now)
        assert projection_of(u.session, budget, now) == projection
