"""Offers: a request put to the best few eligible interpreters; the first accept wins.

The win is decided by the database, not by Python: accepting is a conditional
`UPDATE request ... WHERE state = 'offered'`, and only the transaction whose update hit the row
books it (a unique index on accepted offers backs this up). The others are withdrawn and their
interpreters told. A decline, or an interpreter giving a booking back, tops the open offers up
again from the next candidates; with none left the request is `unfilled`, with the reason why
(see `fill_offers` for who is asked again).
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    bindparam,
    case,
    event,
    exists,
    literal,
    or_,
    update,
)
from sqlalchemy import cast as cast_as
from sqlalchemy import select as table_select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from db.models import BookingChange, Budget, Delivery, Interpreter, Offer, OutboxMessage, Request, UnmetDemand
from services import due, ledger
from services.audit import record
from services.errors import (
    AlreadyTaken,
    BudgetExceeded,
    IllegalTransition,
    NotFound,
    OfferClosed,
)
from services.matching import Candidate, candidates, other_modes, why_nobody
from services.notices import (
    Notice,
    NoticeParams,
    OfferConfirmed,
    OfferNew,
    OfferTaken,
    OfferWithdrawn,
    RequestAwaitingApproval,
    RequestBooked,
    RequestHandedBack,
    RequestInterpreterCancelled,
    RequestUnfilled,
    RequestUnfilledCoordinator,
    as_json,
)
from services.outbox import notify, notify_all, tell
from services.policy import Policy, load_policy
from services.reasons import clean_reason
from services.text import N_
from services.transition import move
from services.vocabulary import OfferState, Recipient, RequestState, UnmetReason


@dataclass(frozen=True)
class HandBack:
    """A booking given back: its audit event says who gave it back and why (the coordinators read it;
    the notices name the event, not the words).

    `change_declined`: the interpreter declined the school's change of the booking (the caller tells
    the school in its own message); `change_dropped`: a change still waiting was not applied.
    """

    audit_id: int
    change_declined: bool = False
    change_dropped: bool = False


def offers_of(session: Session, request_id: int) -> list[Offer]:
    return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))))


def offer_expiry(request: Request, policy: Policy, now: datetime) -> datetime:
    """The policy timeout, but never more than the policy's share of the time left before the start."""
    left = max(request.starts_at - now, timedelta(0))
    return now + min(policy.offer_timeout, left * policy.offer_timeout_share / 100)


def _budget_for(session: Session, request: Request) -> Budget | None:
    return ledger.find_budget(session, request.district_id, ledger.fiscal_year(request.starts_at), lock=True)


def release_reservation(session: Session, request: Request, *, actor: str, now: datetime) -> None:
    """Give back whatever is still reserved for the request."""
    assert request.id is not None
    if ledger.open_reservation(session, request.id):
        budget = _budget_for(session, request)
        assert budget is not None, "a reservation implies a budget"
        ledger.set_reservation(session, budget, request_id=request.id, amount_cents=0, actor=actor, now=now)


def await_approval(
    session: Session,
    request: Request,
    *,
    reason: str,
    needed_cents: int,
    actor: str,
    now: datetime,
    announce: bool = True,
) -> None:
    """Hold the request for a coordinator: the money it needs is not there.

    `announce=False`: a hand-back (or a declined change), whose own messages tell the school and the
    coordinators (one each, the coordinators' with who handed it back and why, and the buttons to
    decide), so nobody is told here.
    """
    assert request.id is not None
    release_reservation(session, request, actor=actor, now=now)
    request.estimate_cents = needed_cents
    move(session, request, RequestState.AWAITING_APPROVAL, actor=actor, now=now, reason=reason)
    recipients = [(Recipient.COORDINATORS, request.district_id), (Recipient.SCHOOL, request.school_id)]
    for recipient, rid in recipients if announce else []:
        notify(
            session,
            district_id=request.district_id,
            recipient=recipient,
            recipient_id=rid,
            notice=RequestAwaitingApproval(request_id=request.id, reason=reason, estimate_cents=needed_cents),
            now=now,
        )


