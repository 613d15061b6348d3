"""Many Accepts on one request: the losers' path (an early "taken" read, the taken notice) decides
exactly as the locked path did, on SQLite and PostgreSQL.

The Accept here is what the bot's handler does (bot/conversation/interpreter.accept): one transaction,
`accept_offer`, and for a loser `taken_notice_pending` (True: the notice on its way answers them).
"""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.models import (
    Budget,
    ChatIdentity,
    Delivery,
    Interpreter,
    LedgerEntry,
    Member,
    Offer,
    OutboxMessage,
    Request,
)
from db.uow import UnitOfWork
from services import deliveries, offers
from services.errors import AlreadyTaken, DomainError
from services.notices import Notice
from services.offers import accept_offer, decline_offer, give_back, taken_notice_pending
from services.policy import set_rule
from services.requests import cancel
from services.vocabulary import LedgerKind, OfferState, Recipient, RequestState, Role
from tests.builders import ACTOR, NOW, World, build_world, submit

WAVE = 20  # the policy's largest wave: 20 interpreters press Accept on one request at once
# A loser after the winner's commit: the early read, which reads whether its taken notice is on its way
# too (it was two reads; the locked path read the interpreter, offer and request through the ORM before
# its UPDATE found the job gone).
LOSER_STATEMENTS = 1


def _world(engine: Engine, interpreters: int) -> tuple[World, list[int]]:
    world = build_world(lambda: UnitOfWork(engine))
    with UnitOfWork(engine) as u:
        set_rule(u.session, world.district_id, "offer_wave_size", str(WAVE), actor=ACTOR, now=NOW)
        u.commit()
    return world, [world.interpreter(f"I{n}", km_north=n + 1) for n in range(interpreters)]


def _open_offers(engine: Engine, request_id: int) -> dict[int, int]:
    """interpreter id -> id of their open offer on the request."""
    with UnitOfWork(engine) as u:
        found = u.session.exec(
            select(Offer).where(Offer.request_id == request_id, Offer.state == OfferState.OPEN.value)
        )
        return {o.interpreter_id: o.id or 0 for o in found}


def _press(
    engine: Engine, offer_id: int, interpreter_id: int, barrier: threading.Barrier | None = None
) -> str:
    """The handler's Accept; "booked", "notice" (the taken notice answers) or the refusal's message."""
    if barrier is not None:
        barrier.wait()
    with UnitOfWork(engine) as u:
        try:
            accept_offer(u.session, offer_id=offer_id, interpreter_id=interpreter_id, actor=ACTOR, now=NOW)
        except AlreadyTaken as taken:
            if taken_notice_pending(u.session, offer_id=offer_id, interpreter_id=interpreter_id):
                return "notice"
            return taken.message
        except DomainError as refused:
            return refused.message
        u.commit()
        return "booked"


def _race(engine: Engine, pressed: dict[int, int]) -> dict[int, str]:
    """Everyone in `pressed` (interpreter id -> offer id) presses Accept at the same moment."""
    barrier = threading.Barrier(len(pressed))
    with ThreadPoolExecutor(len(pressed)) as pool:
        answers = pool.map(lambda i: _press(engine, pressed[i], i, barrier), list(pressed))
        return dict(zip(pressed, answers, strict=True))


@dataclass
class Outcome:
    booked_by: int | None
    accepted_offers: int
    reserved_cents: int  # reservations minus releases of the request
    budget_reserved_cents: int
    taken_notices: dict[int, int]  # offer id -> taken notices written for it


def _outcome(engine: Engine, request_id: int) -> Outcome:
    with UnitOfWork(engine) as u:
        s = u.session
        request = s.get(Request, request_id)
        assert request is not None
        assert request.state == RequestState.BOOKED
        accepted = s.exec(
            select(func.count())
            .select_from(Offer)
            .where(Offer.request_id == request_id, Offer.state == OfferState.ACCEPTED.value)
        ).one()
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.request_id == request_id)).all()
        sign = {LedgerKind.RESERVE.value: 1, LedgerKind.RELEASE.value: -1}
        budget = s.exec(select(Budget).where(Budget.district_id == request.district_id)).one()
        notices: dict[int, int] = {}
        for message in s.exec(
            select(OutboxMessage).where(OutboxMessage.template == Notice.OFFER_TAKEN.value)
        ):
            offer_id = json.loads(message.params)["offer_id"]
            notices[offer_id] = notices.get(offer_id, 0) + 1
        return Outcome(
            booked_by=request.interpreter_id,
            accepted_offers=accepted,
            reserved_cents=sum(sign.get(e.kind, 0) * e.amount_cents for e in entries),
            budget_reserved_cents=budget.reserved_cents,
            taken_notices=notices,
        )


def _pay(engine: Engine, offer_id: int) -> int:
    with UnitOfWork(engine) as u:
        offer = u.session.get(Offer, offer_id)
        assert offer is not None
        return offer.pay_cents


