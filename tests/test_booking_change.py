"""Changing a booked session: the school asks, the booked interpreter confirms or declines.

The rules are in services/changes.py. Figures: 24.00 EUR per hour, in person at least 60 min then
per 30, phone at least 30 then per 15; travel 2 x km x 1.3 x 0.30 EUR.
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.scheduling import run_due
from db.models import AuditEvent, BookingChange, DueTask, Offer, OutboxMessage, Request
from db.uow import UnitOfWork
from services import changes, ledger
from services.changes import ChangeDraft
from services.errors import BudgetExceeded, DomainError, IllegalTransition, InvalidInput
from services.policy import DEFAULT_POLICY, parse_value, set_rule
from services.requests import cancel
from services.vocabulary import Mode
from tests.builders import ACTOR, NOW, SOON, World, book, build_world, submit

MakeUow = Callable[[], UnitOfWork]
HOUR = timedelta(hours=1)


@pytest.fixture
def world(uow: MakeUow) -> World:
    world = build_world(uow)
    world.interpreter("Amira", km_north=10)  # 10 km: 7.80 EUR travel in person
    world.interpreter("Samir", km_north=20)  # 20 km: 15.60 EUR
    return world


def ask(world: World, request_id: int, draft: ChangeDraft, now: datetime = NOW) -> int:
    with world.make_uow() as u:
        change = changes.ask_change(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            draft=draft,
            actor=ACTOR,
            now=now,
            school_id=world.school_id,
        )
        u.commit()
        assert change.id is not None
        return change.id


def answer(world: World, change_id: int, name: str, *, keep: bool, now: datetime = NOW) -> None:
    with world.make_uow() as u:
        act = changes.confirm_change if keep else changes.decline_change
        act(u.session, change_id=change_id, interpreter_id=world.interpreters[name], actor=ACTOR, now=now)
        u.commit()


def request_of(world: World, request_id: int) -> Request:
    with world.make_uow() as u:
        request = u.session.get(Request, request_id)
        assert request is not None
        return request


def money(world: World) -> tuple[int, int]:
    """(reserved, charged) of the year's budget, checked against the ledger's own sums."""
    with world.make_uow() as u:
        budget = ledger.get_budget(u.session, world.district_id, 2026)
        assert budget.id is not None
        assert ledger.ledger_sums(u.session, budget.id) == ledger.balance_of(budget)
        return budget.reserved_cents, budget.charged_cents


def params_of(world: World, template: str) -> list[tuple[str, int, dict[str, Any]]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, m.recipient_id, json.loads(m.params)) for m in rows]


def offers(world: World, request_id: int) -> list[tuple[str, str]]:
    names = {i: n for n, i in world.interpreters.items()}
    with world.make_uow() as u:
        rows = u.session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id)))
        return [(names[o.interpreter_id], o.state) for o in rows]


def due_rows(world: World, request_id: int) -> list[tuple[str, str, datetime, str]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(DueTask)
            .where(DueTask.subject_id == request_id, col(DueTask.kind).in_(["reminder", "closeout_prompt"]))
            .order_by(col(DueTask.kind), col(DueTask.variant))
        )
        return [(t.kind, t.variant, t.due_at, t.outcome) for t in rows]


def booked(world: World, name: str = "Amira", **kwargs: Any) -> int:
    """A request booked by `name` (only they are offered it first: the nearest), committed."""
    request_id = submit(world, **kwargs)
    book(world, request_id, name)
    return request_id


def test_a_confirmed_change_takes_effect_with_its_reservation_reminders_and_calendar(world: World) -> None:
    request_id = booked(world)
    amira = world.interpreters["Amira"]
    assert money(world) == (2400 + 780, 0)
    later = ChangeDraft(starts_at=SOON + HOUR, duration_minutes=90, mode=Mode.IN_PERSON)

    change_id = ask(world, request_id, later)
    # Until the interpreter answers the booking stays, and the money for either outcome is held.
    before = request_of(world, request_id)
    assert (before.starts_at, before.duration_minutes, before.calendar_sequence) == (SOON, 60, 1)
    assert money(world) == (3600 + 780, 0)
    ((kind, recipient, params),) = params_of(world, "change.asked")
    assert (kind, recipient, params["pay_cents"], params["fee_cents"]) == ("interpreter", amira, 4380, 0)
    assert params["expires_at"] == (NOW + 4 * HOUR).isoformat()  # the offer timeout

    answer(world, change_id, "Amira", keep=True, now=NOW + HOUR)
    after = request_of(world, request_id)
    assert (after.starts_at, after.duration_minutes, after.state, after.interpreter_id) == (
        SOON + HOUR,
        90,
        "booked",
        amira,
    )
    assert (after.calendar_sequence, after.estimate_cents) == (2, 4380)
    assert money(world) == (4380, 0)
    assert [p["calendar_sequence"] for _, _, p in params_of(world, "change.confirmed")] == [2]
    assert [
        (k, p["calendar_sequence"], p["reserved_cents"]) for k, _, p in params_of(world, "request.changed")
    ] == [("school", 2, 4380)]
    end = SOON + HOUR + timedelta(minutes=90)
    assert due_rows(world, request_id) == [
        ("closeout_prompt", f"i{amira}", end, ""),
        ("reminder", f"first:i{amira}", SOON + HOUR - timedelta(hours=24), ""),
        ("reminder", f"second:i{amira}", SOON + HOUR - timedelta(hours=2), ""),
    ]
    with world.make_uow() as u:
        audit = u.session.exec(
            select(AuditEvent.action)
            .where(col(AuditEvent.action).startswith("change."))
            .order_by(col(AuditEvent.id))
        ).all()
    assert audit == ["change.asked", "change.confirmed"]
    with pytest.raises(IllegalTransition):  # a second press changes nothing
        answer(world, change_id, "Amira", keep=False, now=NOW + HOUR)


def test_a_change_to_phone_drops_the_travel_and_a_reminder_already_sent_is_armed_again(
    world: World, engine: Engine
) -> None:
    request_id = booked(world)
    amira = world.interpreters["Amira"]
    now = SOON - 20 * HOUR  # the first reminder (24 h before) has gone out
    assert run_due(engine, lambda: now) >= 1
    change_id = ask(world, request_id, ChangeDraft(SOON + 48 * HOUR, 60, Mode.PHONE, "+49 5191 2"), now)
    answer(world, change_id, "Amira", keep=True, now=now)
    assert money(world) == (2400, 0)  # 60 min by phone, no travel
    rows = due_rows(world, request_id)
    assert rows == [
        ("closeout_prompt", f"i{amira}", SOON + 49 * HOUR, ""),
        ("reminder", f"first:c{change_id}:i{amira}", SOON + 24 * HOUR, ""),
        ("reminder", f"first:i{amira}", SOON - 24 * HOUR, "done"),
        ("reminder", f"second:i{amira}", SOON + 46 * HOUR, ""),
    ]
    assert request_of(world, request_id).place == "+49 5191 2"


def test_a_change_declined_in_time_goes_back_to_the_pool_with_the_new_time(world: World) -> None:
    request_id = booked(world)
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.IN_PERSON))
    answer(world, change_id, "Amira", keep=False)

    request = request_of(world, request_id)
    assert (request.state, request.starts_at, request.interpreter_id) == ("offered", SOON + HOUR, None)
    assert request.calendar_sequence == 2  # Amira's calendar drops the event
    # Samir, withdrawn when Amira took it, is asked again; Amira is not.
    assert offers(world, request_id) == [("Amira", "cancelled"), ("Samir", "withdrawn"), ("Samir", "open")]
    assert money(world) == (2400 + 1560, 0)  # Samir's estimate; nothing charged
    ((kind, _, params),) = params_of(world, "request.change_declined")
    assert (kind, params["fee_cents"], params["new_request_id"], params["calendar_sequence"]) == (
        "school",
        0,
        None,
        None,
    )
    ((_, _, declined),) = params_of(world, "change.declined")
    assert (declined["fee_cents"], declined["calendar_sequence"]) == (0, 2)


def test_a_late_change_declined_costs_the_policy_fee_and_becomes_a_new_request(world: World) -> None:
    request_id = booked(world, mode=Mode.PHONE)
    assert money(world) == (2400, 0)
    now = SOON - 5 * HOUR  # inside the free-cancellation window of 24 h
    with world.make_uow() as u:
        quote = changes.quote_change(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            draft=ChangeDraft(SOON + HOUR, 60, Mode.PHONE),
            now=now,
        )
    assert (quote.before_cents, quote.after_cents, quote.fee_cents) == (2400, 2400, 1200)
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.PHONE), now)
    answer(world, change_id, "Amira", keep=False, now=now + HOUR)

    old = request_of(world, request_id)
    assert (old.state, old.state_reason, old.interpreter_id) == (
        "cancelled",
        "change_declined",
        world.interpreters["Amira"],
    )
    assert old.calendar_sequence == 2
    new = request_of(world, request_id + 1)
    assert (new.state, new.starts_at, new.mode, new.duration_minutes) == ("offered", SOON + HOUR, "phone", 60)
    assert offers(world, new.id or 0) == [("Amira", "declined"), ("Samir", "open")]
    # The phone minimum of 30 min charged (Amira's compensation); Samir's 60 min by phone reserved.
    assert money(world) == (2400, 1200)
    ((_, _, params),) = params_of(world, "request.change_declined")
    assert (params["fee_cents"], params["new_request_id"], params["calendar_sequence"]) == (1200, new.id, 2)


def test_the_policy_may_let_a_late_change_go_back_to_the_pool_without_a_fee(world: World) -> None:
    with world.make_uow() as u:
        set_rule(
            u.session, world.district_id, "late_change_counts_as_cancellation", "nein", actor=ACTOR, now=NOW
        )
        u.commit()
    request_id = booked(world, mode=Mode.PHONE)
    now = SOON - 5 * HOUR
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.PHONE), now)
    answer(world, change_id, "Amira", keep=False, now=now)
    assert request_of(world, request_id).state == "offered"
    assert money(world) == (2400, 0)


def test_the_late_change_rule_is_a_yes_or_no_policy_value() -> None:
    assert DEFAULT_POLICY.late_change_counts_as_cancellation is True
    assert parse_value("late_change_counts_as_cancellation", "no") is False
    with pytest.raises(InvalidInput):
        parse_value("late_change_counts_as_cancellation", "vielleicht")


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (ChangeDraft(NOW + 3 * HOUR, 60, Mode.IN_PERSON), "Requests {mode} need more notice"),
        (ChangeDraft(NOW - HOUR, 60, Mode.IN_PERSON), "The start lies in the past."),
        (ChangeDraft(SOON, 600, Mode.IN_PERSON), "The duration must be between"),
        (ChangeDraft(SOON, 60, Mode.IN_PERSON), "That is the booking as it is"),
        (ChangeDraft(SOON + timedelta(days=300), 60, Mode.IN_PERSON), "A change cannot move a session"),
        (ChangeDraft(SOON, 60, Mode.WRITTEN), "Written translation is for letters"),
    ],
)
def test_a_change_against_the_rules_is_refused_with_a_sentence_and_changes_nothing(
    world: World, draft: ChangeDraft, message: str
) -> None:
    request_id = booked(world)
    with pytest.raises(InvalidInput) as refused:
        ask(world, request_id, draft)
    assert refused.value.message.startswith(message)
    assert money(world) == (3180, 0)
    with world.make_uow() as u:
        assert u.session.exec(select(BookingChange)).all() == []


def test_a_change_the_budget_cannot_carry_is_refused(uow: MakeUow) -> None:
    world = build_world(uow, budget_cents=3000)
    world.interpreter("Amira")
    request_id = booked(world)
    with pytest.raises(BudgetExceeded) as refused:
        ask(world, request_id, ChangeDraft(SOON, 90, Mode.IN_PERSON))
    assert refused.value.params == {"extra_cents": 1200, "available_cents": 600}
    assert money(world) == (2400, 0)


def test_one_change_at_a_time_and_only_by_the_booking_school(world: World) -> None:
    request_id = booked(world)
    ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.IN_PERSON))
    with pytest.raises(InvalidInput, match="already waiting"):
        ask(world, request_id, ChangeDraft(SOON + 2 * HOUR, 60, Mode.IN_PERSON))
    with world.make_uow() as u, pytest.raises(DomainError):
        changes.ask_change(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            draft=ChangeDraft(SOON + 2 * HOUR, 60, Mode.IN_PERSON),
            actor=ACTOR,
            now=NOW,
            school_id=world.school_id + 1,
        )


def test_an_unanswered_change_lapses_and_the_booking_stays_as_it_was(world: World, engine: Engine) -> None:
    request_id = booked(world)
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 90, Mode.IN_PERSON))
    assert money(world) == (4380, 0)
    run_due(engine, lambda: NOW + 4 * HOUR)
    request = request_of(world, request_id)
    assert (request.starts_at, request.duration_minutes, request.state) == (SOON, 60, "booked")
    assert money(world) == (3180, 0)  # the hold is given back
    assert [k for k, _, _ in params_of(world, "change.lapsed")] == ["interpreter"]
    assert [k for k, _, _ in params_of(world, "request.change_lapsed")] == ["school"]
    with pytest.raises(IllegalTransition):
        answer(world, change_id, "Amira", keep=True, now=NOW + 5 * HOUR)
    # A new change may be asked now.
    ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.IN_PERSON), NOW + 5 * HOUR)


def test_a_booking_cancelled_meanwhile_takes_its_change_with_it(world: World, engine: Engine) -> None:
    request_id = booked(world)
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 90, Mode.IN_PERSON))
    with world.make_uow() as u:
        cancel(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=NOW)
        u.commit()
    assert money(world) == (0, 0)
    with pytest.raises(IllegalTransition):
        answer(world, change_id, "Amira", keep=True)
    run_due(engine, lambda: NOW + 4 * HOUR)
    with world.make_uow() as u:
        change = u.session.get(BookingChange, change_id)
        assert change is not None
        assert change.state == "lapsed"
    assert params_of(world, "request.change_lapsed") == []  # the cancellation said it all


def test_the_answer_time_is_the_offer_timeout_but_at_most_half_the_time_left() -> None:
    policy = DEFAULT_POLICY
    assert changes.answer_by(NOW + 48 * HOUR, NOW + 49 * HOUR, NOW, policy) == NOW + 4 * HOUR
    assert changes.answer_by(NOW + 6 * HOUR, NOW + 3 * HOUR, NOW, policy) == NOW + 90 * timedelta(minutes=1)
    assert changes.late_fee_cents(Mode.IN_PERSON, NOW + 23 * HOUR, NOW, policy) == 2400
    assert changes.late_fee_cents(Mode.IN_PERSON, NOW + 24 * HOUR, NOW, policy) == 0
    assert changes.held_cents(2400, 3600) == changes.held_cents(3600, 2400) == 3600
