"""Changing a booked session: the school asks, the booked interpreter confirms or declines.

Rules:
- Only a booked session that has not begun can be changed, by its own school, one change at a time.
  The new time, duration, place and mode pass the same checks as a new request (the lead time of
  the new mode from now, the duration's range, a topic that fits the mode), differ from the booking,
  and stay in the booking's fiscal year (its reservation lives in that year's budget).
- The cost is estimated as at booking: the booked interpreter's distance (their accepted offer).
- While the interpreter has not answered, the booking stays as it was. Its reservation is held at
  the larger of the old and the new estimate from the moment the school asks, so a change the
  budget cannot carry is refused with a sentence then, and a confirmation can never fail for money.
  The reservation becomes exactly the new estimate in the transaction in which the change takes
  effect, and the old one again when it lapses.
- A change asked inside the policy's free-cancellation window is late. When the policy's
  `late_change_counts_as_cancellation` says yes (the default), a late change the interpreter
  declines counts as a late cancellation: the booking is cancelled with the policy's fee (the
  interpreter's compensation, billed like any late cancellation) and the changed session goes to
  the pool as a new request. The school reads the fee before it sends the change.
- A change declined in time (or late, where the policy says no) sends the same request, with the
  new values, back to the pool, as a hand-back does.
- The interpreter answers within the offer timeout, but never later than the policy's share of the
  time left before the earlier of the two starts; then the change lapses, the booking stays as it
  was, and both are told. A booking cancelled or handed back meanwhile takes its waiting change
  with it: the interpreter's buttons say it is no longer open, and it lapses without a word at its
  time (or when the school asks for another change).
- A late change declined becomes a new request that the declining interpreter is not offered
  again: their declined offer is recorded on it, as for any declined offer.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NoReturn

from sqlalchemy import update
from sqlmodel import Session, col, select

from db.models import BookingChange, DueTask, Offer, Request, School
from services import due, ledger
from services.audit import record
from services.billing import cancellation_fee, estimate
from services.errors import BudgetExceeded, IllegalTransition, InvalidInput, NotFound
from services.notices import (
    ChangeAsked,
    ChangeConfirmed,
    ChangeDeclined,
    ChangeLapsed,
    RequestChanged,
    RequestChangeDeclined,
    RequestChangeLapsed,
    RequestHandedBack,
)
from services.offers import HandBack, fill_offers, unbook
from services.outbox import notify, tell
from services.policy import Policy, load_policy
from services.reasons import clean_reason
from services.requests import RequestDraft, cancel_and_settle, get_request, validate_draft
from services.text import N_
from services.vocabulary import Gender, Mode, OfferState, Recipient, RequestState, Topic


class ChangeState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    LAPSED = "lapsed"


@dataclass(frozen=True)
class ChangeDraft:
    """The booking as the school wants it. `place` empty means the school's own address."""

    starts_at: datetime
    duration_minutes: int
    mode: Mode
    place: str = ""


@dataclass(frozen=True)
class ChangeQuote:
    """What the school reads before sending: the money before and after, and the risk of a late change."""

    before_cents: int
    after_cents: int
    fee_cents: int  # charged if the interpreter declines (a late change), else 0
    available_cents: int  # left in the budget now

    @property
    def difference_cents(self) -> int:
        return self.after_cents - self.before_cents


# --- rules, as pure functions --------------------------------------------------------------------


def late_fee_cents(mode: Mode, starts_at: datetime, now: datetime, policy: Policy) -> int:
    """What a change asked now costs if the interpreter cannot keep it: the late-cancellation fee of
    the booking as it is, when the policy counts a late change so; nothing outside the window."""
    if not policy.late_change_counts_as_cancellation:
        return 0
    return cancellation_fee(mode, starts_at, now, policy).total_cents


def answer_by(old_start: datetime, new_start: datetime, now: datetime, policy: Policy) -> datetime:
    """When a change lapses: the offer timeout, but at most the policy's share of the time left
    before the earlier of the two starts."""
    left = max(min(old_start, new_start) - now, timedelta(0))
    return now + min(policy.offer_timeout, left * policy.offer_timeout_share / 100)


