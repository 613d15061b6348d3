"""The winner's Accept: what it writes, in how many statements, and that its locks still serialise it
against a deactivation, on SQLite and PostgreSQL.

On PostgreSQL every Accept still racing waits behind the winner's row lock on the request until it
commits, so the winner reads first and then writes in as few statements as it can
(services/offers.accept_offer).
"""

import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from db.models import AuditEvent, Delivery, DueTask, Interpreter, Offer, OutboxMessage, Request
from db.uow import UnitOfWork
from services import deliveries
from services.access import deactivate_interpreter
from services.errors import AlreadyTaken, DomainError
from services.ledger import open_reservation
from services.notices import Notice
from services.offers import accept_offer, decline_offer, give_back, taken_notice_pending
from services.vocabulary import OfferState, RequestState
from tests.builders import ACTOR, NOW, submit
from tests.test_accept_race_paths import _identity, _open_offers, _press, _statements, _world

# The booking, read first: the early "taken" read, the interpreter locked with their offer and its
# request, the policy; then written: the request booked (RETURNING the row), all its offers answered,
# the audit event, every notice, the budget locked and the request's open reservation read, the
# reservation set to the winner's pay (the budget, its ledger entry, its day total, the request's open
# reservation), the reminders and closeout prompt armed.
WINNER = [
    ("SELECT", "offer"),  # with whether a taken notice is on its way (a loser's only statement)
    ("SELECT", "interpreter"),
    ("SELECT", "policy_setting"),
    ("UPDATE", "request"),
    ("UPDATE", "offer"),
    ("INSERT", "audit_event"),
    ("INSERT", "outbox_message"),
    ("SELECT", "budget"),
    ("SELECT", "open_reservation"),
    ("UPDATE", "budget"),
    ("INSERT", "ledger_entry"),
    ("INSERT", "budget_day"),
    ("INSERT", "open_reservation"),
    ("INSERT", "due_task"),
]


def _verb_and_table(statement: str) -> tuple[str, str]:
    """What a statement does, and to which table (of a SELECT: the first after its subqueries are cut)."""
    verb = statement.split()[0].upper()
    while re.search(r"\([^()]*\)", statement):
        statement = re.sub(r"\([^()]*\)", "", statement)
    where = {"SELECT": r"\bFROM\s+(\w+)", "UPDATE": r"^UPDATE\s+(\w+)", "INSERT": r"^INSERT INTO\s+(\w+)"}
    found = re.search(where[verb], statement.strip(), re.IGNORECASE)
    assert found is not None, statement
    return verb, found.group(1)


def test_the_winner_books_in_fourteen_statements(engine: Engine) -> None:
    world, ids = _world(engine, 3)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    with _statements(engine) as seen:
        assert _press(engine, pressed[ids[0]], ids[0]) == "booked"
    assert [_verb_and_table(s) for s in seen] == WINNER
    if engine.dialect.name == "postgresql":  # the deactivation's lock: only the interpreter's row
        assert seen[1].rstrip().endswith("FOR UPDATE OF interpreter"), seen[1]
        assert seen[7].rstrip().endswith("FOR UPDATE"), seen[7]


def _booked_notices(engine: Engine, request_id: int) -> list[tuple[str, int, int | None]]:
    """The confirmation and booked notices of the request: (template, recipient id, calendar SEQUENCE)."""
    with UnitOfWork(engine) as u:
        rows = u.session.exec(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.template).in_([Notice.OFFER_CONFIRMED.value, Notice.REQUEST_BOOKED.value])
            )
            .order_by(col(OutboxMessage.id))
        ).all()
    return [
        (m.template, m.recipient_id, json.loads(m.params)["calendar_sequence"])
        for m in rows
        if json.loads(m.params)["request_id"] == request_id
    ]