def mark_unfilled(
    session: Session,
    request: Request,
    *,
    actor: str,
    now: datetime,
    reason: UnmetReason = UnmetReason.NOT_FILLED,
    handed_back: HandBack | None = None,
) -> None:
    """Nobody can or will take the request: record the unmet demand, tell the school and coordinators
    why (and in which other mode someone could take it)."""
    assert request.id is not None
    release_reservation(session, request, actor=actor, now=now)
    move(session, request, RequestState.UNFILLED, actor=actor, now=now, reason=reason.value)
    # The evaluation counts two kinds of unmet demand: a language nobody speaks, and all the rest.
    covered = reason is not UnmetReason.NOT_COVERED
    _record_unmet(session, request, UnmetReason.NOT_FILLED if covered else reason, now)
    in_calendar = request.calendar_sequence > 0  # booked before a give-back: the school's event goes
    if in_calendar:
        request.calendar_sequence += 1
    policy = load_policy(session, request.district_id)
    alternative = None
    if reason in (UnmetReason.NOT_IN_MODE, UnmetReason.NOT_FREE):
        # Not who said no to this request (declined it, gave it back): they would not in another mode.
        said_no = (OfferState.DECLINED, OfferState.CANCELLED)
        refused = [o.interpreter_id for o in offers_of(session, request.id) if o.state in said_no]
        alternative = next(iter(other_modes(session, request, policy, now, refused)), None)
    other_mode = alternative.value if alternative else None
    if handed_back is None or not handed_back.change_declined:
        tell(
            session,
            request,
            Recipient.SCHOOL,
            notice=RequestUnfilled(
                request_id=request.id,
                language=request.language,
                calendar_sequence=request.calendar_sequence if in_calendar else None,
                reason=reason.value,
                other_mode=other_mode,
                handed_back=handed_back is not None,
                change_dropped=handed_back.change_dropped if handed_back else None,
            ),
            now=now,
        )
    tell(
        session,
        request,
        Recipient.COORDINATORS,
        notice=RequestUnfilledCoordinator(
            request_id=request.id,
            language=request.language,
            mode=request.mode,
            reason=reason.value,
            other_mode=other_mode,
            audit_id=handed_back.audit_id if handed_back else None,
            change_declined=handed_back.change_declined if handed_back else None,
        ),
        now=now,
    )


def _record_unmet(session: Session, request: Request, reason: UnmetReason, now: datetime) -> None:
    assert request.id is not None
    exists = session.exec(
        select(UnmetDemand).where(UnmetDemand.request_id == request.id, UnmetDemand.reason == reason.value)
    ).first()
    if exists is None:
        session.add(
            UnmetDemand(
                district_id=request.district_id,
                request_id=request.id,
                language=request.language,
                mode=request.mode,
                reason=reason.value,
                created_at=now,
            )
        )


def record_not_covered(session: Session, request: Request, now: datetime) -> None:
    _record_unmet(session, request, UnmetReason.NOT_COVERED, now)


def fill_offers(
    session: Session,
    request: Request,
    *,
    actor: str,
    now: datetime,
    retry: bool = False,
    handed_back: HandBack | None = None,
) -> None:
    """Top the request's open offers up to the policy's wave size from the best candidates not to skip.

    Skipped: those with an open offer, those who declined it, the one who gave the booking back (and
    one who holds it), and those whose offer expired unanswered: asked once and silent, they are not
    pressed again by the automatic waves; a coordinator's retry (`retry`) asks them again. Those
    whose offer was withdrawn because someone else took the job are asked again after a hand-back.

    The reservation grows to cover the most expensive open offer; if the budget cannot carry that
    and no offer is open, the request waits for a coordinator. With no candidates and no open
    offer left, the request is unfilled, with the reason. `handed_back`: the booked interpreter
    gave it back, and the school and coordinators hear of it in the same message as the outcome.
    """
    assert request.id is not None
    policy = load_policy(session, request.district_id)
    existing = offers_of(session, request.id)
    open_offers = [o for o in existing if o.state == OfferState.OPEN]
    wanted = policy.offer_wave_size - len(open_offers)
    if wanted <= 0:
        return
    found = candidates(session, request, policy, exclude=_not_to_ask(existing, retry=retry), limit=wanted)
    if not found:
        if not open_offers:
            gave_back = [o.interpreter_id for o in existing if o.state == OfferState.CANCELLED]
            _nobody_left(session, request, policy, gave_back, actor=actor, now=now, handed_back=handed_back)
        return
    if _reserve(session, request, found, open_offers, actor=actor, now=now, handed_back=handed_back):
        first_rank = len(open_offers) + 1
        _make_offers(session, request, found, first_rank=first_rank, policy=policy, actor=actor, now=now)