def changes_anything(request: Request, draft: ChangeDraft, place: str) -> bool:
    return (request.starts_at, request.duration_minutes, request.mode, request.place) != (
        draft.starts_at,
        draft.duration_minutes,
        draft.mode.value,
        place,
    )


# --- reading -------------------------------------------------------------------------------------


def _changeable(
    session: Session, district_id: int, request_id: int, school_id: int | None, *, lock: bool = False
) -> Request:
    request = get_request(session, district_id, request_id, lock=lock)
    if school_id is not None and request.school_id != school_id:
        raise NotFound(N_("Request {request_id} does not exist."), request_id=request_id)
    return request


def check_booked(request: Request, now: datetime) -> None:
    """Raise unless the request is a booked session that has not begun."""
    if request.state != RequestState.BOOKED or request.starts_at <= now:
        raise IllegalTransition(
            N_("Request #{request_id} cannot be changed: only a booked session that has not begun can."),
            request_id=request.id,
        )


def booked_distance_m(session: Session, request: Request) -> int:
    """The booked interpreter's distance to the place, as their accepted offer estimated it."""
    offer = session.exec(
        select(Offer).where(
            Offer.request_id == request.id,
            Offer.interpreter_id == request.interpreter_id,
            Offer.state == OfferState.ACCEPTED.value,
        )
    ).first()
    return offer.distance_m if offer else 0


def pending_change(session: Session, request: Request, now: datetime) -> BookingChange | None:
    """The change waiting for the booked interpreter; one left from a cancelled or handed-back booking
    lapses here."""
    change = session.exec(
        select(BookingChange).where(
            BookingChange.request_id == request.id, BookingChange.state == ChangeState.PENDING.value
        )
    ).first()
    if change is None:
        return None
    if request.state != RequestState.BOOKED or request.interpreter_id != change.interpreter_id:
        _close(session, change, ChangeState.LAPSED, now)
        return None
    return change


def _place(session: Session, request: Request, draft: ChangeDraft) -> str:
    school = session.get(School, request.school_id)
    assert school is not None
    return draft.place.strip() or school.address


def _validate(session: Session, request: Request, draft: ChangeDraft, policy: Policy, now: datetime) -> str:
    """Check the change like a new request; returns the place it stores."""
    check_booked(request, now)
    validate_draft(
        RequestDraft(
            school_id=request.school_id,
            language=request.language,
            mode=draft.mode,
            starts_at=draft.starts_at,
            duration_minutes=draft.duration_minutes,
            topic=Topic(request.topic),
            place=draft.place,
            gender_preference=Gender(request.gender_preference) if request.gender_preference else None,
            note=request.note,
        ),
        policy,
        now,
    )
    if ledger.fiscal_year(draft.starts_at) != ledger.fiscal_year(request.starts_at):
        raise InvalidInput(
            N_("A change cannot move a session into another year. Please cancel it and make a new request.")
        )
    place = _place(session, request, draft)
    if not changes_anything(request, draft, place):
        raise InvalidInput(N_("That is the booking as it is; nothing would change."))
    if pending_change(session, request, now) is not None:
        raise InvalidInput(
            N_("A change of #{request_id} is already waiting for the interpreter's answer."),
            request_id=request.id,
        )
    return place


def quote_change(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    draft: ChangeDraft,
    now: datetime,
    school_id: int | None = None,
) -> ChangeQuote:
    """The change's effect on the money, without saving anything; raises for a change not allowed."""
    request = _changeable(session, district_id, request_id, school_id)
    quote, _place = _quote(session, request, draft, load_policy(session, district_id), now)
    return quote