def test_booked_again_after_a_give_back_the_row_carries_the_next_sequence_and_the_new_pay(
    engine: Engine,
) -> None:
    world, (a, b, c) = _world(engine, 3)
    request_id = submit(world)
    first = _open_offers(engine, request_id)
    with UnitOfWork(engine) as u:
        booked = accept_offer(u.session, offer_id=first[a], interpreter_id=a, actor=ACTOR, now=NOW)
        u.commit()
        assert (booked.state, booked.interpreter_id, booked.calendar_sequence) == (RequestState.BOOKED, a, 1)
    with UnitOfWork(engine) as u:
        give_back(u.session, request_id=request_id, interpreter_id=a, reason="ill", actor=ACTOR, now=NOW)
        u.commit()
    second = _open_offers(engine, request_id)
    assert set(second) == {b, c}
    with UnitOfWork(engine) as u:
        decline_offer(u.session, offer_id=second[b], interpreter_id=b, actor=ACTOR, now=NOW)
        u.commit()
    later = NOW + timedelta(minutes=5)
    with UnitOfWork(engine) as u:
        s = u.session
        stale = s.get(Request, request_id)  # loaded before the Accept: the Accept refreshes this object
        assert stale is not None
        assert stale.calendar_sequence == 2  # 1 booked, 2 given back
        booked = accept_offer(s, offer_id=second[c], interpreter_id=c, actor=ACTOR, now=later)
        assert booked is stale
        pay_c = s.get(Offer, second[c])
        assert pay_c is not None
        assert (pay_c.state, pay_c.responded_at) == (OfferState.ACCEPTED, later)
        u.commit()
    with UnitOfWork(engine) as u:
        s = u.session
        request = s.get(Request, request_id)
        assert request is not None
        offer_c = s.get(Offer, second[c])
        assert offer_c is not None
        assert (request.state, request.interpreter_id, request.calendar_sequence) == (
            RequestState.BOOKED,
            c,
            3,
        )
        assert (request.booked_at, request.updated_at) == (later, later)
        assert request.estimate_cents == offer_c.pay_cents
        assert open_reservation(s, request_id) == offer_c.pay_cents
        offers = s.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all()
        assert [(o.interpreter_id, o.state) for o in offers] == [
            (a, OfferState.CANCELLED),  # given back
            (b, OfferState.WITHDRAWN),
            (c, OfferState.WITHDRAWN),
            (b, OfferState.DECLINED),  # not touched by the second booking
            (c, OfferState.ACCEPTED),
        ]
        assert (
            s.exec(
                select(func.count())
                .select_from(Offer)
                .where(Offer.request_id == request_id, Offer.state == "accepted")
            ).one()
            == 1
        )
        audit = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "request.booked", AuditEvent.entity_id == request_id
            )
        ).all()
        assert [json.loads(e.detail or "{}")["offer_id"] for e in audit] == [first[a], second[c]]
        closeouts = s.exec(
            select(DueTask.variant).where(DueTask.subject_id == request_id, DueTask.kind == "closeout_prompt")
        ).all()
        assert sorted(closeouts) == [f"i{a}", f"i{c}"]
    assert _booked_notices(engine, request_id) == [
        (Notice.OFFER_CONFIRMED.value, a, 1),
        (Notice.REQUEST_BOOKED.value, world.school_id, 1),
        (Notice.OFFER_CONFIRMED.value, c, 3),
        (Notice.REQUEST_BOOKED.value, world.school_id, 3),
    ]


def test_the_winner_queues_its_notices_in_order_and_tells_each_other_offer_once(engine: Engine) -> None:
    world, ids = _world(engine, 4)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    winner = ids[2]
    assert _press(engine, pressed[winner], winner) == "booked"
    with UnitOfWork(engine) as u:
        last_ids = u.session.exec(
            select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(2 + len(ids) - 1)
        ).all()
    written = [(m.template, m.recipient_id, json.loads(m.params).get("offer_id")) for m in reversed(last_ids)]
    others = sorted((pressed[i], i) for i in ids if i != winner)
    assert written == [
        (Notice.OFFER_CONFIRMED.value, winner, pressed[winner]),
        (Notice.REQUEST_BOOKED.value, world.school_id, None),
        *[(Notice.OFFER_TAKEN.value, i, o) for o, i in others],
    ]


