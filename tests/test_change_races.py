"""A booking change against everything that may happen meanwhile (services/changes.py).

Races: one session reads, another commits in between, then the first goes on, as two chats or a
chat and the timers do at once. On SQLite every transaction holds the write lock from its first
statement, so these interleavings cannot happen there: they run on PostgreSQL. The messages after a
decline or a hand-back, the calendar and the chat run on both. Figures: 24.00 EUR per hour, in
person at least 60 min then per 30; travel 2 x km x 1.3 x 0.30 EUR (Amira 10 km: 7.80, Samir 20 km:
15.60).
"""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.notifications import render
from db.models import BookingChange, DialogState, DueTask, Interpreter, OutboxMessage, Request
from db.uow import UnitOfWork
from services import changes, ledger
from services.audit import said
from services.changes import ChangeDraft
from services.errors import BudgetExceeded, IllegalTransition
from services.offers import give_back
from services.requests import cancel, submit_request
from services.vocabulary import Mode, Role
from tests.builders import ACTOR, NOW, SOON, World, build_world, draft
from tests.test_booking_change import _booked_in_chat, _say, ask, booked, money, request_of

MakeUow = Callable[[], UnitOfWork]
HOUR = timedelta(hours=1)
EN = Translator("en")
LATER = ChangeDraft(SOON + HOUR, 90, Mode.IN_PERSON)  # Amira: 90 min + travel = 4380


def _world(uow: MakeUow, budget_cents: int = 1_000_000, *, samir: bool = True) -> World:
    world = build_world(uow, budget_cents=budget_cents)
    world.interpreter("Amira", km_north=10)
    if samir:
        world.interpreter("Samir", km_north=20)
    return world


def _postgres_only(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises whole transactions: this interleaving cannot happen there")


def outbox(world: World, template: str) -> list[tuple[str, int, dict[str, Any]]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, m.recipient_id, json.loads(m.params)) for m in rows]


def to_school(world: World) -> list[str]:
    """The templates of every message the school got, in order."""
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.recipient_type == "school")
            .order_by(col(OutboxMessage.id))
        )
        return list(rows)


def text_for(world: World, template: str, role: Role, index: int = -1) -> str:
    (_, _, params) = outbox(world, template)[index]
    with world.make_uow() as u:
        return render(u.session, EN, template, params, role).text


def decline(world: World, change_id: int, session: Session | None = None, **kwargs: Any) -> None:
    def run(s: Session) -> None:
        changes.decline_change(
            s,
            change_id=change_id,
            interpreter_id=world.interpreters["Amira"],
            reason=kwargs.get("reason", "Da habe ich einen Arzttermin."),
            actor=ACTOR,
            now=kwargs.get("now", NOW),
        )

    if session is not None:
        run(session)
        return
    with world.make_uow() as u:
        run(u.session)
        u.commit()


def confirm(world: World, change_id: int) -> None:
    with world.make_uow() as u:
        changes.confirm_change(
            u.session, change_id=change_id, interpreter_id=world.interpreters["Amira"], actor=ACTOR, now=NOW
        )
        u.commit()


# --- races (PostgreSQL) ---------------------------------------------------------------------------


def test_a_change_prices_against_the_budget_as_committed_meanwhile(uow: MakeUow, engine: Engine) -> None:
    _postgres_only(engine)
    # Booked 3180; another request of 2400 comes in while the school reads its change: 1000 left.
    world = _world(uow, budget_cents=3180 + 2400 + 1000)
    request_id = booked(world)
    with world.make_uow() as late:
        stale = ledger.get_budget(late.session, world.district_id, 2026)
        assert ledger.balance_of(stale).available_cents == 3400  # as this session read it
        with world.make_uow() as other:
            made = submit_request(
                other.session,
                district_id=world.district_id,
                draft=draft(world.school_id, mode=Mode.VIDEO, starts_at=SOON + 5 * HOUR),
                actor=ACTOR,
                now=NOW,
            )
            other.commit()
        assert made.state == "offered"
        with pytest.raises(BudgetExceeded) as refused:
            changes.ask_change(
                late.session,
                district_id=world.district_id,
                request_id=request_id,
                draft=LATER,
                actor=ACTOR,
                now=NOW,
            )
    assert refused.value.params == {"extra_cents": 1200, "available_cents": 1000}
    assert money(world) == (3180 + 2400, 0)  # and equal to the ledger's own sums