_NOT_ASKED_AGAIN = frozenset(
    {OfferState.OPEN, OfferState.DECLINED, OfferState.ACCEPTED, OfferState.CANCELLED}
)


def _not_to_ask(existing: list[Offer], *, retry: bool) -> set[int]:
    """The interpreters `fill_offers` skips (see there)."""
    skipped = _NOT_ASKED_AGAIN if retry else _NOT_ASKED_AGAIN | {OfferState.EXPIRED}
    return {o.interpreter_id for o in existing if o.state in skipped}


def _nobody_left(
    session: Session,
    request: Request,
    policy: Policy,
    gave_back: list[int],
    *,
    actor: str,
    now: datetime,
    handed_back: HandBack | None,
) -> None:
    """No candidate and no open offer: the request is unfilled, with the reason why."""
    if request.state == RequestState.UNFILLED:
        raise NotFound(N_("Still nobody in the pool is available for this request."))
    # Someone else could take it, but was asked already: nobody accepted. Else nobody could.
    could = candidates(session, request, policy, exclude=gave_back, limit=1)
    reason = UnmetReason.NOT_FILLED if could else why_nobody(session, request)
    mark_unfilled(session, request, actor=actor, now=now, reason=reason, handed_back=handed_back)


def _reserve(
    session: Session,
    request: Request,
    found: list[Candidate],
    open_offers: list[Offer],
    *,
    actor: str,
    now: datetime,
    handed_back: HandBack | None,
) -> bool:
    """Reserve for the dearest open offer; False when the budget cannot carry it (see `fill_offers`)."""
    assert request.id is not None
    needed = max(c.pay_cents for c in found)
    reserve = max([needed] + [o.pay_cents for o in open_offers])
    budget = _budget_for(session, request)
    try:
        if budget is None:
            raise BudgetExceeded(
                N_("There is no budget for {year} yet."), year=ledger.fiscal_year(request.starts_at)
            )
        ledger.set_reservation(
            session, budget, request_id=request.id, amount_cents=reserve, actor=actor, now=now
        )
    except BudgetExceeded:
        if open_offers:
            return False
        if request.state == RequestState.AWAITING_APPROVAL:
            raise  # a coordinator's approval that still does not fit: they are told why
        reason = "no_budget" if budget is None else "over_budget"
        await_approval(
            session,
            request,
            reason=reason,
            needed_cents=needed,
            actor=actor,
            now=now,
            announce=handed_back is None,
        )
        return False
    request.estimate_cents = reserve
    return True


def _make_offers(
    session: Session,
    request: Request,
    found: list[Candidate],
    *,
    first_rank: int,
    policy: Policy,
    actor: str,
    now: datetime,
) -> None:
    """A new wave: an offer to each candidate, with one expiry, each interpreter told."""
    assert request.id is not None
    request.wave += 1
    if request.state != RequestState.OFFERED:
        move(session, request, RequestState.OFFERED, actor=actor, now=now)
    expires_at = offer_expiry(request, policy, now)
    due.arm_offer_expiry(session, request, expires_at, now)
    for rank, candidate in enumerate(found, start=first_rank):
        offer = Offer(
            request_id=request.id,
            interpreter_id=candidate.interpreter_id,
            wave=request.wave,
            rank=rank,
            state=OfferState.OPEN.value,
            pay_cents=candidate.pay_cents,
            distance_m=candidate.distance_m,
            created_at=now,
            expires_at=expires_at,
        )
        session.add(offer)
        session.flush()
        assert offer.id is not None
        tell(
            session,
            request,
            Recipient.INTERPRETER,
            interpreter_id=candidate.interpreter_id,
            notice=OfferNew(offer_id=offer.id, request_id=request.id, expires_at=expires_at),
            now=now,
        )


