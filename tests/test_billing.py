"""Billing rules, table-driven at every rounding edge, plus properties that hold for any input."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing import actual, billed_minutes, cancellation_fee, estimate, validate_report
from services.errors import InvalidInput
from services.policy import DEFAULT_POLICY as P
from services.vocabulary import Mode
from tests.builders import SOON

EDGES = [59, 60, 61, 89, 90, 91]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Mode.IN_PERSON, [60, 60, 90, 90, 90, 120]),
        (Mode.PHONE, [60, 60, 75, 90, 90, 105]),
        (Mode.VIDEO, [60, 60, 75, 90, 90, 105]),
        (Mode.WRITTEN, [60, 60, 90, 90, 90, 120]),
    ],
)
def test_billed_minutes_at_the_edges(mode: Mode, expected: list[int]) -> None:
    assert [actual(mode, m, 0, 0, P).billed_minutes for m in EDGES] == expected
    # 24.00 EUR per hour: 60 min = 2400 ct, 75 min = 3000 ct, 105 min = 4200 ct
    assert [actual(mode, m, 0, 0, P).fee_cents for m in EDGES] == [b * 40 for b in expected]


@pytest.mark.parametrize(
    ("mode", "minutes", "billed"),
    [
        (Mode.IN_PERSON, 1, 60),
        (Mode.IN_PERSON, 0, 60),
        (Mode.PHONE, 10, 30),
        (Mode.PHONE, 31, 45),
        (Mode.WRITTEN, 29, 30),
        (Mode.WRITTEN, 31, 60),
    ],
)
def test_minimums(mode: Mode, minutes: int, billed: int) -> None:
    assert actual(mode, minutes, 0, 0, P).billed_minutes == billed


def test_travel_in_person_km_and_tickets() -> None:
    cost = actual(Mode.IN_PERSON, 75, 18, 0, P)
    assert (cost.billed_minutes, cost.fee_cents, cost.travel_cents, cost.total_cents) == (90, 3600, 540, 4140)
    with_ticket = actual(Mode.IN_PERSON, 60, 0, 1290, P)
    assert (with_ticket.fee_cents, with_ticket.travel_cents, with_ticket.expenses_cents) == (2400, 0, 1290)
    assert with_ticket.total_cents == 3690


def test_travel_is_refused_for_remote_and_written_work() -> None:
    for mode in (Mode.PHONE, Mode.VIDEO, Mode.WRITTEN):
        with pytest.raises(InvalidInput):
            validate_report(mode, 30, 5, 0)
        with pytest.raises(InvalidInput):
            validate_report(mode, 30, 0, 100)


@pytest.mark.parametrize(
    ("minutes", "km", "expenses"), [(-1, 0, 0), (16 * 60 + 1, 0, 0), (60, -1, 0), (60, 0, -5)]
)
def test_impossible_reports_are_refused(minutes: int, km: int, expenses: int) -> None:
    with pytest.raises(InvalidInput):
        validate_report(Mode.IN_PERSON, minutes, km, expenses)


def test_estimate_uses_road_factor_round_trip_and_km_rate() -> None:
    # 10 km straight line x 1.3 x 2 x 0.30 EUR = 7.80 EUR; 90 planned minutes in person bill 90.
    cost = estimate(Mode.IN_PERSON, 90, 10_000, P)
    assert (cost.fee_cents, cost.travel_cents, cost.total_cents) == (3600, 780, 4380)
    # 12.3456 km -> 9.629568 EUR -> rounds half up to 963 cents
    assert estimate(Mode.IN_PERSON, 60, 12_346, P).travel_cents == 963
    assert estimate(Mode.VIDEO, 20, 50_000, P).total_cents == 1200  # remote: no travel, 30 min minimum


@pytest.mark.parametrize(
    ("before_start", "fee"),
    [
        (timedelta(hours=24, seconds=1), 0),
        (timedelta(hours=24), 0),
        (timedelta(hours=23, minutes=59, seconds=59), 2400),
        (timedelta(hours=2), 2400),
    ],
)
def test_cancellation_window_in_person(before_start: timedelta, fee: int) -> None:
    assert cancellation_fee(Mode.IN_PERSON, SOON, SOON - before_start, P).total_cents == fee


def test_cancellation_fee_is_the_modes_minimum_without_travel() -> None:
    cost = cancellation_fee(Mode.PHONE, SOON, SOON - timedelta(hours=2), P)
    assert (cost.billed_minutes, cost.fee_cents, cost.travel_cents) == (30, 1200, 0)


@given(
    minutes=st.integers(min_value=0, max_value=2000),
    minimum=st.integers(min_value=1, max_value=240),
    increment=st.integers(min_value=1, max_value=120),
)
def test_billed_minutes_properties(minutes: int, minimum: int, increment: int) -> None:
    billed = billed_minutes(minutes, minimum, increment)
    assert billed >= max(minutes, minimum)
    assert (billed - minimum) % increment == 0
    if minutes > minimum:
        assert billed - minutes < increment
    else:
        assert billed == minimum
