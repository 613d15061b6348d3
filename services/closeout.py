"""Closeout: the interpreter reports what happened, the school confirms or disputes, the money moves.

Settling releases the reservation and charges the actual cost in one step. When the actual cost
exceeds the reservation by more than the budget has left, the confirmation is kept, the request
stays `completed`, and the coordinators are asked to raise the budget and settle it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, select

from db.models import Closeout, Request
from services import billing, due, ledger
from services.allowance import check_allowance
from services.audit import record
from services.errors import BudgetExceeded, IllegalTransition, InvalidInput, NotFound
from services.notices import (
    CloseoutCorrected,
    CloseoutDisputed,
    CloseoutReported,
    CloseoutSettled,
    CloseoutUnusual,
    SettlementBlocked,
)
from services.outbox import notify, tell
from services.policy import Policy, load_policy
from services.reasons import clean_reason
from services.requests import get_request
from services.text import N_
from services.transition import move
from services.vocabulary import CloseoutState, Mode, Recipient, RequestState

LONG_DAY = timedelta(hours=8)


class Unusual(StrEnum):
    """Why a report looks far from the plan; such a report is sent only when confirmed, and flagged."""

    TWICE_PLANNED = "twice_planned"  # more than twice the planned time
    LONG_DAY = "long_day"  # more than 8 hours
    FAR = "far"  # more km than the policy's `report_km_max`
    EARLY = "early"  # reported before the planned end


def unusual(request: Request, minutes: int, km: int, policy: Policy, now: datetime) -> tuple[Unusual, ...]:
    """What is unusual about these figures for this request (nothing for a report close to the plan)."""
    found = []
    if minutes > 2 * request.duration_minutes:
        found.append(Unusual.TWICE_PLANNED)
    if timedelta(minutes=minutes) > LONG_DAY:
        found.append(Unusual.LONG_DAY)
    if km > policy.report_km_max:
        found.append(Unusual.FAR)
    # A letter may well be done early; a talk cannot have ended before its planned end.
    ends_at = request.starts_at + timedelta(minutes=request.duration_minutes)
    if request.mode != Mode.WRITTEN.value and now < ends_at:
        found.append(Unusual.EARLY)
    return tuple(found)


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
    policy = load_policy(session, request.district_id)
    cost = billing.actual(Mode(request.mode), minutes, km, expenses_cents, policy)
    flags = unusual(request, minutes, km, policy, now)
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
        unusual=list(flags),
    )
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=CloseoutReported(
            request_id=request_id,
            minutes=minutes,
            km=km,
            expenses_cents=expenses_cents,
            amount_cents=cost.total_cents,
            unusual=tuple(flags) or None,
        ),
        now=now,
    )
    if flags:
        tell(
            session,
            request,
            Recipient.COORDINATORS,
            notice=CloseoutUnusual(
                request_id=request_id, minutes=minutes, km=km, km_max=policy.report_km_max, unusual=flags
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
        tell(
            session,
            request,
            Recipient.COORDINATORS,
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
    tell(
        session,
        request,
        Recipient.INTERPRETER,
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
    why = clean_reason(reason)
    closeout.state = CloseoutState.DISPUTED.value
    closeout.dispute_reason = why
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
            notice=CloseoutDisputed(request_id=request_id),
            now=now,
        )


@dataclass(frozen=True)
class Figures:
    """A report's figures and what they come to."""

    minutes: int
    km: int
    expenses_cents: int
    amount_cents: int


@dataclass(frozen=True)
class Correction:
    """A correction before it is made: the report as it stands and as it would be."""

    before: Figures
    after: Figures

    @property
    def change_cents(self) -> int:
        return self.after.amount_cents - self.before.amount_cents


def preview_correction(
    session: Session, *, district_id: int, request_id: int, minutes: int, km: int, expenses_cents: int
) -> Correction:
    """What correcting the report to these figures would change; nothing is written."""
    request, closeout = _decided(session, district_id, request_id, None)
    before = Figures(
        closeout.actual_minutes, closeout.km, closeout.expenses_cents, closeout.amount_cents or 0
    )
    cost = _cost(session, request, minutes, km, expenses_cents)
    return Correction(before, Figures(minutes, km, expenses_cents, cost.total_cents))


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
) -> Correction:
    """A coordinator sets the figures, with a reason; school and interpreter are told.

    Before settlement this decides the report and settles it; after, the difference is booked
    as a ledger adjustment.
    """
    why = clean_reason(reason)
    correction = preview_correction(
        session,
        district_id=district_id,
        request_id=request_id,
        minutes=minutes,
        km=km,
        expenses_cents=expenses_cents,
    )
    request, closeout = _decided(session, district_id, request_id, None)
    already_settled = request.state == RequestState.SETTLED
    _write_correction(session, closeout, correction.after, why, actor=actor, now=now)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="closeout.corrected",
        entity="request",
        entity_id=request_id,
        now=now,
        previous_cents=correction.before.amount_cents,
        amount_cents=correction.after.amount_cents,
        reason=closeout.correction_reason,
    )
    if already_settled:
        _adjust_settled(session, request, correction.change_cents, why, actor=actor, now=now)
    elif not settle(session, request, closeout, actor=actor, now=now):
        raise BudgetExceeded(N_("The budget does not cover this amount; raise the budget first."))
    _tell_correction(session, request, correction, now=now)
    return correction


def _write_correction(
    session: Session, closeout: Closeout, after: Figures, reason: str, *, actor: str, now: datetime
) -> None:
    closeout.actual_minutes, closeout.km, closeout.expenses_cents = (
        after.minutes,
        after.km,
        after.expenses_cents,
    )
    closeout.amount_cents = after.amount_cents
    closeout.state = CloseoutState.CORRECTED.value
    closeout.correction_reason = reason
    closeout.decided_by, closeout.decided_at = actor, now
    session.add(closeout)


def _adjust_settled(
    session: Session, request: Request, delta: int, reason: str, *, actor: str, now: datetime
) -> None:
    """Book the difference of a correction after settlement (nothing when there is none)."""
    if not delta:
        return
    assert request.id is not None
    assert request.interpreter_id is not None
    year = ledger.fiscal_year(request.starts_at)
    budget = ledger.get_budget(session, request.district_id, year, lock=True)
    ledger.adjust(
        session, budget, amount_cents=delta, reason=reason, request_id=request.id, actor=actor, now=now
    )
    session.flush()
    check_allowance(
        session, district_id=request.district_id, interpreter_id=request.interpreter_id, year=year, now=now
    )


def _tell_correction(session: Session, request: Request, correction: Correction, *, now: datetime) -> None:
    assert request.id is not None
    assert request.interpreter_id is not None
    after = correction.after
    notice = CloseoutCorrected(
        request_id=request.id,
        minutes=after.minutes,
        km=after.km,
        expenses_cents=after.expenses_cents,
        amount_cents=after.amount_cents,
        previous_cents=correction.before.amount_cents,
    )
    for recipient in (Recipient.SCHOOL, Recipient.INTERPRETER):
        tell(session, request, recipient, notice=notice, now=now)