def _closed_offer(offer: Offer, request: Request) -> None:
    """Raise the right error for an offer that can no longer be answered."""
    if request.interpreter_id not in (None, offer.interpreter_id):
        raise AlreadyTaken(N_("Someone else has already taken this job."))
    if offer.state == OfferState.WITHDRAWN or request.state == RequestState.CANCELLED:
        raise OfferClosed(N_("This offer has been withdrawn."))
    if offer.state == OfferState.ACCEPTED:
        raise OfferClosed(N_("You have already accepted this job."))
    if offer.state == OfferState.DECLINED:
        raise OfferClosed(N_("You have already declined this job."))
    raise OfferClosed(N_("This offer has expired."))


# The losers' path: of 50 Accepts on one request 49 are refused, and on SQLite one thread runs them all
# one after another. Statements on the tables, built once (building a select and its cache key costs
# more than running it on SQLite), run on the session's connection: no ORM objects.
_OFFER = cast(Table, Offer.__table__)  # type: ignore[attr-defined]
_REQUEST = cast(Table, Request.__table__)  # type: ignore[attr-defined]
_INTERPRETER = cast(Table, Interpreter.__table__)  # type: ignore[attr-defined]
_OUTBOX = cast(Table, OutboxMessage.__table__)  # type: ignore[attr-defined]
_DELIVERY = cast(Table, Delivery.__table__)  # type: ignore[attr-defined]
_THEIR_OFFER = (_OFFER.c.id == bindparam("offer_id"), _OFFER.c.interpreter_id == bindparam("interpreter_id"))


def _stored_taken_params() -> ColumnElement[str]:
    """The params text the taken notice of the offer read is stored with, built in SQL from its ids.

    The text comes from the outbox's own serialisation (`notify_all`: `notices.as_json`, sorted keys) of
    a notice with two marker ids, cut at the markers: it follows that serialisation, and the import
    fails should the notice carry anything else."""
    marked = json.dumps(as_json(OfferTaken(offer_id=-7001, request_id=-7002)), sort_keys=True)
    head, rest = marked.split("-7001")
    middle, tail = rest.split("-7002")
    if json.loads(head + "1" + middle + "2" + tail) != {"offer_id": 1, "request_id": 2}:
        raise RuntimeError(f"the taken notice is stored as {marked!r}: more than its two ids")
    return (
        literal(head)
        + cast_as(_OFFER.c.id, String)
        + literal(middle)
        + cast_as(_OFFER.c.request_id, String)
        + literal(tail)
    )


# The offer's own taken notice (matched by its stored text), still on its way: not yet expanded, or with
# a delivery neither sent nor failed. One condition on the row of the offer read; the early refusal
# (`_STANDING`) and `taken_notice_pending`'s own read (`_TAKEN_WAITING`) both ask it.
_ITS_TAKEN_NOTICE = (
    _OUTBOX.c.template == Notice.OFFER_TAKEN.value,
    _OUTBOX.c.recipient_type == Recipient.INTERPRETER.value,
    _OUTBOX.c.recipient_id == _OFFER.c.interpreter_id,
    _OUTBOX.c.created_at >= _OFFER.c.created_at,
    _OUTBOX.c.params == _stored_taken_params(),
)
_ITS_TAKEN_WAITING = or_(
    exists().where(_OUTBOX.c.expanded_at.is_(None), *_ITS_TAKEN_NOTICE),
    exists()
    .select_from(_DELIVERY.join(_OUTBOX, _OUTBOX.c.id == _DELIVERY.c.outbox_id))
    .where(_DELIVERY.c.sent_at.is_(None), _DELIVERY.c.failed_at.is_(None), *_ITS_TAKEN_NOTICE),
)
_STANDING = (
    table_select(
        _INTERPRETER.c.active,
        _OFFER.c.state,
        _OFFER.c.expires_at,
        _REQUEST.c.state,
        _REQUEST.c.interpreter_id,
        _ITS_TAKEN_WAITING.label("taken_waiting"),
    )
    .join_from(_OFFER, _REQUEST, _REQUEST.c.id == _OFFER.c.request_id)
    .join(_INTERPRETER, _INTERPRETER.c.id == _OFFER.c.interpreter_id)
    .where(*_THEIR_OFFER)
)
# The plain read of `taken_notice_pending`: the same condition on the offer alone.
_TAKEN_WAITING = table_select(_ITS_TAKEN_WAITING).select_from(_OFFER).where(*_THEIR_OFFER)
_EARLY = "offers.taken_waiting"  # session.info: (offer id, interpreter id, taken notice waiting)