def _quote(
    session: Session, request: Request, draft: ChangeDraft, policy: Policy, now: datetime
) -> tuple[ChangeQuote, str]:
    """Check the change and price it against the budget as this session has it (locked, when the
    change is to be saved); returns the quote and the place the change stores."""
    place = _validate(session, request, draft, policy, now)
    assert request.id is not None
    after = estimate(draft.mode, draft.duration_minutes, booked_distance_m(session, request), policy)
    budget = ledger.get_budget(session, request.district_id, ledger.fiscal_year(request.starts_at))
    quote = ChangeQuote(
        before_cents=ledger.open_reservation(session, request.id),
        after_cents=after.total_cents,
        fee_cents=late_fee_cents(Mode(request.mode), request.starts_at, now, policy),
        available_cents=ledger.balance_of(budget).available_cents,
    )
    if quote.difference_cents > quote.available_cents:
        _too_dear(quote.difference_cents, quote.available_cents)
    return quote, place


def _too_dear(extra_cents: int, available_cents: int) -> NoReturn:
    raise BudgetExceeded(
        N_(
            "The change would cost {extra_cents} more, but only {available_cents} is left in the budget. "
            "Please ask the coordination office."
        ),
        extra_cents=extra_cents,
        available_cents=available_cents,
    )


# --- the school asks -----------------------------------------------------------------------------


def ask_change(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    draft: ChangeDraft,
    actor: str,
    now: datetime,
    school_id: int | None = None,
) -> BookingChange:
    """Save the change for the booked interpreter to answer; the booking stays as it is until then.

    The request, then the budget, are locked before anything is checked or priced: a cancellation,
    hand-back or reservation committed meanwhile is seen, never overwritten."""
    request = _changeable(session, district_id, request_id, school_id, lock=True)
    policy = load_policy(session, district_id)
    budget = ledger.get_budget(session, district_id, ledger.fiscal_year(request.starts_at), lock=True)
    quote, place = _quote(session, request, draft, policy, now)
    assert request.id is not None
    assert request.interpreter_id is not None
    # Held while the interpreter decides: enough for either outcome (the quote checked it fits).
    held = max(quote.before_cents, quote.after_cents)
    ledger.set_reservation(session, budget, request_id=request.id, amount_cents=held, actor=actor, now=now)
    change = BookingChange(
        request_id=request.id,
        interpreter_id=request.interpreter_id,
        starts_at=draft.starts_at,
        duration_minutes=draft.duration_minutes,
        mode=draft.mode.value,
        place=place,
        estimate_cents=quote.after_cents,
        fee_cents=quote.fee_cents,
        state=ChangeState.PENDING.value,
        requested_by=actor,
        created_at=now,
        expires_at=answer_by(request.starts_at, draft.starts_at, now, policy),
    )
    _save(session, request, change, actor, now)
    assert change.id is not None
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.INTERPRETER,
        recipient_id=request.interpreter_id,
        notice=ChangeAsked(
            request_id=request.id,
            change_id=change.id,
            pay_cents=change.estimate_cents,
            fee_cents=change.fee_cents,
            expires_at=change.expires_at,
        ),
        now=now,
    )
    return change


def _save(session: Session, request: Request, change: BookingChange, actor: str, now: datetime) -> None:
    """Store the asked change, with its answer time for the timers and its audit entry."""
    session.add(change)
    session.flush()
    assert change.id is not None
    due.arm(
        session,
        district_id=request.district_id,
        kind=due.Kind.CHANGE_EXPIRY,
        subject_id=change.id,
        due_at=change.expires_at,
        now=now,
    )
    _audit(session, request, change, "change.asked", actor, now)


