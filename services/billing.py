"""Billing rules as pure functions: estimates, actual cost, cancellation fees. All money in cents.

A session is billed by its mode: at least the mode's minimum, then per started increment
(in person 60 min then per 30, phone and video 30 then per 15, written 30 then per 30, by
default). Travel is paid for in-person work only: km of the round trip times the km rate, plus
tickets at cost. Each part is rounded half-up to a cent on its own, so invoice lines add up.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.errors import InvalidInput
from services.policy import Policy
from services.text import N_
from services.units import round_cents
from services.vocabulary import Mode

MAX_REPORTED_MINUTES = 16 * 60
MAX_REPORTED_KM = 2000
MAX_EXPENSES_CENTS = 1000_00


@dataclass(frozen=True)
class Cost:
    billed_minutes: int
    fee_cents: int
    travel_cents: int
    expenses_cents: int

    @property
    def total_cents(self) -> int:
        return self.fee_cents + self.travel_cents + self.expenses_cents


def billed_minutes(minutes: int, minimum: int, increment: int) -> int:
    """The minimum, then every started increment beyond it: (61, 60, 30) -> 90."""
    if minutes <= minimum:
        return minimum
    started = -(-(minutes - minimum) // increment)
    return minimum + started * increment


def fee_cents(minutes: int, hourly_rate_cents: int) -> int:
    return round_cents(Decimal(minutes) * hourly_rate_cents / 60)


def estimated_travel_cents(distance_m: int, policy: Policy) -> int:
    """Straight-line distance x road factor x 2 (round trip) x km rate."""
    km = Decimal(distance_m) / 1000
    return round_cents(km * policy.road_factor * 2 * policy.km_rate)


def estimate(mode: Mode, planned_minutes: int, distance_m: int, policy: Policy) -> Cost:
    """What a request will cost with an interpreter living `distance_m` from the place."""
    minutes = billed_minutes(planned_minutes, *policy.billing_steps(mode))
    travel = estimated_travel_cents(distance_m, policy) if mode is Mode.IN_PERSON else 0
    return Cost(minutes, fee_cents(minutes, policy.hourly_rate), travel, 0)


def validate_report(mode: Mode, minutes: int, km: int, expenses_cents: int) -> None:
    """Refuse impossible closeout figures; travel is paid for in-person work only."""
    if not 0 <= minutes <= MAX_REPORTED_MINUTES:
        raise InvalidInput(N_("The time must be between 0 and {max} minutes."), max=MAX_REPORTED_MINUTES)
    if not 0 <= km <= MAX_REPORTED_KM:
        raise InvalidInput(N_("The distance must be between 0 and {max} km."), max=MAX_REPORTED_KM)
    if not 0 <= expenses_cents <= MAX_EXPENSES_CENTS:
        raise InvalidInput(N_("Expenses must be between 0 and {max_cents}."), max_cents=MAX_EXPENSES_CENTS)
    if mode is not Mode.IN_PERSON and (km or expenses_cents):
        raise InvalidInput(N_("Travel costs are paid for in-person work only."))


def actual(mode: Mode, minutes: int, km: int, expenses_cents: int, policy: Policy) -> Cost:
    """The cost of a session as reported: billed time, km driven (round trip), tickets at cost."""
    validate_report(mode, minutes, km, expenses_cents)
    billed = billed_minutes(minutes, *policy.billing_steps(mode))
    return Cost(billed, fee_cents(billed, policy.hourly_rate), km * policy.km_rate, expenses_cents)


def cancellation_fee(mode: Mode, starts_at: datetime, now: datetime, policy: Policy) -> Cost:
    """Free until the policy's window before the start; inside it, the mode's minimum, no travel."""
    if starts_at - now >= policy.free_cancellation_until:
        return Cost(0, 0, 0, 0)
    minimum, _ = policy.billing_steps(mode)
    return Cost(minimum, fee_cents(minimum, policy.hourly_rate), 0, 0)