def test_a_deactivation_holding_the_interpreter_makes_their_accept_wait_and_then_refuses_it(
    engine: Engine,
) -> None:
    world, ids = _world(engine, 2)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    target = ids[0]
    answers: list[str] = []
    with UnitOfWork(engine) as u:
        deactivate_interpreter(
            u.session, district_id=world.district_id, interpreter_id=target, actor=ACTOR, now=NOW
        )
        pressing = threading.Thread(target=lambda: answers.append(_press(engine, pressed[target], target)))
        pressing.start()
        pressing.join(0.5)
        assert pressing.is_alive(), answers  # waits for the interpreter's row (SQLite: the write lock)
        u.commit()
    pressing.join(30)
    assert answers == [
        "You are no longer in the pool, so you cannot accept jobs. Please contact the coordination office."
    ]
    with UnitOfWork(engine) as u:
        request = u.session.get(Request, request_id)
        interpreter = u.session.get(Interpreter, target)
        assert request is not None
        assert interpreter is not None
        assert (request.state, request.interpreter_id, interpreter.active) == (
            RequestState.OFFERED,
            None,
            False,
        )
    assert _press(engine, pressed[ids[1]], ids[1]) == "booked"


def test_an_accept_holding_the_lock_makes_the_deactivation_wait_and_see_the_booking(engine: Engine) -> None:
    world, ids = _world(engine, 2)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    target = ids[0]
    seen: list[str] = []

    def deactivate() -> None:
        with UnitOfWork(engine) as u:
            try:
                deactivate_interpreter(
                    u.session, district_id=world.district_id, interpreter_id=target, actor=ACTOR, now=NOW
                )
            except DomainError as refused:
                seen.append(type(refused).__name__)
                return
            seen.append("deactivated")

    with UnitOfWork(engine) as u:
        accept_offer(u.session, offer_id=pressed[target], interpreter_id=target, actor=ACTOR, now=NOW)
        deactivating = threading.Thread(target=deactivate)
        deactivating.start()
        deactivating.join(0.5)
        assert deactivating.is_alive(), seen
        u.commit()
    deactivating.join(30)
    assert seen == ["IllegalTransition"]  # the booking ahead is seen: it must be handed back first


def test_a_late_loser_learns_from_its_one_read_whether_the_taken_notice_still_tells_it(
    engine: Engine,
) -> None:
    world, (a, b, c, d) = _world(engine, 4)
    for interpreter_id in (b, c):
        _identity(engine, interpreter_id, world)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    assert _press(engine, pressed[a], a) == "booked"
    with UnitOfWork(engine) as u:
        deliveries.expand(u.session, now=NOW)  # b and c get a delivery each; d has no chat
        u.commit()
    with UnitOfWork(engine) as u:
        sent = u.session.exec(
            select(Delivery.id)
            .join(OutboxMessage, col(OutboxMessage.id) == col(Delivery.outbox_id))
            .where(OutboxMessage.template == Notice.OFFER_TAKEN.value, OutboxMessage.recipient_id == b)
        ).one()
        deliveries.mark_sent(u.session, sent or 0, message_id="m1", now=NOW)
        u.commit()
    taken = "Someone else has already taken this job."
    answers: dict[int, str] = {}
    for loser in (b, c, d):
        with _statements(engine) as seen:
            answers[loser] = _press(engine, pressed[loser], loser)
        assert len(seen) == 1, seen
        with UnitOfWork(engine) as u:  # the plain read, without the early one, agrees
            fresh = taken_notice_pending(u.session, offer_id=pressed[loser], interpreter_id=loser)
        assert fresh == (answers[loser] == "notice")
    # b's notice went out (the tap answers), c's waits to be sent (it answers), d's was never deliverable.
    assert answers == {b: taken, c: "notice", d: taken}


def test_the_early_answer_about_the_notice_ends_with_its_transaction(engine: Engine) -> None:
    world, (a, b) = _world(engine, 2)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    assert _press(engine, pressed[a], a) == "booked"
    with UnitOfWork(engine) as u:
        s = u.session
        with pytest.raises(AlreadyTaken):
            accept_offer(s, offer_id=pressed[b], interpreter_id=b, actor=ACTOR, now=NOW)
        u.rollback()  # the refusal's transaction ends without asking about the notice
        with UnitOfWork(engine) as other:
            deliveries.expand(other.session, now=NOW)  # b has no chat: nothing will carry the notice
            other.commit()
        assert not taken_notice_pending(s, offer_id=pressed[b], interpreter_id=b)