@event.listens_for(OrmSession, "after_transaction_end")
def _transaction_ended(session: OrmSession, transaction: SessionTransaction) -> None:
    """The early read's answer holds for its own transaction only."""
    if transaction.parent is None:
        session.info.pop(_EARLY, None)


def _taken_by_another(session: Session, offer_id: int, interpreter_id: int, now: datetime) -> bool:
    """Whether the Accept is refused as taken by someone else, read before any lock is taken.

    The same decision as the locked path below on the same rows (an inactive interpreter, or an offer
    not theirs, is left to it), from one plain read: on PostgreSQL the losers that come after the
    winner's commit do not queue for their interpreter's row lock and the request's; on SQLite the read
    is inside the transaction anyway. A committed booking by another only ends by a later transaction,
    so the refusal is what the Accept would have got at that moment; an offer that is open again is read
    as open and goes on to the locked check.

    The same read says whether the taken notice is still on its way (`taken_notice_pending`, which a
    refused Accept asks next, takes it from here): a loser costs one statement.
    """
    session.info.pop(_EARLY, None)
    row = (
        session.connection()
        .execute(_STANDING, {"offer_id": offer_id, "interpreter_id": interpreter_id})
        .first()
    )
    if row is None:
        return False
    active, offer_state, expires_at, request_state, booked, waiting = row
    closed = _closed(offer_state, expires_at, request_state, now)
    taken = bool(active) and closed and booked not in (None, interpreter_id)
    if taken:
        session.info[_EARLY] = (offer_id, interpreter_id, bool(waiting))
    return taken


def _closed(offer_state: str, expires_at: datetime, request_state: str, now: datetime) -> bool:
    """Whether an offer can no longer be answered: not open, expired, or its request no longer offered."""
    return offer_state != OfferState.OPEN or expires_at <= now or request_state != RequestState.OFFERED


def _answerable(session: Session, offer_id: int, interpreter_id: int, now: datetime) -> tuple[Offer, Request]:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.interpreter_id != interpreter_id:
        raise NotFound(N_("This offer does not exist."))
    request = session.get(Request, offer.request_id)
    assert request is not None
    if _closed(offer.state, offer.expires_at, request.state, now):
        _closed_offer(offer, request)
    return offer, request


# The winner's first read, built once: the interpreter's row locked, their offer and its request loaded.
_LOCKED_ANSWERABLE = (
    table_select(_INTERPRETER.c.active, Offer, Request)
    .select_from(_INTERPRETER)
    .outerjoin(
        Offer, (col(Offer.id) == bindparam("offer_id")) & (col(Offer.interpreter_id) == _INTERPRETER.c.id)
    )
    .outerjoin(Request, col(Request.id) == col(Offer.request_id))
    .where(_INTERPRETER.c.id == bindparam("interpreter_id"))
    .with_for_update(of=_INTERPRETER)
    .execution_options(populate_existing=True)
)


