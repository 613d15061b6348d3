"""After the session: report, confirm or dispute, coordinator correction, and the ledger it leaves."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import col, select

from db.models import AuditEvent, LedgerEntry, Offer, Request
from db.uow import UnitOfWork
from services import closeout, ledger
from services.errors import IllegalTransition, InvalidInput, NotFound
from services.offers import accept_offer
from services.requests import submit_request
from tests.builders import ACTOR, NOW, SOON, World, build_world, draft

MakeUow = Callable[[], UnitOfWork]
AFTER = SOON + timedelta(hours=2)


def booked(uow: MakeUow, budget_cents: int = 5000_00) -> tuple[World, int, int]:
    world = build_world(uow, budget_cents=budget_cents)
    interpreter = world.interpreter("Amira", km_north=6)
    with uow() as u:
        request = submit_request(
            u.session, district_id=world.district_id, draft=draft(world.school_id), actor=ACTOR, now=NOW
        )
        offer = u.session.exec(select(Offer).where(Offer.request_id == request.id)).one()
        accept_offer(u.session, offer_id=offer.id or 0, interpreter_id=interpreter, actor=ACTOR, now=NOW)
        u.commit()
        assert request.id is not None
        return world, request.id, interpreter


def report(uow: MakeUow, request_id: int, interpreter: int, minutes: int, km: int = 0) -> int:
    """The interpreter reports and it is committed; returns the amount the report comes to."""
    with uow() as u:
        made = closeout.report(
            u.session, request_id=request_id, interpreter_id=interpreter, minutes=minutes, km=km,
            expenses_cents=0, actor=ACTOR, now=AFTER,
        )  # fmt: skip
        u.commit()
        assert made.amount_cents is not None
        return made.amount_cents


def correct(uow: MakeUow, world: World, request_id: int, minutes: int, reason: str) -> int:
    """A coordinator corrects to `minutes` and 18 km, committed; returns the change in the charge."""
    with uow() as u:
        correction = closeout.correct(
            u.session, district_id=world.district_id, request_id=request_id, minutes=minutes, km=18,
            expenses_cents=0, reason=reason, actor=ACTOR, now=AFTER,
        )  # fmt: skip
        u.commit()
        return correction.change_cents


def balance(uow: MakeUow, world: World) -> ledger.Balance:
    with uow() as u:
        budget = ledger.get_budget(u.session, world.district_id, 2026)
        assert budget.id is not None
        assert ledger.ledger_sums(u.session, budget.id) == ledger.balance_of(budget)
        return ledger.balance_of(budget)


def test_report_75_minutes_and_18_km_then_confirm_charges_exactly_the_policy_amount(uow: MakeUow) -> None:
    world, request_id, interpreter = booked(uow)
    # 6 km x 1.3 x 2 x 0.30 EUR = 4.68 EUR travel estimate + 24.00 EUR
    assert balance(uow, world).reserved_cents == 2868
    assert (
        report(uow, request_id, interpreter, minutes=75, km=18) == 3600 + 540
    )  # 90 billed minutes + 18 km x 0.30 EUR
    with uow() as u:
        settled = closeout.confirm(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            actor=ACTOR,
            now=AFTER,
            school_id=world.school_id,
        )
        u.commit()
    assert settled
    assert (balance(uow, world).reserved_cents, balance(uow, world).charged_cents) == (0, 4140)
    assert balance(uow, world).available_cents == 500000 - 4140
    with uow() as u:
        request = u.session.get(Request, request_id)
        assert request is not None
        assert request.state == "settled"
        kinds = [
            (e.kind, e.amount_cents)
            for e in u.session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))
        ]
        assert kinds == [("reserve", 2868), ("release", 2868), ("charge", 4140)]
        actions = [a.action for a in u.session.exec(select(AuditEvent).where(AuditEvent.entity == "request"))]
        assert actions[-4:] == [
            "request.completed",
            "closeout.reported",
            "closeout.confirmed",
            "request.settled",
        ]


def test_report_before_the_start_or_by_someone_else_is_refused(uow: MakeUow) -> None:
    _, request_id, interpreter = booked(uow)
    with uow() as u, pytest.raises(InvalidInput):
        closeout.report(
            u.session,
            request_id=request_id,
            interpreter_id=interpreter,
            minutes=60,
            km=0,
            expenses_cents=0,
            actor=ACTOR,
            now=NOW,
        )
    with uow() as u, pytest.raises(NotFound, match="booking"):
        closeout.report(
            u.session,
            request_id=request_id,
            interpreter_id=interpreter + 99,
            minutes=60,
            km=0,
            expenses_cents=0,
            actor=ACTOR,
            now=AFTER,
        )


def test_dispute_then_coordinator_correction_settles_and_a_later_correction_adjusts(uow: MakeUow) -> None:
    world, request_id, interpreter = booked(uow)
    report(uow, request_id, interpreter, minutes=150, km=18)
    with uow() as u:
        closeout.dispute(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            reason="It took 60 minutes",
            actor=ACTOR,
            now=AFTER,
        )
        u.commit()
    with uow() as u, pytest.raises(IllegalTransition):
        closeout.dispute(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            reason="again",
            actor=ACTOR,
            now=AFTER,
        )
    correct(uow, world, request_id, minutes=60, reason="school's time")
    assert balance(uow, world).charged_cents == 2400 + 540
    delta = correct(uow, world, request_id, minutes=61, reason="started half hour")
    assert delta == 1200
    assert balance(uow, world).charged_cents == 3600 + 540
    with uow() as u:
        adjust = u.session.exec(select(LedgerEntry).where(LedgerEntry.kind == "adjust")).one()
        assert (adjust.amount_cents, adjust.reason) == (1200, "started half hour")


def test_settlement_beyond_the_budget_waits_for_the_coordinator(uow: MakeUow) -> None:
    world, request_id, interpreter = booked(uow, budget_cents=3000)
    report(uow, request_id, interpreter, minutes=240)
    with uow() as u:
        settled = closeout.confirm(
            u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=AFTER
        )
        u.commit()
    assert not settled
    # 240 minutes cost 96.00 EUR; only the reservation of 28.68 EUR plus 1.32 EUR are there.
    assert (balance(uow, world).reserved_cents, balance(uow, world).charged_cents) == (2868, 0)
    assert balance(uow, world).available_cents == 132
    with uow() as u:
        request = u.session.get(Request, request_id)
        assert request is not None
        assert request.state == "completed"
