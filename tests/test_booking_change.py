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

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from bot.scheduling import run_due
from db.models import (
    AuditEvent,
    BookingChange,
    DialogState,
    DueTask,
    Interpreter,
    Offer,
    OutboxMessage,
    Request,
)
from db.uow import UnitOfWork
from services import changes, ledger
from services.changes import ChangeDraft
from services.errors import BudgetExceeded, DomainError, IllegalTransition, InvalidInput
from services.offers import accept_offer
from services.policy import DEFAULT_POLICY, parse_value, set_rule
from services.requests import cancel
from services.vocabulary import Mode
from tests.builders import ACTOR, NOW, SOON, World, book, build_world, submit
from tests.chat_world import START, START_TEXT, Clock, make_demo
from tests.test_telegram import (  # noqa: F401 (the fixture)
    AMIRA,
    SCHOOL,
    Telegram,
    _budget_json,
    _calendar_event,
    _key_of,
    _request_arabic,
    telegram,
)

MakeUow = Callable[[], UnitOfWork]
HOUR = timedelta(hours=1)
DE = Translator("de")


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
        interpreter_id = world.interpreters[name]
        if keep:
            changes.confirm_change(
                u.session, change_id=change_id, interpreter_id=interpreter_id, actor=ACTOR, now=now
            )
        else:
            changes.decline_change(
                u.session,
                change_id=change_id,
                interpreter_id=interpreter_id,
                reason="Ich habe dann einen Arzttermin.",
                actor=ACTOR,
                now=now,
            )
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


# --- in chat ---------------------------------------------------------------------------------------


def _say(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> str:
    return "\n".join(r.text for r in talk.handle(Incoming("test", user, user, text=text, choice=choice)))


def _booked_in_chat(engine: Engine) -> Conversation:
    """The demo school's Arabic request (in person, 60 min, 10 March 10:00), booked by Amira (no travel)."""
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, Clock(NOW))
    for user, code in (("school", codes.school), ("amira", codes.amira)):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    for line in ("/request", "ar", "vor Ort", START_TEXT, "60", "1", "1", "1", "1", "1"):
        _say(talk, "school", line)
    with UnitOfWork(engine) as u:
        amira = u.session.exec(select(Interpreter.id).where(col(Interpreter.name).startswith("Amira"))).one()
        offer = u.session.exec(select(Offer).where(Offer.interpreter_id == amira)).one()
        accept_offer(u.session, offer_id=offer.id or 0, interpreter_id=amira or 0, actor=ACTOR, now=NOW)
        u.commit()
    return talk


def test_a_school_changes_a_booking_in_chat_and_bad_input_changes_nothing(engine: Engine) -> None:
    talk = _booked_in_chat(engine)
    listed = _say(talk, "school", "/bookings")
    assert DE.render("Change #{request_id}", {"request_id": 1}) in listed
    asked = _say(talk, "school", choice="rq:cg:1")
    line = "#1 · Arabisch · vor Ort · Di., 10.03.2026, 10:00 Uhr · 60 min"
    assert asked.splitlines()[0] == DE.render("What should change in {line}?", {"line": line})
    assert asked.splitlines()[2:] == ["1. Beginn", "2. Dauer", "3. Ort", "4. Einsatzart"]
    _say(talk, "school", choice="when")
    # Tomorrow is too soon for in person (24 h), and nonsense is no date: a sentence each, nothing saved.
    soon = _say(talk, "school", "3.3. 08:00")
    assert soon.startswith(
        DE.render(
            "Requests {mode} need more notice; the earliest possible start is {earliest_at}.",
            {"mode": "in_person", "earliest_at": NOW + timedelta(hours=24)},
        )
    )
    nonsense = _say(talk, "school", "Quatsch").splitlines()
    assert "Quatsch" in nonsense[0]
    assert nonsense[1].startswith("Wann beginnt der Einsatz?")  # asked again
    with UnitOfWork(engine) as u:
        assert u.session.exec(select(BookingChange)).all() == []
        assert u.session.exec(select(DialogState.step)).all().count("when") == 1

    _say(talk, "school", "10.3. 11:00")
    _say(talk, "school", choice="field")
    _say(talk, "school", choice="duration")
    summary = _say(talk, "school", "90")
    assert (
        DE.render(
            "Reserved in the budget: {before_cents} now, {after_cents} with the change.",
            {"before_cents": 2400, "after_cents": 3600},
        )
        in summary
    )
    assert "Di., 10.03.2026, 11:00 Uhr · 90 min" in summary
    _say(talk, "school", choice="send")
    with UnitOfWork(engine) as u:
        (change,) = u.session.exec(select(BookingChange)).all()
    assert (change.starts_at, change.duration_minutes, change.estimate_cents) == (START + HOUR, 90, 3600)

    _say(talk, "amira", choice=f"cg:ok:{change.id}")
    with UnitOfWork(engine) as u:
        request = u.session.get(Request, 1)
        assert request is not None
        assert (request.starts_at, request.duration_minutes, request.calendar_sequence) == (
            START + HOUR,
            90,
            2,
        )
        assert ledger.open_reservation(u.session, 1) == 3600
    again = _say(talk, "amira", choice=f"cg:no:{change.id}")
    assert again == DE.gettext("You have already confirmed this change.")