def _audit(
    session: Session,
    request: Request,
    change: BookingChange,
    action: str,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> int:
    """The change in the audit trail, with the booked interpreter and (a decline) their reason."""
    assert change.id is not None
    return record(
        session,
        district_id=request.district_id,
        actor=actor,
        action=action,
        entity="request",
        entity_id=change.request_id,
        now=now,
        change_id=change.id,
        starts_at=change.starts_at.isoformat(),
        duration_minutes=change.duration_minutes,
        mode=change.mode,
        estimate_cents=change.estimate_cents,
        fee_cents=change.fee_cents,
        before_starts_at=request.starts_at.isoformat(),
        before_duration_minutes=request.duration_minutes,
        before_mode=request.mode,
        interpreter_id=change.interpreter_id,
        **({} if reason is None else {"reason": reason}),
    )


def _close(session: Session, change: BookingChange, state: ChangeState, now: datetime) -> bool:
    """Decide a waiting change, once: False when another transaction decided it first (a double tap,
    an answer racing the answer time). The one-pending index sees it closed at once."""
    closed = session.exec(
        update(BookingChange)
        .where(col(BookingChange.id) == change.id, col(BookingChange.state) == ChangeState.PENDING.value)
        .values(state=state.value, decided_at=now)
    )
    session.refresh(change)
    return closed.rowcount == 1


# --- the interpreter answers ---------------------------------------------------------------------


def _answerable(
    session: Session, change_id: int, interpreter_id: int, now: datetime
) -> tuple[BookingChange, Request]:
    change = session.get(BookingChange, change_id)
    if change is None or change.interpreter_id != interpreter_id:
        raise NotFound(N_("This change does not exist."))
    request = session.get(Request, change.request_id, with_for_update=True, populate_existing=True)
    assert request is not None
    session.refresh(change)  # as decided by whoever held the request's lock before
    if change.state == ChangeState.CONFIRMED:
        raise IllegalTransition(N_("You have already confirmed this change."))
    if change.state == ChangeState.DECLINED:
        raise IllegalTransition(N_("You have already declined this change."))
    gone = request.state != RequestState.BOOKED or request.interpreter_id != interpreter_id
    if change.state != ChangeState.PENDING or change.expires_at <= now or gone:
        # An error rolls the event back: its due row lapses the change.
        raise IllegalTransition(N_("This change is no longer open; the booking stays as it is."))
    return change, request


def answerable(
    session: Session, *, change_id: int, interpreter_id: int, now: datetime
) -> tuple[BookingChange, Request]:
    """The change still waiting for this interpreter's answer, with its booking; raises the sentence
    that says why not (before a decline asks for its reason)."""
    return _answerable(session, change_id, interpreter_id, now)


def _apply(request: Request, change: BookingChange, now: datetime) -> None:
    request.starts_at = change.starts_at
    request.duration_minutes = change.duration_minutes
    request.mode = change.mode
    request.place = change.place
    request.updated_at = now


def confirm_change(
    session: Session, *, change_id: int, interpreter_id: int, actor: str, now: datetime
) -> Request:
    """The interpreter keeps the changed session: it takes effect, with its reservation, reminders and
    calendars, in this transaction."""
    change, request = _answerable(session, change_id, interpreter_id, now)
    assert request.id is not None
    assert change.id is not None
    _settle_answer(session, change, ChangeState.CONFIRMED, now)
    _audit(session, request, change, "change.confirmed", actor, now)
    _apply(request, change, now)
    budget = ledger.get_budget(session, request.district_id, ledger.fiscal_year(request.starts_at), lock=True)
    ledger.set_reservation(
        session, budget, request_id=request.id, amount_cents=change.estimate_cents, actor=actor, now=now
    )
    request.estimate_cents = change.estimate_cents
    request.calendar_sequence += 1  # the same event in both calendars, at its new time
    session.add(request)
    rearm_booking(session, request, change.id, now)
    tell(
        session,
        request,
        Recipient.INTERPRETER,
        interpreter_id=interpreter_id,
        notice=ChangeConfirmed(
            request_id=request.id, change_id=change.id, calendar_sequence=request.calendar_sequence
        ),
        now=now,
    )
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=RequestChanged(
            request_id=request.id,
            calendar_sequence=request.calendar_sequence,
            reserved_cents=change.estimate_cents,
        ),
        now=now,
    )
    return request


def _settle_answer(session: Session, change: BookingChange, state: ChangeState, now: datetime) -> None:
    if not _close(session, change, state, now):
        raise IllegalTransition(N_("This change is no longer open; the booking stays as it is."))


