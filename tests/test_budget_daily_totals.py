"""The running totals kept with each ledger entry (`budget_day`, `open_reservation`) always equal
what the append-only ledger sums to, on both databases: through the real services, after the
usual flows, after the retention purge, and as migration 0013 fills them from an existing ledger.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import make_engine
from db.migrate import upgrade
from db.models import Budget, BudgetDayTotal, LedgerEntry, OpenReservation, Request
from db.uow import UnitOfWork
from services import closeout, ledger
from services.budget_picture import BudgetDay, budget_picture, project
from services.clock import BERLIN
from services.errors import BudgetExceeded, InvalidInput
from services.ledger import get_budget
from services.policy import load_policy
from services.requests import cancel
from services.retention import purge
from services.vocabulary import LedgerKind
from tests.builders import ACTOR, SOON, World, book, build_world, report_for, submit
from tests.test_budget_figures_sql import EDGES, YEAR, add_request, reference_picture, utc

MakeUow = Callable[[], UnitOfWork]
Days = dict[tuple[int, date], tuple[int, int]]
Held = dict[tuple[int, int], int]


def ledger_truth(session: Session) -> tuple[Days, Held]:
    """The totals recomputed from the entries alone: per budget and Berlin day the change to the
    charges and to the reservations; per request and budget what is reserved net of releases, if not 0."""
    days: dict[tuple[int, date], list[int]] = {}
    held: Held = {}
    for e in session.exec(select(LedgerEntry)):
        signed = -e.amount_cents if e.kind == LedgerKind.RELEASE else e.amount_cents
        day = days.setdefault((e.budget_id, e.created_at.astimezone(BERLIN).date()), [0, 0])
        day[0 if e.kind in (LedgerKind.CHARGE, LedgerKind.ADJUST) else 1] += signed
        if e.kind in (LedgerKind.RESERVE, LedgerKind.RELEASE) and e.request_id is not None:
            held[(e.request_id, e.budget_id)] = held.get((e.request_id, e.budget_id), 0) + signed
    return {k: (c, r) for k, (c, r) in days.items()}, {k: v for k, v in held.items() if v}


DAYS: Table = BudgetDayTotal.__table__  # type: ignore[attr-defined]
HELD: Table = OpenReservation.__table__  # type: ignore[attr-defined]
REQUESTS: Table = Request.__table__  # type: ignore[attr-defined]


def kept(session: Session) -> tuple[Days, Held]:
    """The running totals as the database holds them (rows, not objects a session may keep stale)."""
    days = {
        (b, d): (c, r)
        for b, d, c, r in session.execute(
            select(DAYS.c.budget_id, DAYS.c.day, DAYS.c.charged_cents, DAYS.c.reserved_cents)
        )
    }
    held = {
        (r, b): a
        for r, b, a in session.execute(select(HELD.c.request_id, HELD.c.budget_id, HELD.c.amount_cents))
    }
    return days, held


def assert_kept(session: Session) -> None:
    session.flush()
    assert kept(session) == ledger_truth(session)
    copies = select(HELD.c.starts_at, REQUESTS.c.starts_at).join(REQUESTS, REQUESTS.c.id == HELD.c.request_id)
    assert all(copy == own for copy, own in session.execute(copies))  # the start time follows the request's
    for (request_id, _budget), amount in ledger_truth(session)[1].items():
        assert ledger.open_reservation(session, request_id) == amount


@pytest.fixture
def world(uow: MakeUow) -> World:
    w = build_world(uow, budget_cents=1_000_000_00)
    w.interpreter("Amira")
    return w


_SPAN = int((utc(1, 8, 0, year=2027) - utc(12, 20, 0, year=2025)).total_seconds())
_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle", "adjust", "move"]),  # move: the session's time changes
        st.integers(min_value=-50_000, max_value=200_000),
        st.integers(min_value=0, max_value=_SPAN),
        st.integers(min_value=0, max_value=2),  # which request
    ),
    max_size=30,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=_STEPS, starts=st.lists(st.integers(0, _SPAN), min_size=3, max_size=3), now=st.integers(0, _SPAN)
)
def test_the_totals_kept_by_the_services_equal_the_ledger_and_give_the_old_figures(
    world: World, steps: list[tuple[str, int, int, int]], starts: list[int], now: int
) -> None:
    origin = utc(12, 20, 0, year=2025)
    with world.make_uow() as u:  # never committed: each example leaves the database as it was
        budget = get_budget(u.session, world.district_id, YEAR, lock=True)
        requests = [add_request(u.session, world, origin + timedelta(seconds=s)) for s in starts]
        for action, cents, seconds, which in steps:
            at, request_id = origin + timedelta(seconds=seconds), requests[which]
            try:
                if action == "reserve":
                    ledger.set_reservation(
                        u.session, budget, request_id=request_id, amount_cents=abs(cents), actor=ACTOR, now=at
                    )
                elif action == "settle":
                    ledger.settle(
                        u.session, budget, request_id=request_id, charge_cents=abs(cents), actor=ACTOR, now=at
                    )
                elif action == "move":  # as a confirmed booking change does (services/changes.py)
                    request = u.session.get(Request, request_id)
                    assert request is not None
                    request.starts_at = at
                    u.session.add(request)
                else:
                    ledger.adjust(
                        u.session,
                        budget,
                        amount_cents=cents,
                        reason="x",
                        request_id=request_id,
                        actor=ACTOR,
                        now=at,
                    )
            except (BudgetExceeded, InvalidInput):
                pass  # refused before anything was posted
            assert_kept(u.session)
        moment = origin + timedelta(seconds=now)
        assert budget_picture(u.session, budget, moment) == reference_picture(u.session, budget, moment)


def test_the_totals_follow_booking_report_settling_and_cancelling(world: World) -> None:
    held = submit(world)
    book(world, held, "Amira")
    cancelled = submit(world, starts_at=SOON + timedelta(days=1))
    with world.make_uow() as u:
        reserved = ledger.open_reservation(u.session, held)
        assert reserved > 0
        assert kept(u.session)[1] == {
            (held, 1): reserved,
            (cancelled, 1): ledger.open_reservation(u.session, cancelled),
        }
        assert_kept(u.session)
        cancel(u.session, district_id=world.district_id, request_id=cancelled, actor=ACTOR, now=SOON)
        u.commit()
    report_for(world, held, "Amira", 60, SOON + timedelta(hours=2))
    with world.make_uow() as u:
        assert_kept(u.session)
        assert closeout.confirm(
            u.session,
            district_id=world.district_id,
            request_id=held,
            actor=ACTOR,
            now=SOON + timedelta(hours=3),
        )
        u.commit()
    with world.make_uow() as u:
        assert_kept(u.session)
        assert kept(u.session)[1] == {}  # everything settled or cancelled: nothing is held
        budget = get_budget(u.session, world.district_id, YEAR)
        charged = sum(c for (_b, _d), (c, _r) in kept(u.session)[0].items())
        assert charged == budget.charged_cents == ledger.ledger_sums(u.session, budget.id or 0).charged_cents
        assert budget.reserved_cents == 0


def test_the_purge_of_an_old_fiscal_year_takes_its_totals_along(world: World) -> None:
    old = submit(world)
    book(world, old, "Amira")
    ahead = submit(world, starts_at=SOON + timedelta(days=2))
    with world.make_uow() as u:
        ledger.set_total(
            u.session, district_id=world.district_id, year=2027, total_cents=1000_00, actor=ACTOR, now=SOON
        )
        budget_2027 = get_budget(u.session, world.district_id, 2027, lock=True)
        ledger.adjust(
            u.session, budget_2027, amount_cents=500, reason="x", request_id=old, actor=ACTOR, now=SOON
        )
        u.commit()
        assert budget_2027.id is not None
    with world.make_uow() as u:
        assert {b for b, _d in kept(u.session)[0]} == {1, budget_2027.id}
        assert set(kept(u.session)[1]) == {(old, 1), (ahead, 1)}
        later = datetime(2037, 1, 10, tzinfo=UTC)
        purge(u.session, world.district_id, now=later, policy=load_policy(u.session, world.district_id))
        assert_kept(u.session)
        assert kept(u.session) == ({(budget_2027.id, SOON.astimezone(BERLIN).date()): (500, 0)}, {})
        assert [b.fiscal_year for b in u.session.exec(select(Budget))] == [2027]


def test_migration_0013_fills_the_totals_from_a_ledger_at_0012(never_migrated: str) -> None:
    engine = make_engine(never_migrated)
    try:
        upgrade(engine, "0012")
        world = build_world(lambda: UnitOfWork(engine), budget_cents=1_000_000_00)
        with UnitOfWork(engine) as u:
            budget = get_budget(u.session, world.district_id, YEAR)
            begun = add_request(u.session, world, utc(3, 29, 1))
            ahead = add_request(u.session, world, utc(12, 31, 23))
            for i, (kind, cents, at, _day) in enumerate(EDGES):  # as rows: 0012 keeps no totals
                request_id = [begun, ahead, None][i % 3]
                u.session.add(
                    LedgerEntry(
                        budget_id=budget.id or 0,
                        request_id=request_id,
                        kind=kind.value,
                        amount_cents=cents,
                        actor=ACTOR,
                        created_at=at,
                    )
                )
            u.commit()
        upgrade(engine, "0013")
        with UnitOfWork(engine) as u:
            days, held = kept(u.session)
            assert (days, held) == ledger_truth(u.session)
        charges, reserves = (LedgerKind.CHARGE, LedgerKind.ADJUST), (LedgerKind.RESERVE, LedgerKind.RELEASE)
        by_day: dict[date, list[int]] = {}
        for kind, cents, _at, day in EDGES:  # the Berlin days as written down by hand
            signed = -cents if kind is LedgerKind.RELEASE else cents
            by_day.setdefault(day, [0, 0])[0 if kind in charges else 1] += signed
        assert {d: (c, r) for (_b, d), (c, r) in days.items()} == {d: (c, r) for d, (c, r) in by_day.items()}
        assert days[(1, date(2026, 3, 29))] == (8 - 3, 16 + 32)
        assert days[(1, date(2027, 1, 1))] == (4096, 0)
        assert held == {(begun, 1): 1 - 6 + 512, (ahead, 1): 2 + 16 + 1024}
        assert all(kind in charges + reserves for kind, *_ in EDGES)
        with engine.connect() as connection:  # and the postings keep them from here on
            assert connection.execute(text("SELECT count(*) FROM budget_day")).scalar_one() == len(by_day)
    finally:
        engine.dispose()


def test_the_bench_world_bulk_inserts_its_totals_too(engine: Engine) -> None:
    """bench/big_world.add_ledger writes rows past the services; it adds their totals itself."""
    import random

    from bench.big_world import add_ledger

    world = build_world(lambda: UnitOfWork(engine))
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    with UnitOfWork(engine) as u:
        budget_id = get_budget(u.session, world.district_id, YEAR).id or 0
    add_ledger(engine, budget_id, 400, random.Random(3), now=now)
    with UnitOfWork(engine) as u:
        assert kept(u.session) == ledger_truth(u.session)
        assert len(kept(u.session)[0]) > 100
        assert len(kept(u.session)[1]) > 5


@pytest.mark.parametrize("total_cents", [1, 99_00, 5000_00, 123_456_78, 5_000_000_00, 50_000_000_00])
def test_the_chart_keeps_matplotlibs_euro_ticks_and_every_label_inside_the_picture(total_cents: int) -> None:
    """The chart lays itself out without a layout engine: its ticks are still the ones matplotlib's
    automatic locator picks, and no label, title or legend text is cut off at the edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from bot.budget_chart import budget_chart_png
    from bot.i18n import Translator

    drawn: list[Figure] = []
    save = Figure.savefig

    def keep(figure: Figure, *args: object, **kwargs: object) -> None:
        drawn.append(figure)
        save(figure, *args, **kwargs)  # type: ignore[arg-type]

    projection = project(total_cents, total_cents // 3, total_cents // 4, YEAR, date(YEAR, 5, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", keep)
        budget_chart_png(Translator("de"), YEAR, [BudgetDay(date(YEAR, 1, 1), 0, 0)], projection)
    (figure,) = drawn
    axes = figure.axes[0]
    renderer = FigureCanvasAgg(figure).get_renderer()  # type: ignore[no-untyped-call]
    legend = axes.get_legend()
    assert legend is not None
    texts = [*axes.get_xticklabels(), *axes.get_yticklabels(), axes.title, *legend.get_texts()]
    boxes = [text.get_window_extent(renderer) for text in texts if text.get_text()]
    assert all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= 800 and b.y1 <= 450 for b in boxes)
    assert len(axes.get_xticklabels()) == 12
    reference = Figure(figsize=(8, 4.5), dpi=100).add_subplot()  # matplotlib's own choice, same height
    reference.figure.subplots_adjust(bottom=0.075, top=0.925)
    reference.set_ylim(axes.get_ylim())
    low, high = axes.get_ylim()
    assert list(axes.get_yticks()) == [v for v in reference.get_yticks() if low <= v <= high]
    assert axes.get_yticklabels()[-1].get_text().endswith("€")