def _locked_answerable(
    session: Session, offer_id: int, interpreter_id: int, now: datetime
) -> tuple[Offer, Request]:
    """The interpreter's row locked (as a deactivation locks it, services/access.py), their offer and its
    request read: one statement. Raises the same errors, in the same order, as the lock, then
    `_answerable`: inactive, no such offer of theirs, closed."""
    found = session.execute(
        _LOCKED_ANSWERABLE, {"offer_id": offer_id, "interpreter_id": interpreter_id}
    ).first()
    active, offer, request = found if found is not None else (True, None, None)
    if not active:
        raise OfferClosed(
            N_(
                "You are no longer in the pool, so you cannot accept jobs. "
                "Please contact the coordination office."
            )
        )
    if offer is None or request is None:
        raise NotFound(N_("This offer does not exist."))
    if _closed(offer.state, offer.expires_at, request.state, now):
        _closed_offer(offer, request)
    return offer, request


def accept_offer(
    session: Session, *, offer_id: int, interpreter_id: int, actor: str, now: datetime
) -> Request:
    """Book the interpreter if nobody was faster; raises AlreadyTaken otherwise.

    The interpreter's row is locked first, as a deactivation locks it (services/access.py): an Accept
    either books before the deactivation looks at their bookings, or sees them inactive and is refused.
    A job already taken is refused before that lock (`_taken_by_another`).

    On PostgreSQL every Accept still racing waits for the request's row lock from the winner's UPDATE
    until the winner commits, so the winner reads what it needs (policy included) before that UPDATE
    and then writes with as few statements as it can: the UPDATE returns the row as booked (its calendar
    SEQUENCE raised, its estimate set), one UPDATE answers all the request's offers, one insert queues
    all the notices.
    """
    if _taken_by_another(session, offer_id, interpreter_id, now):
        raise AlreadyTaken(N_("Someone else has already taken this job."))
    offer, request = _locked_answerable(session, offer_id, interpreter_id, now)
    assert offer.id is not None
    policy = load_policy(session, request.district_id)
    booked = (
        session.connection()
        .execute(
            _BOOK,
            {
                "book_request": request.id,
                "book_interpreter": interpreter_id,
                "book_at": now,
                "book_pay": offer.pay_cents,
            },
        )
        .first()
    )
    if booked is None:
        raise AlreadyTaken(N_("Someone else has already taken this job."))
    # The loaded request as the row now is (it may have been booked and given back since it was read:
    # a higher calendar SEQUENCE), without a read or a write of its own.
    for column, value in zip(_REQUEST.c, booked, strict=True):
        set_committed_value(request, column.key, value)
    assert request.id is not None
    withdrawn = _answer_offers(session, request.id, offer, now)
    record(
        session,
        district_id=request.district_id,
        actor=actor,
        action="request.booked",
        entity="request",
        entity_id=request.id,
        now=now,
        source=RequestState.OFFERED.value,
        offer_id=offer.id,
    )
    # The interpreter's own confirmation first, then the school, then those it was taken from: the
    # outbox sends in this order.
    sequence = request.calendar_sequence
    told: list[tuple[Recipient, int, NoticeParams]] = [
        (
            Recipient.INTERPRETER,
            interpreter_id,
            OfferConfirmed(offer_id=offer.id, request_id=request.id, calendar_sequence=sequence),
        ),
        (
            Recipient.SCHOOL,
            request.school_id,
            RequestBooked(request_id=request.id, calendar_sequence=sequence, interpreter_id=interpreter_id),
        ),
    ]
    told += [
        (Recipient.INTERPRETER, other, OfferTaken(offer_id=other_offer, request_id=request.id))
        for other_offer, other in withdrawn
    ]
    notify_all(session, district_id=request.district_id, notices=told, now=now)
    budget = _budget_for(session, request)
    assert budget is not None
    ledger.set_reservation(
        session, budget, request_id=request.id, amount_cents=offer.pay_cents, actor=actor, now=now
    )
    due.arm_booking(session, request, now, policy)
    return request


def _answer_offers(session: Session, request_id: int, offer: Offer, now: datetime) -> list[tuple[int, int]]:
    """The accepted offer accepted and the request's other open offers withdrawn, in one UPDATE; the
    withdrawn ones' (offer id, interpreter id), in offer order."""
    answered = (
        session.connection()
        .execute(_ANSWER, {"answer_request": request_id, "answer_offer": offer.id, "answer_at": now})
        .all()
    )
    # The loaded offer as the row now is, without a write of its own.
    set_committed_value(offer, "state", OfferState.ACCEPTED.value)
    set_committed_value(offer, "responded_at", now)
    return sorted((int(o), int(i)) for o, i in answered if o != offer.id)


