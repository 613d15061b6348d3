"""Closeout: the interpreter reports what happened, the school confirms or disputes, the money moves.

Settling releases the reservation and charges the actual cost in one step. When the actual cost
exceeds the reservation by more than the budget has left, the confirmation is kept, the request
stays `completed`, and the coordinators are asked to raise the budget and settle it.
"""

from datetime import datetime

from sqlmodel import Session, select

from db.models import Closeout, Request
from services import billing, due, ledger
from services.allowance import check_allowance
from services.audit import record
from services.errors import BudgetExceeded, IllegalTransition, InvalidInput, NotFound
from services.notices import CloseoutDisputed, CloseoutReported, CloseoutSettled, SettlementBlocked
from services.outbox import notify
from services.policy import load_policy
from services.requests import get_request
from services.text import N_
from services.transition import move
from services.vocabulary import CloseoutState, Mode, Recipient, RequestState


def closeout_of(session: Session, request_id: int) -> Closeout | None:
    return session.exec(select(Closeout).where(Closeout.request_id == request_id)).first()


def _cost(session: Session, request: Request, minutes: int, km: int, expenses_cents: int) -> billing.Cost:
    policy = load_policy(session, request.district_id)
    return billing.actual(Mode(request.mode), minutes, km, expenses_cents, policy)


def report(
    session: Session,
    *,
    request_id: int,
    interpreter_id: int,
    minutes: int,
    km: int,
    expenses_cents: int,
    actor: str,
    now: datetime,
) -> Closeout:
    """The interpreter's report; may be corrected by them until the school has decided."""
    request = session.get(Request, request_id)
    if request is None or request.interpreter_id != interpreter_id:
        raise NotFound(N_("This booking does not exist."))
    if request.state not in (RequestState.BOOKED, RequestState.COMPLETED):
        raise IllegalTransition(N_("This session cannot be reported (any more)."))
    if now < request.starts_at:
        raise InvalidInput(N_("A session can be reported once it has begun."))
    cost = _cost(session, request, minutes, km, expenses_cents)
    closeout = closeout_of(session, request_id)
    if closeout is not None and closeout.state not in (CloseoutState.REPORTED, CloseoutState.DISPUTED):
        raise IllegalTransition(N_("This report has already been decided."))
    if closeout is None:
        closeout = Closeout(
            request_id=request_id, actual_minutes=0, state="", reported_by=actor, reported_at=now
        )
    closeout.actual_minutes, closeout.km, closeout.expenses_cents = minutes, km, expenses_cents
    closeout.state = CloseoutState.REPORTED.value
    closeout.reported_by, closeout.reported_at = actor, now
    closeout.amount_cents = cost.total_cents
    session.add(closeout)
    due.arm_auto_confirm(session, request, closeout, now)
    if request.state == RequestState.BOOKED:
        move(session, request, RequestState.COMPLETED, actor=actor, now=now)
    record(
        session,
        district_id=request.district_id,
        actor=actor,
        action="closeout.reported",
        entity="request",
        entity_id=request_id,
        now=now,
        minutes=minutes,
        km=km,
        expenses_cents=expenses_cents,
        amount_cents=cost.total_cents,
    )
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=CloseoutReported(
            request_id=request_id,
            minutes=minutes,
            km=km,
            expenses_cents=expenses_cents,
            amount_cents=cost.total_cents,
        ),
        now=now,
    )
    return closeout


def _decided(
    session: Session, district_id: int, request_id: int, school_id: int | None
) -> tuple[Request, Closeout]:
    request = get_request(session, district_id, request_id)
    if school_id is not None and request.school_id != school_id:
        raise NotFound(N_("Request {request_id} does not exist."), request_id=request_id)
    closeout = closeout_of(session, request_id)
    if closeout is None:
        raise IllegalTransition(N_("The interpreter has not reported this session yet."))
    return request, closeout