def _check_one_booking(
    engine: Engine, request_id: int, pressed: dict[int, int], answers: dict[int, str]
) -> int:
    """Exactly one booking, one reservation, and each loser told once, by the taken notice; the winner."""
    winners = [i for i, answer in answers.items() if answer == "booked"]
    assert len(winners) == 1, answers
    winner = winners[0]
    assert {i: a for i, a in answers.items() if i != winner} == {i: "notice" for i in pressed if i != winner}
    outcome = _outcome(engine, request_id)
    pay = _pay(engine, pressed[winner])
    assert (outcome.booked_by, outcome.accepted_offers, outcome.reserved_cents) == (winner, 1, pay)
    assert outcome.budget_reserved_cents == pay
    losers = {pressed[i] for i in pressed if i != winner}
    assert {o: n for o, n in outcome.taken_notices.items() if o in losers} == dict.fromkeys(losers, 1)
    return winner


def test_twenty_accepts_at_once_book_once_and_every_loser_is_told_once(engine: Engine) -> None:
    world, _ = _world(engine, WAVE)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    assert len(pressed) == WAVE
    answers = _race(engine, pressed)
    _check_one_booking(engine, request_id, pressed, answers)


def test_after_a_hand_back_the_second_wave_races_again_and_the_early_read_refuses_none_of_it(
    engine: Engine,
) -> None:
    world, _ = _world(engine, 8)
    request_id = submit(world)
    first = _open_offers(engine, request_id)
    winner = _check_one_booking(engine, request_id, first, _race(engine, first))
    with UnitOfWork(engine) as u:
        give_back(u.session, request_id=request_id, interpreter_id=winner, reason="ill", actor=ACTOR, now=NOW)
        u.commit()
    # Those told "taken" are asked again, with new offers; the first wave's taken notices are still
    # waiting (nothing was sent), and must not count as the answer to the new offers.
    second = _open_offers(engine, request_id)
    assert set(second) == set(first) - {winner}
    assert not set(second.values()) & set(first.values())
    loser = next(iter(second))
    assert _press(engine, first[loser], loser) == "This offer has been withdrawn."
    answers = _race(engine, second)
    again = _check_one_booking(engine, request_id, second, answers)
    assert again != winner


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run meanwhile (BEGIN apart: SQLite's BEGIN IMMEDIATE is one on SQLite only)."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_loser_after_the_winner_costs_one_read_and_writes_nothing(engine: Engine) -> None:
    world, ids = _world(engine, 3)
    request_id = submit(world)
    pressed = _open_offers(engine, request_id)
    assert _press(engine, pressed[ids[0]], ids[0]) == "booked"
    with _statements(engine) as seen:
        assert _press(engine, pressed[ids[1]], ids[1]) == "notice"
    assert len(seen) == LOSER_STATEMENTS, seen
    assert all(s.lstrip().upper().startswith(("SELECT", "(SELECT")) for s in seen), seen


def _identity(engine: Engine, interpreter_id: int, world: World) -> None:
    """A chat for the interpreter, so their notices become deliveries."""
    with UnitOfWork(engine) as u:
        member = Member(
            district_id=world.district_id,
            role=Role.INTERPRETER,
            interpreter_id=interpreter_id,
            created_at=NOW,
        )
        u.session.add(member)
        u.session.flush()
        assert member.id is not None
        u.session.add(
            ChatIdentity(
                member_id=member.id,
                platform="terminal",
                user_id=f"u{interpreter_id}",
                chat_id=f"c{interpreter_id}",
                created_at=NOW,
                last_seen_at=NOW,
            )
        )
        u.commit()


def _old_taken_notice_pending(session: Session, *, offer_id: int, interpreter_id: int) -> bool:
    """taken_notice_pending as it was before the one-read version (each notice and its deliveries
    through the ORM): the reference the new one must agree with."""
    offer = session.get(Offer, offer_id)
    if offer is None or offer.interpreter_id != interpreter_id:
        return False
    query = select(OutboxMessage).where(
        OutboxMessage.template == Notice.OFFER_TAKEN.value,
        OutboxMessage.recipient_type == Recipient.INTERPRETER.value,
        OutboxMessage.recipient_id == interpreter_id,
        col(OutboxMessage.created_at) >= offer.created_at,
    )
    for message in session.exec(query):
        if json.loads(message.params).get("offer_id") != offer_id:
            continue
        if message.expanded_at is None:
            return True
        waiting = select(Delivery.id).where(
            Delivery.outbox_id == message.id,
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
        )
        return session.exec(waiting).first() is not None
    return False


def test_the_taken_notice_is_pending_exactly_while_it_is_on_its_way(engine: Engine) -> None:
    world, ids = _world(engine, 4)
    a, b, c, d = ids
    for interpreter_id in (b, c):
        _identity(engine, interpreter_id, world)
    first = submit(world)
    second = submit(world, starts_at=NOW + timedelta(days=9))
    one, two = _open_offers(engine, first), _open_offers(engine, second)

    def pending() -> dict[tuple[int, int], tuple[bool, bool]]:
        """(offer, presser) -> (new answer, old answer), for the offers pressed below and a stranger."""
        pairs = [(one[b], b), (one[c], c), (one[d], d), (two[b], b), (two[c], c), (one[b], c), (two[a], a)]
        with UnitOfWork(engine) as u:
            return {
                (o, i): (
                    taken_notice_pending(u.session, offer_id=o, interpreter_id=i),
                    _old_taken_notice_pending(u.session, offer_id=o, interpreter_id=i),
                )
                for o, i in pairs
            }

    def agreed(expected: dict[tuple[int, int], bool]) -> None:
        answers = pending()
        assert {k: new for k, (new, _) in answers.items()} == {k: expected.get(k, False) for k in answers}
        assert all(new == old for new, old in answers.values()), answers

    agreed({})  # nobody took anything yet
    assert _press(engine, one[a], a) == "booked"
    agreed({(one[b], b): True, (one[c], c): True, (one[d], d): True})  # written, not yet expanded
    with UnitOfWork(engine) as u:
        deliveries.expand(u.session, now=NOW)  # b and c get a delivery each; d has no chat
        u.commit()
    agreed({(one[b], b): True, (one[c], c): True})
    with UnitOfWork(engine) as u:
        by_identity = {
            identity: delivery
            for delivery, identity in u.session.exec(
                select(Delivery.id, ChatIdentity.user_id)
                .join(ChatIdentity, col(ChatIdentity.id) == col(Delivery.identity_id))
                .join(OutboxMessage, col(OutboxMessage.id) == col(Delivery.outbox_id))
                .where(OutboxMessage.template == Notice.OFFER_TAKEN.value)
            )
        }
        deliveries.mark_sent(u.session, by_identity[f"u{b}"] or 0, message_id="m1", now=NOW)
        deliveries.mark_failed(u.session, by_identity[f"u{c}"] or 0, error="blocked", now=NOW)
        u.commit()
    agreed({})  # gone out, or given up: the tap's own answer tells them
    assert _press(engine, two[a], a) == "booked"  # the second request's notices wait again
    agreed({(two[b], b): True, (two[c], c): True})


@pytest.mark.parametrize(
    "case",
    [
        "open",
        "taken",
        "taken_inactive",
        "not_theirs",
        "own",
        "expired",
        "declined",
        "withdrawn",
        "handed_back",
    ],
)
def test_the_early_read_gives_every_answer_the_locked_path_gives(
    engine: Engine, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, (a, b, c) = _world(engine, 3)
    request_id = submit(world)
    offers_now = _open_offers(engine, request_id)
    presser, offer_id, now = b, offers_now[b], NOW
    if case != "open":
        assert _press(engine, offers_now[a], a) == "booked"
    with UnitOfWork(engine) as u:
        s = u.session
        if case == "taken_inactive":
            interpreter = s.get(Interpreter, b)
            assert interpreter is not None
            interpreter.active = False
            s.add(interpreter)
        elif case == "not_theirs":
            presser = c
        elif case == "own":
            presser, offer_id = a, offers_now[a]
        elif case in ("expired", "declined", "withdrawn"):
            other = submit(world, starts_at=NOW + timedelta(days=9))
            offer_id = _open_offers(engine, other)[b]
            if case == "expired":
                now = NOW + timedelta(days=30)
            elif case == "declined":
                decline_offer(s, offer_id=offer_id, interpreter_id=b, actor=ACTOR, now=NOW)
            else:
                cancel(s, district_id=world.district_id, request_id=other, actor=ACTOR, now=NOW)
        elif case == "handed_back":
            give_back(s, request_id=request_id, interpreter_id=a, reason="ill", actor=ACTOR, now=NOW)
        u.commit()

    def answer() -> str:
        with UnitOfWork(engine) as u:  # never committed: both answers are to the same rows
            try:
                accept_offer(u.session, offer_id=offer_id, interpreter_id=presser, actor=ACTOR, now=now)
            except DomainError as refused:
                return f"{type(refused).__name__}: {refused.message}"
            return "booked"

    early = answer()
    with monkeypatch.context() as locked_path_only:
        locked_path_only.setattr(offers, "_taken_by_another", lambda *_: False)
        assert early == answer()
    expected = {
        "open": "booked",
        "taken": "AlreadyTaken: Someone else has already taken this job.",
        "taken_inactive": "OfferClosed: You are no longer in the pool, so you cannot accept jobs. "
        "Please contact the coordination office.",
        "not_theirs": "NotFound: This offer does not exist.",
        "own": "OfferClosed: You have already accepted this job.",
        "expired": "OfferClosed: This offer has expired.",
        "declined": "OfferClosed: You have already declined this job.",
        "withdrawn": "OfferClosed: This offer has been withdrawn.",
        "handed_back": "OfferClosed: This offer has been withdrawn.",
    }
    assert early == expected[case]
    if case == "handed_back":  # and the new offer of the same interpreter books
        presser, offer_id = b, _open_offers(engine, request_id)[b]
        assert answer() == "booked"