def test_a_change_asked_while_the_booking_is_cancelled_holds_no_money(uow: MakeUow, engine: Engine) -> None:
    _postgres_only(engine)
    world = _world(uow)
    request_id = booked(world)
    with world.make_uow() as late:
        read = late.session.get(Request, request_id)  # read while still booked, and kept
        assert read is not None
        with world.make_uow() as other:
            cancel(other.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=NOW)
            other.commit()
        with pytest.raises(IllegalTransition, match="only a booked session"):
            changes.ask_change(
                late.session,
                district_id=world.district_id,
                request_id=request_id,
                draft=LATER,
                actor=ACTOR,
                now=NOW,
            )
    assert money(world) == (0, 0)


def test_a_double_tap_on_yes_confirms_the_change_once(uow: MakeUow, engine: Engine) -> None:
    _postgres_only(engine)
    world = _world(uow)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    with world.make_uow() as second:
        read = second.session.get(BookingChange, change_id)  # the second tap has read it, and keeps it
        assert read is not None
        confirm(world, change_id)
        with pytest.raises(IllegalTransition) as refused:
            changes.confirm_change(
                second.session,
                change_id=change_id,
                interpreter_id=world.interpreters["Amira"],
                actor=ACTOR,
                now=NOW,
            )
    assert refused.value.message == "You have already confirmed this change."
    assert request_of(world, request_id).calendar_sequence == 2
    assert [k for k, _, _ in outbox(world, "request.changed")] == ["school"]
    assert len(outbox(world, "change.confirmed")) == 1
    assert money(world) == (4380, 0)


def test_a_change_confirmed_as_its_answer_time_runs_out_does_not_lapse_too(
    uow: MakeUow, engine: Engine
) -> None:
    _postgres_only(engine)
    world = _world(uow)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    with world.make_uow() as timers:
        change = timers.session.get(BookingChange, change_id)
        assert change is not None
        confirm(world, change_id)
        assert changes.lapse(timers.session, change, now=NOW + 4 * HOUR) is False
        timers.commit()
    assert outbox(world, "change.lapsed") == outbox(world, "request.change_lapsed") == []
    with world.make_uow() as u:
        stored = u.session.get(BookingChange, change_id)
        assert stored is not None
        assert stored.state == "confirmed"
    assert money(world) == (4380, 0)


def test_a_hand_back_after_a_change_was_confirmed_cancels_the_event_above_its_sequence(
    uow: MakeUow, engine: Engine
) -> None:
    _postgres_only(engine)
    world = _world(uow)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    with world.make_uow() as late:
        read = late.session.get(Request, request_id)  # sequence 1 as read here, and kept
        assert read is not None
        confirm(world, change_id)  # sequence 2
        handed = give_back(
            late.session,
            request_id=request_id,
            interpreter_id=world.interpreters["Amira"],
            reason="Ich bin krank.",
            actor=ACTOR,
            now=NOW,
        )
        late.commit()
    assert (handed.calendar_sequence, handed.starts_at, handed.state) == (3, SOON + HOUR, "offered")


# --- what everyone reads (SQLite and PostgreSQL) ---------------------------------------------------


def test_a_declined_change_nobody_else_can_take_is_one_message_with_the_reason(uow: MakeUow) -> None:
    world = _world(uow, samir=False)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    before = to_school(world)
    decline(world, change_id)

    request = request_of(world, request_id)
    assert (request.state, request.starts_at, request.calendar_sequence) == ("unfilled", SOON + HOUR, 3)
    assert to_school(world)[len(before) :] == ["request.change_declined"]
    ((_, _, params),) = outbox(world, "request.change_declined")
    assert (params["outcome"], params["calendar_sequence"]) == ("unfilled", 3)  # the school's event goes
    with world.make_uow() as u:  # the row names the decline's audit event, which keeps the reason
        assert said(u.session, params["audit_id"]) == "Da habe ich einen Arzttermin."
    assert "reason" not in params
    text = text_for(world, "request.change_declined", Role.SCHOOL)
    assert text.splitlines()[1] == (
        "The interpreter cannot keep the change: “Da habe ich einen Arzttermin.” Nobody else in the pool "
        "can take it at the new time. The coordination office is told and will get back to you."
    )
    ((kind, _, office),) = outbox(world, "request.unfilled_coordinator")
    assert (kind, office["audit_id"], office["change_declined"]) == ("coordinators", params["audit_id"], True)
    assert (
        "Amira cannot keep the school's change of this booking: “Da habe ich einen Arzttermin.”"
        in text_for(world, "request.unfilled_coordinator", Role.COORDINATOR)
    )
    assert money(world) == (0, 0)


