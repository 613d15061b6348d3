"""A request's way through validation, referral, budget approval, offers, accept, decline and cancel."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.i18n import Translator
from bot.notifications import render
from db.models import LedgerEntry, Offer, OutboxMessage, Request, UnmetDemand
from db.uow import UnitOfWork
from services import ledger
from services.errors import AlreadyTaken, BudgetExceeded, InvalidInput, OfferClosed
from services.offers import accept_offer, decline_offer, give_back, mark_unfilled
from services.policy import set_rule
from services.requests import approve, cancel, quote, submit_request
from services.vocabulary import Gender, Mode, Role, Topic
from tests.builders import ACTOR, NOW, SOON, World, build_world, draft

MakeUow = Callable[[], UnitOfWork]


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow)


def submit(world: World, **kwargs: Any) -> Request:
    with world.make_uow() as u:
        request = submit_request(
            u.session,
            district_id=world.district_id,
            draft=draft(world.school_id, **kwargs),
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
        return request


def open_offers(world: World, request_id: int) -> dict[int, Offer]:
    """Open offers keyed by interpreter id."""
    with world.make_uow() as u:
        offers = u.session.exec(select(Offer).where(Offer.request_id == request_id, Offer.state == "open"))
        return {o.interpreter_id: o for o in offers}


def accept(world: World, request_id: int, interpreter_id: int) -> None:
    """The interpreter presses Accept on their open offer, committed."""
    with world.make_uow() as u:
        offer_id = open_offers(world, request_id)[interpreter_id].id or 0
        accept_offer(u.session, offer_id=offer_id, interpreter_id=interpreter_id, actor=ACTOR, now=NOW)
        u.commit()


def decline(world: World, request_id: int, interpreter_id: int) -> None:
    """The interpreter presses Decline on their open offer, committed."""
    with world.make_uow() as u:
        offer_id = open_offers(world, request_id)[interpreter_id].id or 0
        decline_offer(u.session, offer_id=offer_id, interpreter_id=interpreter_id, actor=ACTOR, now=NOW)
        u.commit()


def outbox(world: World, template: str) -> list[tuple[str, int, dict[str, object]]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, m.recipient_id, json.loads(m.params)) for m in rows]


def balance(world: World) -> ledger.Balance:
    with world.make_uow() as u:
        budget = ledger.get_budget(u.session, world.district_id, 2026)
        assert budget.id is not None
        sums = ledger.ledger_sums(u.session, budget.id)
        assert sums == ledger.balance_of(budget), "running totals drifted from the ledger"
        return sums


def state_of(world: World, request_id: int) -> str:
    with world.make_uow() as u:
        request = u.session.get(Request, request_id)
        assert request is not None
        return request.state


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"starts_at": NOW - timedelta(minutes=1)}, "past"),
        ({"starts_at": NOW + timedelta(hours=23)}, "notice"),
        ({"mode": Mode.PHONE, "starts_at": NOW + timedelta(minutes=90)}, "notice"),
        ({"minutes": 14}, "duration"),
        ({"minutes": 481}, "duration"),
        ({"language": "xx"}, "language code"),
        ({"language": "de"}, "German"),
        ({"topic": Topic.PARENT_LETTER}, "letter"),
        ({"mode": Mode.WRITTEN, "topic": Topic.PARENT_EVENING}, "Written"),
    ],
)
def test_invalid_drafts_are_refused_and_change_nothing(
    world: World, kwargs: dict[str, object], fragment: str
) -> None:
    world.interpreter("Amira")
    with pytest.raises(InvalidInput) as caught:
        submit(world, **kwargs)
    assert fragment in caught.value.message
    with world.make_uow() as u:
        assert u.session.exec(select(Request)).all() == []


def test_phone_two_hours_ahead_is_fine(world: World) -> None:
    world.interpreter("Amira")
    request = submit(world, mode=Mode.PHONE, starts_at=NOW + timedelta(hours=2, minutes=1))
    assert request.state == "offered"


def test_a_school_of_another_district_is_refused(world: World, uow: MakeUow) -> None:
    other = build_world(uow, slug="anderer-kreis")
    world.interpreter("Amira")
    with world.make_uow() as u, pytest.raises(InvalidInput, match="school"):
        submit_request(
            u.session, district_id=world.district_id, draft=draft(other.school_id), actor=ACTOR, now=NOW
        )


def test_uncovered_language_is_referred_and_kept_as_unmet_demand(world: World) -> None:
    world.interpreter("Amira", ["ar"])
    request = submit(world, language="ti")
    assert request.state == "referred"
    with world.make_uow() as u:
        unmet = u.session.exec(select(UnmetDemand)).all()
        assert [(d.request_id, d.language, d.reason) for d in unmet] == [(request.id, "ti", "not_covered")]
    [(kind, rid, params)] = outbox(world, "request.referred")
    assert (kind, rid) == ("school", world.school_id)
    # The referral text is the district's, read when the message is rendered; the row keeps ids.
    assert params == {"language": "ti", "reason": "not_covered", "request_id": request.id}
    with world.make_uow() as u:
        text = render(u.session, Translator("de"), "request.referred", params, Role.SCHOOL).text
    assert "Ethno-Medizinischen Zentrums" in text
    assert balance(world).reserved_cents == 0


def test_offers_go_to_the_best_three_ranked_by_travel_then_workload(world: World) -> None:
    near = world.interpreter("Near", km_north=1)
    world.interpreter("Far", km_north=40)
    mid = world.interpreter("Mid", km_north=10)
    mid2 = world.interpreter("Mid2", km_north=10)
    world.interpreter("Phone only", modes=frozenset({Mode.PHONE}))
    world.interpreter("Persian", ["fa"])
    request = submit(world)
    assert request.state == "offered"
    offers = open_offers(world, request.id or 0)
    assert set(offers) == {near, mid, mid2}
    assert [o.interpreter_id for o in sorted(offers.values(), key=lambda o: o.rank)] == [near, mid, mid2]
    # The reservation covers the most expensive open offer: 60 min + 10 km x 1.3 x 2 x 0.30 EUR.
    assert max(o.pay_cents for o in offers.values()) == 2400 + 780
    assert balance(world).reserved_cents == 3180
    assert sorted(rid for _, rid, _ in outbox(world, "offer.new")) == sorted([near, mid, mid2])


def test_gender_preference_and_absence_and_overlap_limit_the_candidates(world: World) -> None:
    woman = world.interpreter("Amira", gender=Gender.FEMALE)
    man = world.interpreter("Samir", gender=Gender.MALE)
    request = submit(world, gender=Gender.FEMALE)
    assert set(open_offers(world, request.id or 0)) == {woman}
    accept(world, request.id or 0, woman)
    # Amira is booked 10:00-11:00; a talk at 11:15 in person falls inside her 30-minute travel buffer.
    second = submit(world, starts_at=SOON + timedelta(minutes=75))
    assert set(open_offers(world, second.id or 0)) == {man}


def test_over_budget_waits_for_approval_then_goes_ahead_once_the_budget_is_raised(uow: MakeUow) -> None:
    world = build_world(uow, budget_cents=2000)
    world.interpreter("Amira")
    request = submit(world)
    assert request.state == "awaiting_approval"
    assert open_offers(world, request.id or 0) == {}
    assert [rid for _, rid, _ in outbox(world, "request.awaiting_approval")] == [
        world.district_id,
        world.school_id,
    ]
    with world.make_uow() as u, pytest.raises(BudgetExceeded):
        approve(u.session, district_id=world.district_id, request_id=request.id or 0, actor=ACTOR, now=NOW)
    assert state_of(world, request.id or 0) == "awaiting_approval"
    with world.make_uow() as u:
        ledger.set_total(
            u.session, district_id=world.district_id, year=2026, total_cents=5000, actor=ACTOR, now=NOW
        )
        approve(u.session, district_id=world.district_id, request_id=request.id or 0, actor=ACTOR, now=NOW)
        u.commit()
    assert state_of(world, request.id or 0) == "offered"
    assert balance(world).reserved_cents == 2400


def test_accept_books_withdraws_the_others_and_a_late_accept_is_told_it_is_taken(world: World) -> None:
    a, b, c = (world.interpreter(n, km_north=k) for n, k in (("A", 1), ("B", 5), ("C", 20)))
    request = submit(world)
    offers = open_offers(world, request.id or 0)
    accept(world, request.id or 0, b)
    with world.make_uow() as u, pytest.raises(AlreadyTaken):
        accept_offer(u.session, offer_id=offers[a].id or 0, interpreter_id=a, actor=ACTOR, now=NOW)
    assert state_of(world, request.id or 0) == "booked"
    assert sorted(rid for _, rid, _ in outbox(world, "offer.taken")) == sorted([a, c])
    [(_, school, params)] = outbox(world, "request.booked")
    assert (school, params["interpreter_id"]) == (world.school_id, b)
    assert "interpreter_name" not in params
    assert "interpreter_phone" not in params
    # The reservation shrinks to B's own estimate: 5 km x 1.3 x 2 x 0.30 EUR = 3.90 EUR
    assert balance(world).reserved_cents == 2400 + 390


def test_decline_moves_on_and_when_everyone_declines_the_request_is_unfilled(world: World) -> None:
    ids = [world.interpreter(f"I{k}", km_north=k) for k in range(1, 5)]
    request = submit(world)
    assert set(open_offers(world, request.id or 0)) == set(ids[:3])
    decline(world, request.id or 0, ids[0])
    assert set(open_offers(world, request.id or 0)) == set(ids[1:4])
    for iid in ids[1:4]:
        decline(world, request.id or 0, iid)
    assert state_of(world, request.id or 0) == "unfilled"
    assert balance(world).reserved_cents == 0
    assert [rid for _, rid, _ in outbox(world, "request.unfilled")] == [world.school_id]
    with world.make_uow() as u:
        assert [d.reason for d in u.session.exec(select(UnmetDemand))] == ["not_filled"]


def test_an_expired_offer_cannot_be_accepted(world: World) -> None:
    a = world.interpreter("A")
    request = submit(world)
    offer = open_offers(world, request.id or 0)[a]
    with world.make_uow() as u, pytest.raises(OfferClosed):
        accept_offer(u.session, offer_id=offer.id or 0, interpreter_id=a, actor=ACTOR, now=offer.expires_at)
    assert offer.expires_at == NOW + timedelta(hours=4)


def test_interpreter_giving_back_sends_the_request_to_the_next_candidate(world: World) -> None:
    a, b = world.interpreter("A", km_north=1), world.interpreter("B", km_north=2)
    with world.make_uow() as u:
        from services.policy import set_rule

        set_rule(u.session, world.district_id, "offer_wave_size", "1", actor=ACTOR, now=NOW)
        u.commit()
    request = submit(world)
    accept(world, request.id or 0, a)
    with world.make_uow() as u:
        give_back(u.session, request_id=request.id or 0, interpreter_id=a, reason="ill", actor=ACTOR, now=NOW)
        u.commit()
    assert state_of(world, request.id or 0) == "offered"
    assert set(open_offers(world, request.id or 0)) == {b}
    assert [rid for _, rid, _ in outbox(world, "request.interpreter_cancelled")] == [world.school_id]


@pytest.mark.parametrize("ending", ["cancelled", "unfilled"])
def test_after_a_give_back_the_schools_calendar_event_goes_when_the_request_ends_unbooked(
    world: World, ending: str
) -> None:
    a = world.interpreter("A")
    world.interpreter("B", km_north=5)  # the next wave, who does not answer
    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "offer_wave_size", "1", actor=ACTOR, now=NOW)
        u.commit()
    request = submit(world)
    request_id = request.id or 0
    accept(world, request_id, a)  # SEQUENCE 1: school and interpreter have the event
    with world.make_uow() as u:
        give_back(u.session, request_id=request_id, interpreter_id=a, reason="ill", actor=ACTOR, now=NOW)  # 2
        u.commit()
    with world.make_uow() as u:
        if ending == "cancelled":
            cancel(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=NOW)
        else:
            found = u.session.get(Request, request_id)
            assert found is not None
            mark_unfilled(u.session, found, actor=ACTOR, now=NOW)
        u.commit()
    template = "request.cancelled" if ending == "cancelled" else "request.unfilled"
    [(_, school_id, params)] = outbox(world, template)
    assert (school_id, params["calendar_sequence"]) == (world.school_id, 3)  # the school's event goes too


@pytest.mark.parametrize(
    ("before", "fee"), [(timedelta(hours=24, minutes=1), 0), (timedelta(hours=23, minutes=59), 2400)]
)
def test_cancellation_just_outside_and_just_inside_the_window(
    world: World, before: timedelta, fee: int
) -> None:
    a = world.interpreter("A")
    request = submit(world)
    accept(world, request.id or 0, a)
    with world.make_uow() as u:
        cost = cancel(
            u.session,
            district_id=world.district_id,
            request_id=request.id or 0,
            actor=ACTOR,
            now=SOON - before,
            school_id=world.school_id,
        )
        u.commit()
    assert cost.total_cents == fee
    assert state_of(world, request.id or 0) == "cancelled"
    assert (balance(world).reserved_cents, balance(world).charged_cents) == (0, fee)
    [(_, rid, params)] = outbox(world, "booking.cancelled")
    assert (rid, params["fee_cents"]) == (a, fee)


def test_quote_shows_the_estimate_and_the_budget_without_saving(world: World) -> None:
    world.interpreter("A", km_north=10)
    with world.make_uow() as u:
        q = quote(u.session, district_id=world.district_id, draft=draft(world.school_id, minutes=75), now=NOW)
    assert (q.covered, q.eligible, q.estimate_cents, q.available_cents, q.fits_budget) == (
        True,
        1,
        3600 + 780,
        500000,
        True,
    )
    with world.make_uow() as u:
        assert u.session.exec(select(Request)).all() == []
        assert u.session.exec(select(LedgerEntry)).all() == []


def test_districts_never_see_each_others_pool(world: World, uow: MakeUow) -> None:
    other = build_world(uow, slug="nachbarkreis")
    other.interpreter("Neighbour")
    request = submit(world)
    assert request.state == "referred"  # the neighbour's Arabic interpreter does not count here
    with world.make_uow() as u:
        assert ledger.balance_of(ledger.get_budget(u.session, other.district_id, 2026)).reserved_cents == 0


def test_an_offer_withdrawn_by_a_cancellation_says_withdrawn_not_taken(world: World) -> None:
    a = world.interpreter("A")
    request = submit(world)
    offer = open_offers(world, request.id or 0)[a]
    with world.make_uow() as u:
        cancel(u.session, district_id=world.district_id, request_id=request.id or 0, actor=ACTOR, now=NOW)
        u.commit()
    with world.make_uow() as u, pytest.raises(OfferClosed, match="withdrawn"):
        accept_offer(u.session, offer_id=offer.id or 0, interpreter_id=a, actor=ACTOR, now=NOW)
