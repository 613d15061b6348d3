"""Offers: a request put to the best few eligible interpreters; the first accept wins.

The win is decided by the database, not by Python: accepting is a conditional
`UPDATE request ... WHERE state = 'offered'`, and only the transaction whose update hit the row
books it (a unique index on accepted offers backs this up). The others are withdrawn and their
interpreters told. A decline, or an interpreter giving a booking back, tops the open offers up
again from the next candidates; with none left the request is `unfilled`.
"""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from db.models import Budget, Interpreter, Offer, Request, UnmetDemand
from services import due, ledger
from services.audit import record
from services.errors import AlreadyTaken, BudgetExceeded, IllegalTransition, NotFound, OfferClosed
from services.matching import candidates
from services.notices import (
    OfferConfirmed,
    OfferNew,
    OfferTaken,
    OfferWithdrawn,
    RequestAwaitingApproval,
    RequestBooked,
    RequestInterpreterCancelled,
    RequestUnfilled,
    RequestUnfilledCoordinator,
)
from services.outbox import notify
from services.policy import Policy, load_policy
from services.text import N_
from services.transition import move
from services.vocabulary import OfferState, Recipient, RequestState, UnmetReason


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
    session: Session, request: Request, *, reason: str, needed_cents: int, actor: str, now: datetime
) -> None:
    """Hold the request for a coordinator: the money it needs is not there."""
    assert request.id is not None
    release_reservation(session, request, actor=actor, now=now)
    request.estimate_cents = needed_cents
    move(session, request, RequestState.AWAITING_APPROVAL, actor=actor, now=now, reason=reason)
    for recipient, rid in (
        (Recipient.COORDINATORS, request.district_id),
        (Recipient.SCHOOL, request.school_id),
    ):
        notify(
            session,
            district_id=request.district_id,
            recipient=recipient,
            recipient_id=rid,
            notice=RequestAwaitingApproval(request_id=request.id, reason=reason, estimate_cents=needed_cents),
            now=now,
        )