def decline_change(
    session: Session, *, change_id: int, interpreter_id: int, reason: str, actor: str, now: datetime
) -> Request | None:
    """The interpreter cannot keep the changed session, and says why; returns the new request of a
    late change.

    Late (a fee was named when the school asked): the booking is cancelled with that fee and the
    change goes to the pool as a new request. Otherwise the request itself, changed, goes back to
    the pool. Either way the interpreter's calendar drops the event, the school reads the reason and
    what happens now in one message, and the coordinators learn that a booked interpreter dropped out.
    """
    why = clean_reason(reason)
    change, request = _answerable(session, change_id, interpreter_id, now)
    assert request.id is not None
    assert change.id is not None
    _settle_answer(session, change, ChangeState.DECLINED, now)
    event_id = _audit(session, request, change, "change.declined", actor, now, reason=why)
    handed_back = HandBack(event_id, change_declined=True)
    if change.fee_cents:
        new_request: Request | None = _cancel_late(
            session, request, change, handed_back, actor=actor, now=now
        )
    else:
        _back_to_pool(session, request, change, handed_back, actor=actor, now=now)
        new_request = None
    tell(
        session,
        request,
        Recipient.INTERPRETER,
        interpreter_id=interpreter_id,
        notice=ChangeDeclined(
            request_id=request.id,
            change_id=change.id,
            calendar_sequence=request.calendar_sequence,
            fee_cents=change.fee_cents,
        ),
        now=now,
    )
    _tell_declined(session, request, change, new_request, handed_back, now)
    return new_request


def _tell_declined(
    session: Session,
    request: Request,
    change: BookingChange,
    new_request: Request | None,
    handed_back: HandBack,
    now: datetime,
) -> None:
    """One message to the school: the reason, the fee of a late change, and what happens now; the
    coordinators hear of it too (from `mark_unfilled` when nobody else can take it)."""
    assert request.id is not None
    carrier = new_request or request  # the request that carries the changed session now
    outcome = RequestState(carrier.state)
    # The school's event goes when the booking is cancelled (late) or nobody else can take it.
    dropped = new_request is not None or outcome is RequestState.UNFILLED
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=RequestChangeDeclined(
            request_id=request.id,
            calendar_sequence=request.calendar_sequence if dropped else None,
            fee_cents=change.fee_cents,
            new_request_id=new_request.id if new_request else None,
            outcome=outcome.value,
            audit_id=handed_back.audit_id,
        ),
        now=now,
    )
    if outcome is RequestState.UNFILLED:
        return
    assert carrier.id is not None
    tell(
        session,
        request,
        Recipient.COORDINATORS,
        notice=RequestHandedBack(
            request_id=carrier.id,
            audit_id=handed_back.audit_id,
            outcome=outcome.value,
            change_declined=True,
        ),
        now=now,
    )


def _back_to_pool(
    session: Session,
    request: Request,
    change: BookingChange,
    handed_back: HandBack,
    *,
    actor: str,
    now: datetime,
) -> None:
    """The changed request goes to the next interpreters, as after a hand-back."""
    _apply(request, change, now)
    unbook(session, request, now)
    fill_offers(session, request, actor=actor, now=now, handed_back=handed_back)


def _cancel_late(
    session: Session,
    request: Request,
    change: BookingChange,
    handed_back: HandBack,
    *,
    actor: str,
    now: datetime,
) -> Request:
    """A late change not kept counts as a late cancellation; the change becomes a new request."""
    cancel_and_settle(
        session, request, fee_cents=change.fee_cents, actor=actor, now=now, reason="change_declined"
    )
    new_request = _as_new_request(session, request, change, now=now)
    record(
        session,
        district_id=new_request.district_id,
        actor=actor,
        action="request.requested",
        entity="request",
        entity_id=new_request.id or 0,
        now=now,
        changed_from=request.id,
    )
    fill_offers(session, new_request, actor=actor, now=now, handed_back=handed_back)
    return new_request