def settle(session: Session, request: Request, closeout: Closeout, *, actor: str, now: datetime) -> bool:
    """Charge the closeout to the budget; False (and the coordinators told) when the money is not there."""
    assert request.id is not None
    assert closeout.amount_cents is not None
    budget = ledger.get_budget(session, request.district_id, ledger.fiscal_year(request.starts_at), lock=True)
    try:
        ledger.settle(
            session, budget, request_id=request.id, charge_cents=closeout.amount_cents, actor=actor, now=now
        )
    except BudgetExceeded as exc:
        notify(
            session,
            district_id=request.district_id,
            recipient=Recipient.COORDINATORS,
            recipient_id=request.district_id,
            notice=SettlementBlocked(
                request_id=request.id,
                needed_cents=int(exc.params["needed_cents"]),
                available_cents=int(exc.params["available_cents"]),
            ),
            now=now,
        )
        return False
    move(session, request, RequestState.SETTLED, actor=actor, now=now)
    assert request.interpreter_id is not None
    session.flush()
    check_allowance(
        session,
        district_id=request.district_id,
        interpreter_id=request.interpreter_id,
        year=ledger.fiscal_year(request.starts_at),
        now=now,
    )
    notify(
        session,
        district_id=request.district_id,
        recipient=Recipient.INTERPRETER,
        recipient_id=request.interpreter_id,
        notice=CloseoutSettled(request_id=request.id, amount_cents=closeout.amount_cents),
        now=now,
    )
    return True


def confirm(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    actor: str,
    now: datetime,
    school_id: int | None = None,
) -> bool:
    """The school confirms the report (also after a dispute); True when it is settled."""
    request, closeout = _decided(session, district_id, request_id, school_id)
    if closeout.state not in (CloseoutState.REPORTED, CloseoutState.DISPUTED):
        raise IllegalTransition(N_("This report has already been decided."))
    closeout.state = CloseoutState.CONFIRMED.value
    closeout.decided_by, closeout.decided_at = actor, now
    session.add(closeout)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="closeout.confirmed",
        entity="request",
        entity_id=request_id,
        now=now,
    )
    return settle(session, request, closeout, actor=actor, now=now)


def dispute(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    reason: str,
    actor: str,
    now: datetime,
    school_id: int | None = None,
) -> None:
    """The school disputes the report; a coordinator decides."""
    request, closeout = _decided(session, district_id, request_id, school_id)
    if closeout.state != CloseoutState.REPORTED:
        raise IllegalTransition(N_("This report has already been decided."))
    if not reason.strip():
        raise InvalidInput(N_("Please say briefly what is wrong with the report."))
    closeout.state = CloseoutState.DISPUTED.value
    closeout.dispute_reason = reason.strip()[:300]
    closeout.decided_by, closeout.decided_at = actor, now
    session.add(closeout)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="closeout.disputed",
        entity="request",
        entity_id=request_id,
        now=now,
    )
    for recipient, rid in (
        (Recipient.COORDINATORS, district_id),
        (Recipient.INTERPRETER, request.interpreter_id),
    ):
        assert rid is not None
        notify(
            session,
            district_id=district_id,
            recipient=recipient,
            recipient_id=rid,
            notice=CloseoutDisputed(request_id=request_id, reason=closeout.dispute_reason),
            now=now,
        )


def correct(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    minutes: int,
    km: int,
    expenses_cents: int,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """A coordinator sets the figures, with a reason; returns the change in the charge (cents).

    Before settlement this decides the report and settles it; after, the difference is booked
    as a ledger adjustment.
    """
    if not reason.strip():
        raise InvalidInput(N_("A correction needs a reason."))
    request, closeout = _decided(session, district_id, request_id, None)
    cost = _cost(session, request, minutes, km, expenses_cents)
    previous = closeout.amount_cents or 0
    already_settled = request.state == RequestState.SETTLED
    closeout.actual_minutes, closeout.km, closeout.expenses_cents = minutes, km, expenses_cents
    closeout.amount_cents = cost.total_cents
    closeout.state = CloseoutState.CORRECTED.value
    closeout.correction_reason = reason.strip()[:300]
    closeout.decided_by, closeout.decided_at = actor, now
    session.add(closeout)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="closeout.corrected",
        entity="request",
        entity_id=request_id,
        now=now,
        previous_cents=previous,
        amount_cents=cost.total_cents,
        reason=closeout.correction_reason,
    )
    if already_settled:
        delta = cost.total_cents - previous
        if delta:
            budget = ledger.get_budget(session, district_id, ledger.fiscal_year(request.starts_at), lock=True)
            ledger.adjust(
                session,
                budget,
                amount_cents=delta,
                reason=reason,
                request_id=request_id,
                actor=actor,
                now=now,
            )
            assert request.interpreter_id is not None
            session.flush()
            check_allowance(
                session,
                district_id=district_id,
                interpreter_id=request.interpreter_id,
                year=ledger.fiscal_year(request.starts_at),
                now=now,
            )
        return delta
    if not settle(session, request, closeout, actor=actor, now=now):
        raise BudgetExceeded(N_("The budget does not cover this amount; raise the budget first."))
    return cost.total_cents - previous
