"""Races decided by the database: one booking per request, and a budget that never goes below zero."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlmodel import select

from db.models import Offer, Request
from db.uow import UnitOfWork
from services import ledger
from services.errors import AlreadyTaken, DomainError
from services.offers import accept_offer
from services.requests import submit_request
from services.vocabulary import Mode
from tests.builders import ACTOR, NOW, SOON, build_world, draft

MakeUow = Callable[[], UnitOfWork]


def test_two_interpreters_accepting_at_the_same_moment_give_exactly_one_booking(uow: MakeUow) -> None:
    world = build_world(uow)
    a, b = world.interpreter("A", km_north=1), world.interpreter("B", km_north=2)
    with uow() as u:
        request = submit_request(
            u.session, district_id=world.district_id, draft=draft(world.school_id), actor=ACTOR, now=NOW
        )
        u.commit()
        offers = {
            o.interpreter_id: o.id
            for o in u.session.exec(select(Offer).where(Offer.request_id == request.id))
        }
    barrier = threading.Barrier(2)

    def press_accept(interpreter_id: int) -> str:
        barrier.wait()
        with uow() as u:
            try:
                accept_offer(
                    u.session,
                    offer_id=offers[interpreter_id] or 0,
                    interpreter_id=interpreter_id,
                    actor=ACTOR,
                    now=NOW,
                )
                u.commit()
                return "booked"
            except AlreadyTaken:
                return "taken"

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(press_accept, [a, b]))
    assert sorted(results) == ["booked", "taken"]
    with uow() as u:
        booked = u.session.get(Request, request.id)
        assert booked is not None
        assert booked.state == "booked"
        winner = a if results[0] == "booked" else b
        assert booked.interpreter_id == winner
        accepted = u.session.exec(select(Offer).where(Offer.state == "accepted")).all()
        assert [o.interpreter_id for o in accepted] == [winner]


def test_twenty_concurrent_requests_against_a_budget_for_ten_reserve_at_most_ten(uow: MakeUow) -> None:
    # Each request is a remote talk of 60 minutes: 24.00 EUR, no travel. The budget fits ten.
    world = build_world(uow, budget_cents=10 * 2400)
    for k in range(20):
        world.interpreter(f"I{k}", km_north=k)
    barrier = threading.Barrier(20)

    def request(k: int) -> str:
        barrier.wait()
        with uow() as u:
            try:
                made = submit_request(
                    u.session,
                    district_id=world.district_id,
                    draft=draft(world.school_id, mode=Mode.VIDEO, starts_at=SOON + timedelta(hours=k)),
                    actor=ACTOR,
                    now=NOW,
                )
                u.commit()
                return made.state
            except DomainError as exc:
                return repr(exc)

    with ThreadPoolExecutor(20) as pool:
        states = list(pool.map(request, range(20)))
    assert states.count("offered") == 10
    assert states.count("awaiting_approval") == 10
    with uow() as u:
        budget = ledger.get_budget(u.session, world.district_id, 2026)
        assert budget.id is not None
        sums = ledger.ledger_sums(u.session, budget.id)
        assert sums == ledger.balance_of(budget)
        assert (sums.reserved_cents, sums.available_cents) == (24000, 0)