def _as_new_request(session: Session, old: Request, change: BookingChange, *, now: datetime) -> Request:
    """The changed session as a request of its own, checked when the school asked; the interpreter who
    declined it counts as having declined its offer."""
    request = Request(
        district_id=old.district_id,
        school_id=old.school_id,
        created_by_member_id=old.created_by_member_id,
        language=old.language,
        mode=change.mode,
        topic=old.topic,
        starts_at=change.starts_at,
        duration_minutes=change.duration_minutes,
        place=change.place,
        place_latitude=old.place_latitude,
        place_longitude=old.place_longitude,
        gender_preference=old.gender_preference,
        note=old.note,
        state=RequestState.REQUESTED.value,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    session.add(
        Offer(
            request_id=request.id,
            interpreter_id=change.interpreter_id,
            wave=0,
            rank=0,
            state=OfferState.DECLINED.value,
            pay_cents=change.estimate_cents,
            distance_m=booked_distance_m(session, old),
            created_at=now,
            expires_at=now,
            responded_at=now,
        )
    )
    session.flush()
    return request


def lapse(session: Session, change: BookingChange, *, now: datetime) -> bool:
    """An unanswered change lapses: the booking stays as it was, its reservation too, and both are told.

    Returns False when the change had already been decided (or its booking is gone: then silently).
    """
    request = session.get(Request, change.request_id, with_for_update=True, populate_existing=True)
    assert request is not None
    assert request.id is not None
    assert change.id is not None
    still_booked = request.state == RequestState.BOOKED and request.interpreter_id == change.interpreter_id
    if not _close(session, change, ChangeState.LAPSED, now) or not still_booked:
        return False
    _audit(session, request, change, "change.lapsed", "system:timers", now)
    budget = ledger.get_budget(session, request.district_id, ledger.fiscal_year(request.starts_at), lock=True)
    ledger.set_reservation(
        session,
        budget,
        request_id=request.id,
        amount_cents=request.estimate_cents,
        actor="system:timers",
        now=now,
    )
    tell(
        session,
        request,
        Recipient.INTERPRETER,
        interpreter_id=change.interpreter_id,
        notice=ChangeLapsed(request_id=request.id, change_id=change.id),
        now=now,
    )
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=RequestChangeLapsed(request_id=request.id),
        now=now,
    )
    return True


# --- reminders follow the new time ---------------------------------------------------------------


def rearm_booking(session: Session, request: Request, change_id: int, now: datetime) -> None:
    """Move the booking's reminders and closeout prompt to its new time.

    A reminder not yet sent moves; one that would now lie in the past is dropped; one already sent
    for the old time is armed again for the new one (a variant named after the change), unless that
    too lies in the past. Written work has no reminders.
    """
    assert request.id is not None
    policy = load_policy(session, request.district_id)
    booked_for = f"i{request.interpreter_id}"
    pending = session.exec(
        select(DueTask).where(
            DueTask.kind == due.Kind.REMINDER.value,
            DueTask.subject_id == request.id,
            col(DueTask.done_at).is_(None),
        )
    ).all()
    for name, lead in (("first", policy.reminder_first), ("second", policy.reminder_second)):
        due_at = request.starts_at - lead
        wanted = request.mode != Mode.WRITTEN.value and due_at > now
        mine = [
            t for t in pending if t.variant.startswith(f"{name}:") and t.variant.endswith(f":{booked_for}")
        ]
        for task in mine:
            if wanted:
                task.due_at = due_at
            else:
                task.done_at, task.outcome = now, due.Outcome.DROPPED.value
            session.add(task)
        if wanted and not mine:
            due.arm(
                session,
                district_id=request.district_id,
                kind=due.Kind.REMINDER,
                subject_id=request.id,
                variant=f"{name}:c{change_id}:{booked_for}",
                due_at=due_at,
                now=now,
            )
    due.arm(
        session,
        district_id=request.district_id,
        kind=due.Kind.CLOSEOUT_PROMPT,
        subject_id=request.id,
        variant=booked_for,
        due_at=request.starts_at + timedelta(minutes=request.duration_minutes),
        now=now,
    )


def lapse_due(session: Session, task: DueTask, now: datetime) -> bool:
    """The due row of a change's answer time (services.timers): lapse it if still unanswered."""
    change = session.get(BookingChange, task.subject_id)
    return change is not None and lapse(session, change, now=now)