# The winner's two UPDATEs, built once (see the losers' statements above). The request booked if it is
# still offered, its calendar SEQUENCE raised (booked again after a give-back: the same calendar event),
# its estimate the accepted pay; RETURNING the whole row.
_BOOK = (
    update(_REQUEST)
    .where(_REQUEST.c.id == bindparam("book_request"), _REQUEST.c.state == RequestState.OFFERED.value)
    .values(
        state=RequestState.BOOKED.value,
        interpreter_id=bindparam("book_interpreter", type_=_REQUEST.c.interpreter_id.type),
        booked_at=bindparam("book_at", type_=_REQUEST.c.booked_at.type),
        updated_at=bindparam("book_at", type_=_REQUEST.c.updated_at.type),
        estimate_cents=bindparam("book_pay", type_=_REQUEST.c.estimate_cents.type),
        calendar_sequence=_REQUEST.c.calendar_sequence + 1,
    )
    .returning(*_REQUEST.c)
)
_ACCEPTED = _OFFER.c.id == bindparam("answer_offer")
_ANSWER = (
    update(_OFFER)
    .where(
        _OFFER.c.request_id == bindparam("answer_request"),
        (_OFFER.c.state == OfferState.OPEN.value) | _ACCEPTED,
    )
    .values(
        state=case((_ACCEPTED, OfferState.ACCEPTED.value), else_=OfferState.WITHDRAWN.value),
        responded_at=bindparam("answer_at", type_=_OFFER.c.responded_at.type),
    )
    .returning(_OFFER.c.id, _OFFER.c.interpreter_id)
)


def decline_offer(session: Session, *, offer_id: int, interpreter_id: int, actor: str, now: datetime) -> None:
    """Decline an offer; the next candidate gets one."""
    offer, request = _answerable(session, offer_id, interpreter_id, now)
    declined = session.exec(
        update(Offer)
        .where(col(Offer.id) == offer.id, col(Offer.state) == OfferState.OPEN.value)
        .values(state=OfferState.DECLINED.value, responded_at=now)
    )
    if declined.rowcount != 1:
        raise OfferClosed(N_("This offer has expired."))
    session.refresh(offer)
    assert request.id is not None
    record(
        session,
        district_id=request.district_id,
        actor=actor,
        action="offer.declined",
        entity="offer",
        entity_id=offer_id,
        now=now,
    )
    fill_offers(session, request, actor=actor, now=now)


def booked_job(session: Session, *, request_id: int, interpreter_id: int, now: datetime) -> Request:
    """The interpreter's booking that they may still give back; raises a domain error otherwise.

    The request is locked and read as it is now: giving back raises its calendar SEQUENCE, which a
    change confirmed meanwhile may have raised already."""
    request = session.get(Request, request_id, with_for_update=True, populate_existing=True)
    if request is None or request.interpreter_id != interpreter_id:
        raise NotFound(N_("This booking does not exist."))
    if request.state != RequestState.BOOKED:
        raise IllegalTransition(
            N_("This request is {state} and cannot become {target}."),
            state=request.state,
            target=RequestState.OFFERED.value,
        )
    if request.starts_at <= now:
        raise IllegalTransition(N_("The session has already begun; it can no longer be handed back."))
    return request