def test_a_late_change_warns_the_school_of_the_fee(engine: Engine) -> None:
    talk = _booked_in_chat(engine)
    talk.clock = Clock(START - timedelta(hours=20))  # inside the 24 h window
    _say(talk, "school", choice="rq:cg:1")
    _say(talk, "school", choice="when")
    summary = _say(talk, "school", "12.3. 10:00")
    assert (
        DE.render(
            "This is inside the cancellation window: if the interpreter cannot keep the change, "
            "it counts as a late cancellation and {fee_cents} is charged to the budget.",
            {"fee_cents": 2400},
        )
        in summary
    )


# --- through the real PTB against the fake Bot API ------------------------------------------------


async def test_a_booking_moved_by_an_hour_reaches_both_calendars_and_the_reservation_follows(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.join(AMIRA, tg.codes.amira)
    summary = await _request_arabic(tg)
    await tg.press(SCHOOL, summary, "send")
    offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    await tg.press(AMIRA, offer, _key_of(offer, "of:a:"))
    for user in (SCHOOL, AMIRA):
        await tg.api.wait_for_message(user, lambda m: m.method == "sendDocument")
    assert _budget_json(tg.engine)["reserved_cents"] == 2400

    listed = await tg.say(SCHOOL, "/bookings")
    fields = await tg.choose(SCHOOL, listed, _key_of(listed, "rq:cg:"))
    await tg.choose(SCHOOL, fields, "when")
    fields = await tg.choose(SCHOOL, await tg.say(SCHOOL, "10.3. 11:00"), "field")
    await tg.choose(SCHOOL, fields, "duration")
    summary = await tg.say(SCHOOL, "90")
    assert DE.money(3600) in summary.text
    since = len(tg.api.sent(AMIRA))
    sent = await tg.choose(SCHOOL, summary, "send")
    assert sent.text == DE.gettext("The change is sent. The interpreter is asked; you will hear the answer.")

    asked = await tg.api.wait_for_message(
        AMIRA, lambda m: any(k.startswith("cg:") for _, k in m.buttons), since=since
    )
    assert DE.render("New start: {starts_at}", {"starts_at": START + HOUR}) in asked.text
    assert DE.render("New duration: {minutes} min", {"minutes": 90}) in asked.text
    assert [label for label, _ in asked.buttons] == [DE.gettext("Yes, I can"), DE.gettext("No, I cannot")]
    await tg.press(AMIRA, asked, _key_of(asked, "cg:ok:"))
    confirmed = DE.gettext("You have confirmed the change. /jobs shows all your jobs.")
    await tg.api.wait_for_edit(AMIRA, asked.message_id, lambda m: confirmed in m.text)

    for user in (SCHOOL, AMIRA):  # the same event in both calendars, one SEQUENCE higher, at the new time
        await tg.api.wait_for_message(
            user, lambda m: m.method == "sendDocument" and _calendar_event(m)["sequence"] == 2
        )
        files = [m for m in tg.api.sent(user) if m.method == "sendDocument"]
        events = [_calendar_event(m) for m in files]
        assert [(str(e["uid"]), e["sequence"], str(e["status"])) for e in events] == [
            ("request-1@dolmetscherpool", 1, "CONFIRMED"),
            ("request-1@dolmetscherpool", 2, "CONFIRMED"),
        ]
        assert (events[1].start, events[1].end) == (START + HOUR, START + HOUR + timedelta(minutes=90))
    assert _budget_json(tg.engine)["reserved_cents"] == 3600  # 90 min in person: 60 + 30, no travel