def test_a_declined_change_another_interpreter_would_cost_too_much_for_waits_for_the_office(
    uow: MakeUow,
) -> None:
    # Amira: 60 min + 7.80 = 3180 (held while she decides); Samir would cost 2400 + 15.60 = 3960.
    world = _world(uow)
    request_id = booked(world)
    with world.make_uow() as u:  # lowered once booked: 320 left
        ledger.set_total(
            u.session, district_id=world.district_id, year=2026, total_cents=3500, actor=ACTOR, now=NOW
        )
        u.commit()
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.IN_PERSON))
    before = to_school(world)
    decline(world, change_id)

    assert request_of(world, request_id).state == "awaiting_approval"
    assert to_school(world)[len(before) :] == ["request.change_declined"]
    text = text_for(world, "request.change_declined", Role.SCHOOL)
    assert text.endswith(
        "Another interpreter would cost more than the budget has left; the coordination office decides."
    )
    assert "We are looking" not in text
    ((_, _, office),) = outbox(world, "request.handed_back")
    assert (office["outcome"], office["change_declined"]) == ("awaiting_approval", True)
    with world.make_uow() as u:
        assert said(u.session, office["audit_id"]) == "Da habe ich einen Arzttermin."
    assert text_for(world, "request.handed_back", Role.COORDINATOR).endswith(
        "Another interpreter would cost more than the budget has left, so it waits for your decision."
        "\n\n1. Approve\n2. Reject"  # the decision's buttons go with it: it is the coordinators' one message
    )
    assert money(world) == (0, 0)


def test_a_declined_change_others_are_asked_for_tells_the_school_and_the_coordinators(uow: MakeUow) -> None:
    world = _world(uow)
    request_id = booked(world)
    decline(world, ask(world, request_id, LATER))
    assert request_of(world, request_id).state == "offered"
    assert text_for(world, "request.change_declined", Role.SCHOOL).splitlines()[1] == (
        "The interpreter cannot keep the change: “Da habe ich einen Arzttermin.” "
        "We are looking for another interpreter for the new time."
    )
    assert text_for(world, "request.handed_back", Role.COORDINATOR).splitlines()[1] == (
        "Amira cannot keep the school's change of this booking: “Da habe ich einen Arzttermin.”. "
        "It is offered to other interpreters at the new time."
    )


def test_a_late_change_declined_names_the_fee_and_what_became_of_the_new_request(uow: MakeUow) -> None:
    world = _world(uow, samir=False)
    request_id = booked(world, mode=Mode.PHONE)
    now = SOON - 5 * HOUR
    change_id = ask(world, request_id, ChangeDraft(SOON + HOUR, 60, Mode.PHONE), now)
    before = to_school(world)
    decline(world, change_id, now=now)
    # One message: the fee for the old booking, and that nobody else can take the new request.
    assert to_school(world)[len(before) :] == ["request.change_declined"]
    assert request_of(world, request_id + 1).state == "unfilled"
    assert text_for(world, "request.change_declined", Role.SCHOOL).endswith(
        "As a late change, it counts as a late cancellation: €12.00 is charged to the budget. The "
        f"changed session goes to the pool as request #{request_id + 1}. Nobody else in the pool can take "
        "it at the new time. The coordination office is told and will get back to you."
    )
    assert money(world) == (0, 1200)


def test_a_decline_needs_a_reason_of_3_to_300_characters(uow: MakeUow) -> None:
    world = _world(uow)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    for reason in ("  x ", "y" * 301):
        with pytest.raises(Exception, match="3 to 300 characters"):
            decline(world, change_id, reason=reason)
    assert request_of(world, request_id).state == "booked"