def mark_unfilled(session: Session, request: Request, *, actor: str, now: datetime) -> None:
    """Nobody can or will take the request: record the unmet demand, tell the school and coordinators."""
    assert request.id is not None
    release_reservation(session, request, actor=actor, now=now)
    move(session, request, RequestState.UNFILLED, actor=actor, now=now, reason=UnmetReason.NOT_FILLED.value)
    _record_unmet(session, request, UnmetReason.NOT_FILLED, now)
    in_calendar = request.calendar_sequence > 0  # booked before a give-back: the school's event goes
    if in_calendar:
        request.calendar_sequence += 1
    policy = load_policy(session, request.district_id)
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=RequestUnfilled(
            request_id=request.id,
            language=request.language,
            referral_text=policy.referral_text,
            calendar_sequence=request.calendar_sequence if in_calendar else None,
        ),
        now=now,
    )
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.COORDINATORS,
        recipient_id=request.district_id,
        notice=RequestUnfilledCoordinator(
            request_id=request.id,
            language=request.language,
            mode=request.mode,
            reason=UnmetReason.NOT_FILLED.value,
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


def fill_offers(session: Session, request: Request, *, actor: str, now: datetime) -> None:
    """Top the request's open offers up to the policy's wave size from the best untried candidates.

    The reservation grows to cover the most expensive open offer; if the budget cannot carry that
    and no offer is open, the request waits for a coordinator. With no candidates and no open
    offer left, the request is unfilled.
    """
    assert request.id is not None
    policy = load_policy(session, request.district_id)
    existing = offers_of(session, request.id)
    open_offers = [o for o in existing if o.state == OfferState.OPEN]
    wanted = policy.offer_wave_size - len(open_offers)
    if wanted <= 0:
        return
    found = candidates(session, request, policy, exclude=[o.interpreter_id for o in existing])[:wanted]
    if not found:
        if open_offers:
            return
        if request.state == RequestState.UNFILLED:
            raise NotFound(N_("Still nobody in the pool is available for this request."))
        mark_unfilled(session, request, actor=actor, now=now)
        return
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
            return
        if request.state == RequestState.AWAITING_APPROVAL:
            raise  # a coordinator's approval that still does not fit: they are told why
        reason = "no_budget" if budget is None else "over_budget"
        await_approval(session, request, reason=reason, needed_cents=needed, actor=actor, now=now)
        return
    request.estimate_cents = reserve
    request.wave += 1
    if request.state != RequestState.OFFERED:
        move(session, request, RequestState.OFFERED, actor=actor, now=now)
    expires_at = offer_expiry(request, policy, now)
    due.arm_offer_expiry(session, request, expires_at, now)
    for rank, candidate in enumerate(found, start=len(open_offers) + 1):
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
        notify(
            session,
            district_id=request.district_id,
            recipient=Recipient.INTERPRETER,
            recipient_id=candidate.interpreter_id,
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


def _answerable(session: Session, offer_id: int, interpreter_id: int, now: datetime) -> tuple[Offer, Request]:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.interpreter_id != interpreter_id:
        raise NotFound(N_("This offer does not exist."))
    request = session.get(Request, offer.request_id)
    assert request is not None
    if offer.state != OfferState.OPEN or offer.expires_at <= now or request.state != RequestState.OFFERED:
        _closed_offer(offer, request)
    return offer, request


def accept_offer(
    session: Session, *, offer_id: int, interpreter_id: int, actor: str, now: datetime
) -> Request:
    """Book the interpreter if nobody was faster; raises AlreadyTaken otherwise."""
    offer, request = _answerable(session, offer_id, interpreter_id, now)
    booked = session.exec(
        update(Request)
        .where(col(Request.id) == request.id, col(Request.state) == RequestState.OFFERED.value)
        .values(state=RequestState.BOOKED.value, interpreter_id=interpreter_id, booked_at=now, updated_at=now)
    )
    if booked.rowcount != 1:
        raise AlreadyTaken(N_("Someone else has already taken this job."))
    session.exec(
        update(Offer)
        .where(col(Offer.id) == offer.id)
        .values(state=OfferState.ACCEPTED.value, responded_at=now)
    )
    session.refresh(request)
    session.refresh(offer)
    assert request.id is not None
    assert offer.id is not None
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
    withdraw_open_offers(session, request, now=now, notice=OfferTaken)
    budget = _budget_for(session, request)
    assert budget is not None
    ledger.set_reservation(
        session, budget, request_id=request.id, amount_cents=offer.pay_cents, actor=actor, now=now
    )
    request.estimate_cents = offer.pay_cents
    request.calendar_sequence += 1  # a booking again after a give-back updates the same calendar event
    session.add(request)
    due.arm_booking(session, request, now)
    interpreter = session.get(Interpreter, interpreter_id)
    assert interpreter is not None
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=RequestBooked(
            request_id=request.id,
            calendar_sequence=request.calendar_sequence,
            interpreter_name=interpreter.name.split()[0],
            interpreter_phone=interpreter.phone,
            interpreter_email=interpreter.email,
        ),
        now=now,
    )
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.INTERPRETER,
        recipient_id=interpreter_id,
        notice=OfferConfirmed(
            offer_id=offer.id, request_id=request.id, calendar_sequence=request.calendar_sequence
        ),
        now=now,
    )
    return request


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


def give_back(
    session: Session, *, request_id: int, interpreter_id: int, actor: str, now: datetime
) -> Request:
    """The booked interpreter cannot come after all: back to matching at once, and the school is told."""
    request = session.get(Request, request_id)
    if request is None or request.interpreter_id != interpreter_id:
        raise NotFound(N_("This booking does not exist."))
    if request.state != RequestState.BOOKED:
        raise IllegalTransition(
            N_("This request is {state} and cannot become {target}."),
            state=request.state,
            target=RequestState.OFFERED.value,
        )
    for offer in offers_of(session, request_id):
        if offer.state == OfferState.ACCEPTED:
            offer.state = OfferState.CANCELLED.value
            offer.responded_at = now
            session.add(offer)
    request.interpreter_id = None
    request.booked_at = None
    request.calendar_sequence += 1  # the interpreter's copy of the event is cancelled with this SEQUENCE
    session.add(request)
    session.flush()
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=RequestInterpreterCancelled(request_id=request_id),
        now=now,
    )
    fill_offers(session, request, actor=actor, now=now)
    return request


def withdraw_open_offers(
    session: Session,
    request: Request,
    *,
    now: datetime,
    notice: type[OfferWithdrawn | OfferTaken] = OfferWithdrawn,
) -> None:
    """Withdraw the request's open offers, telling each interpreter (taken by another, or not wanted)."""
    assert request.id is not None
    for offer in offers_of(session, request.id):
        if offer.state == OfferState.OPEN:
            offer.state = OfferState.WITHDRAWN.value
            offer.responded_at = now
            session.add(offer)
            assert offer.id is not None
            notify(
                session,
                district_id=request.district_id,
                recipient=Recipient.INTERPRETER,
                recipient_id=offer.interpreter_id,
                notice=notice(offer_id=offer.id, request_id=request.id),
                now=now,
            )
