"""The budget over the year: the day-by-day history from the ledger, the projection, and the chart."""

import io
import struct
from collections.abc import Callable
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.image import imread

from bot.budget_chart import LIMIT, budget_chart_png
from bot.i18n import Translator
from db.uow import UnitOfWork
from services.budget_picture import budget_picture, days_in_year, project
from services.clock import BERLIN
from services.closeout import confirm
from services.ledger import get_budget
from services.vocabulary import Mode
from tests.builders import ACTOR, World, book, build_world, report_for, submit

MakeUow = Callable[[], UnitOfWork]
TODAY = datetime(2026, 3, 20, 12, 0, tzinfo=BERLIN)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=BERLIN)


@pytest.fixture
def spring(uow: MakeUow) -> World:
    """An 80 € budget: a phone call reserved on 2 March and settled on 11 March (40 min: 18.00 €),
    a second one reserved on 5 March for the 30th."""
    world = build_world(uow, budget_cents=80_00)
    world.interpreter("Amira Haddad", km_north=1)
    first = submit(world, at(3, 2), mode=Mode.PHONE, starts_at=at(3, 10), minutes=60)  # reserves 24.00
    book(world, first, "Amira Haddad", at(3, 2, 11))
    report_for(world, first, "Amira Haddad", 40, at(3, 10, 12))
    with world.make_uow() as u:
        confirm(u.session, district_id=world.district_id, request_id=first, actor=ACTOR, now=at(3, 11))
        u.commit()
    second = submit(world, at(3, 5), mode=Mode.PHONE, starts_at=at(3, 30), minutes=30)  # reserves 12.00
    book(world, second, "Amira Haddad", at(3, 5, 11))
    return world


def test_the_history_follows_the_ledger_day_by_day_and_the_pace_leads_to_october(spring: World) -> None:
    with spring.make_uow() as u:
        budget = get_budget(u.session, spring.district_id, 2026)
        history, projection = budget_picture(u.session, budget, TODAY)
    assert len(history) == 31 + 28 + 20  # 1 January to 20 March
    assert (history[0].day, history[-1].day) == (date(2026, 1, 1), date(2026, 3, 20))
    points = {p.day: (p.charged_cents, p.reserved_cents) for p in history}
    assert points[date(2026, 3, 1)] == (0, 0)
    assert points[date(2026, 3, 2)] == (0, 2400)
    assert points[date(2026, 3, 5)] == (0, 3600)
    assert points[date(2026, 3, 10)] == (0, 3600)
    assert points[date(2026, 3, 11)] == (1800, 1200)  # charged 18.00, the 24.00 released
    assert points[date(2026, 3, 20)] == (1800, 1200)
    # 30.00 € committed, of which 18.00 € for sessions held in 79 days: 286 more days at that pace.
    assert (projection.committed_cents, projection.held_cents) == (3000, 1800)
    assert projection.year_end_cents == 3000 + 6516  # 1800 x 286 / 79 = 6516.46
    assert projection.runs_out_on == date(2026, 10, 26)  # 50.00 € more take 220 days (219.4)


def test_a_budget_that_lasts_has_no_run_out_day() -> None:
    lasting = project(5000_00, 30_00, 18_00, 2026, date(2026, 3, 20))
    assert (lasting.year_end_cents, lasting.runs_out_on) == (9516, None)
    spent = project(100_00, 100_00, 50_00, 2026, date(2026, 6, 1))
    assert spent.runs_out_on == date(2026, 6, 1)  # already used up: today
    nothing = project(5000_00, 0, 0, 2026, date(2026, 1, 1))
    assert (nothing.year_end_cents, nothing.runs_out_on) == (0, None)


def test_bookings_ahead_early_in_the_year_are_not_taken_for_a_pace() -> None:
    # On 2 January, 5,000 € booked for sessions still ahead, none held: nothing is spent yet.
    early = project(100_000_00, 5_000_00, 0, 2026, date(2026, 1, 2))
    assert (early.year_end_cents, early.runs_out_on) == (5_000_00, None)


@given(
    total=st.integers(min_value=1, max_value=10_000_000),
    committed=st.integers(min_value=0, max_value=10_000_000),
    held=st.integers(min_value=0, max_value=10_000_000),
    day=st.integers(min_value=0, max_value=364),
)
def test_the_run_out_day_is_the_first_day_the_pace_reaches_the_total(
    total: int, committed: int, held: int, day: int
) -> None:
    today = date(2026, 1, 1) + timedelta(days=day)
    elapsed = day + 1
    found = project(total, committed, held, 2026, today)

    def reached(days_on: int) -> bool:  # committed + held / elapsed per day, in whole cents x elapsed
        return committed * elapsed + held * days_on >= total * elapsed

    if committed >= total:
        assert found.runs_out_on == today
    elif found.runs_out_on is None:
        assert not reached(days_in_year(2026) - elapsed)
    else:
        k = (found.runs_out_on - today).days
        assert found.runs_out_on.year == 2026
        assert reached(k)
        assert not reached(k - 1)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_chart_is_a_png_with_the_budget_line_and_the_run_out_marker(spring: World) -> None:
    with spring.make_uow() as u:
        budget = get_budget(u.session, spring.district_id, 2026)
        history, projection = budget_picture(u.session, budget, TODAY)
    data = budget_chart_png(Translator("de"), 2026, history, projection)
    assert _png_size(data) == (800, 450)
    assert _red_lines(data) == (True, True)  # the budget line across, the run-out line in October
    lasting = budget_chart_png(
        Translator("en"), 2026, history, project(5000_00, 3000, 1800, 2026, TODAY.date())
    )
    assert _png_size(lasting) == (800, 450)
    assert _red_lines(lasting) == (True, False)  # the money lasts: no run-out line


def _red_lines(data: bytes) -> tuple[bool, bool]:
    """Whether the chart has a horizontal and a vertical line in the budget's red."""
    pixels = imread(io.BytesIO(data))[:, :, :3]
    red = np.array([int(LIMIT[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    is_red = np.all(np.abs(pixels - red) < 0.02, axis=2)
    return bool((is_red.sum(axis=1) > 400).any()), bool((is_red.sum(axis=0) > 100).any())