def give_back(
    session: Session, *, request_id: int, interpreter_id: int, reason: str, actor: str, now: datetime
) -> Request:
    """The booked interpreter cannot come after all: back to matching at once.

    The school gets one message that says what happens now (someone else is asked, or nobody else
    can take it and the coordination office looks at it); the coordinators read the reason.
    """
    request = booked_job(session, request_id=request_id, interpreter_id=interpreter_id, now=now)
    why = clean_reason(reason)
    dropped = _drop_waiting_change(session, request_id, now)
    unbook(session, request, now)
    event_id = record(
        session,
        district_id=request.district_id,
        actor=actor,
        action="booking.handed_back",
        entity="request",
        entity_id=request_id,
        now=now,
        interpreter_id=interpreter_id,
        reason=why,
    )
    handed_back = HandBack(event_id, change_dropped=dropped)
    fill_offers(session, request, actor=actor, now=now, handed_back=handed_back)
    state = RequestState(request.state)
    if state is RequestState.UNFILLED:
        return request  # its one message each for school and coordinators says it was handed back
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=RequestInterpreterCancelled(
            request_id=request_id, held=state is RequestState.AWAITING_APPROVAL, change_dropped=dropped
        ),
        now=now,
    )
    tell(
        session,
        request,
        Recipient.COORDINATORS,
        notice=RequestHandedBack(request_id=request_id, audit_id=event_id, outcome=state.value),
        now=now,
    )
    return request


def unbook(session: Session, request: Request, now: datetime) -> None:
    """The booked interpreter no longer has the job: their accepted offer counts as given back (they
    are not asked again), and their copy of the calendar event is cancelled with a higher SEQUENCE."""
    for offer in offers_of(session, request.id or 0):
        if offer.state == OfferState.ACCEPTED:
            offer.state = OfferState.CANCELLED.value
            offer.responded_at = now
            session.add(offer)
    request.interpreter_id = None
    request.booked_at = None
    request.calendar_sequence += 1
    session.add(request)
    session.flush()


def _drop_waiting_change(session: Session, request_id: int, now: datetime) -> bool:
    """Close the school's change still waiting for the interpreter who gives the booking back (it lapses:
    the booking goes out as it was); True if there was one. The states are services.changes.ChangeState's,
    which imports this module."""
    dropped = session.exec(
        update(BookingChange)
        .where(col(BookingChange.request_id) == request_id, col(BookingChange.state) == "pending")
        .values(state="lapsed", decided_at=now)
    )
    return bool(dropped.rowcount)


def taken_notice_pending(session: Session, *, offer_id: int, interpreter_id: int) -> bool:
    """Whether the notice that someone else took the job is still on its way to this interpreter.

    That notice edits the offer message itself (its buttons go), so an Accept tapped meanwhile needs
    no answer of its own: the interpreter reads it once. Once the notice has gone out (or failed, or
    was never written: the offer had expired), the tap's own answer is the one that tells them.
    One read (an offer gets one taken notice: it is withdrawn once), none after the early refusal
    (`_taken_by_another` read it with the refusal, in this transaction).
    """
    early = session.info.pop(_EARLY, None)
    if early is not None and early[:2] == (offer_id, interpreter_id):
        return bool(early[2])
    waiting = session.connection().execute(
        _TAKEN_WAITING, {"offer_id": offer_id, "interpreter_id": interpreter_id}
    )
    return bool(waiting.scalar())


def withdraw_open_offers(
    session: Session,
    request: Request,
    *,
    now: datetime,
    notice: type[OfferWithdrawn | OfferTaken] = OfferWithdrawn,
) -> None:
    """Withdraw the request's open offers, telling each interpreter (taken by another, or not wanted).

    One UPDATE ... RETURNING for all (the offers are not loaded: 50 ORM objects cost an Accept that
    closes 49 offers more than the update) and one batched insert for their notices, in offer order.
    """
    request_id = request.id
    assert request_id is not None
    withdrawn = session.exec(
        update(Offer)
        .where(col(Offer.request_id) == request_id, col(Offer.state) == OfferState.OPEN.value)
        .values(state=OfferState.WITHDRAWN.value, responded_at=now)
        .returning(col(Offer.id), col(Offer.interpreter_id))
    ).all()
    told: list[tuple[Recipient, int, NoticeParams]] = [
        (Recipient.INTERPRETER, interpreter_id, notice(offer_id=offer_id, request_id=request_id))
        for offer_id, interpreter_id in sorted(withdrawn)
    ]
    notify_all(session, district_id=request.district_id, notices=told, now=now)