def test_a_hand_back_while_a_change_waits_closes_it_and_tells_the_school_in_one_message(
    uow: MakeUow,
) -> None:
    world = _world(uow)
    request_id = booked(world)
    change_id = ask(world, request_id, LATER)
    before = to_school(world)
    with world.make_uow() as u:
        give_back(
            u.session,
            request_id=request_id,
            interpreter_id=world.interpreters["Amira"],
            reason="Ich bin krank.",
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
    assert to_school(world)[len(before) :] == ["request.interpreter_cancelled"]
    assert text_for(world, "request.interpreter_cancelled", Role.SCHOOL).splitlines()[1] == (
        "The interpreter had to hand this job back before answering your change, so the change was not "
        "applied. We are looking for someone else for the booking as it was."
    )
    with world.make_uow() as u:
        change = u.session.get(BookingChange, change_id)
        assert change is not None
        assert change.state == "lapsed"
    request = request_of(world, request_id)
    assert (request.starts_at, request.duration_minutes, request.state) == (SOON, 60, "offered")
    assert money(world) == (2400 + 1560, 0)  # Samir at the old time; the change's hold is gone
    with pytest.raises(IllegalTransition):
        confirm(world, change_id)


def test_a_hand_back_nobody_else_can_take_while_a_change_waits_says_so_too(uow: MakeUow) -> None:
    world = _world(uow, samir=False)
    request_id = booked(world)
    ask(world, request_id, LATER)
    with world.make_uow() as u:
        give_back(
            u.session,
            request_id=request_id,
            interpreter_id=world.interpreters["Amira"],
            reason="Ich bin krank.",
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
    ((_, _, params),) = outbox(world, "request.unfilled")
    assert (params["handed_back"], params["change_dropped"]) == (True, True)
    assert "so the change was not applied. Nobody else in the pool" in text_for(
        world, "request.unfilled", Role.SCHOOL
    )
    assert money(world) == (0, 0)


def test_the_schools_calendar_after_a_change_still_names_the_interpreter(uow: MakeUow) -> None:
    world = _world(uow)
    with world.make_uow() as u:
        amira = u.session.get(Interpreter, world.interpreters["Amira"])
        assert amira is not None
        amira.phone, amira.email = "+49 170 1", "amira@example.org"
        u.session.add(amira)
        u.commit()
    request_id = booked(world)
    confirm(world, ask(world, request_id, LATER))
    (_, _, params) = outbox(world, "request.changed")[0]
    with world.make_uow() as u:
        reply = render(u.session, EN, "request.changed", params, Role.SCHOOL)
    assert reply.attachment is not None
    ics = reply.attachment.data.decode().replace("\r\n ", "")
    assert "SEQUENCE:2" in ics
    assert "Interpreter: Amira\\nContact: +49 170 1\\, amira@example.org" in ics


# --- in chat ---------------------------------------------------------------------------------------


def _change_in_chat(engine: Engine) -> tuple[Conversation, int]:
    talk = _booked_in_chat(engine)
    _say(talk, "school", choice="rq:cg:1")
    _say(talk, "school", choice="duration")
    _say(talk, "school", "90")
    _say(talk, "school", choice="send")
    with UnitOfWork(engine) as u:
        (change,) = u.session.exec(select(BookingChange)).all()
    assert change.id is not None
    return talk, change.id


def test_declining_a_change_in_chat_asks_to_confirm_and_for_the_reason_the_school_reads(
    engine: Engine,
) -> None:
    talk, change_id = _change_in_chat(engine)
    asked = _say(talk, "amira", choice=f"cg:no:{change_id}")
    assert asked.startswith("Die Änderung von #1")
    assert _say(talk, "amira", choice="no") == Translator("de").gettext(
        "Nothing was changed. The change still waits for your answer."
    )
    _say(talk, "amira", choice=f"cg:no:{change_id}")
    _say(talk, "amira", choice="yes")
    short = _say(talk, "amira", "ab")
    assert short.startswith(Translator("de").gettext("Please give the reason in 3 to 300 characters."))
    with UnitOfWork(engine) as u:
        change = u.session.get(BookingChange, change_id)
        assert change is not None
        assert change.state == "pending"
    _say(talk, "amira", "Um 11 Uhr habe ich einen anderen Einsatz.")
    with UnitOfWork(engine) as u:
        change = u.session.get(BookingChange, change_id)
        assert change is not None
        assert change.state == "declined"
        (message,) = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "request.change_declined")
        ).all()
        audit_id = json.loads(message.params)["audit_id"]
        assert said(u.session, audit_id) == "Um 11 Uhr habe ich einen anderen Einsatz."
        assert not any(u.session.exec(select(DialogState.step)).all())  # both dialogs are over


def test_a_stale_change_button_and_a_booking_cancelled_mid_dialog_end_with_a_sentence(engine: Engine) -> None:
    talk = _booked_in_chat(engine)
    started = _say(talk, "school", choice="rq:cg:1")
    assert started.startswith("Was soll sich ändern an #1")
    _say(talk, "school", choice="duration")
    with UnitOfWork(engine) as u:
        cancel(u.session, district_id=1, request_id=1, actor=ACTOR, now=NOW)
        u.commit()
    gone = Translator("de").render(
        "Request #{request_id} cannot be changed: only a booked session that has not begun can.",
        {"request_id": 1},
    )
    ended = _say(talk, "school", "90")
    assert ended.startswith(gone)
    assert ended.count("\n") == 0  # the dialog ended: no step asked again
    assert _say(talk, "school", choice="rq:cg:1").startswith(gone)  # the old button
    with UnitOfWork(engine) as u:
        assert u.session.exec(select(BookingChange)).all() == []
        assert u.session.exec(select(DueTask).where(DueTask.kind == "change_expiry")).all() == []
