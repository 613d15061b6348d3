"""A school's request, from the draft to offers, approval, referral or cancellation.

Order of decisions on submit: the draft must be valid; a language no active pool member speaks is
referred at once (kept as unmet demand, the school gets the district's referral text); otherwise
the best interpreters get offers, unless the estimate does not fit the budget, in which case a
coordinator decides.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from db.models import Request, School
from services import ledger
from services.allowance import check_allowance
from services.billing import Cost, cancellation_fee, estimate
from services.errors import IllegalTransition, InvalidInput, NotFound
from services.languages import normalize_tag
from services.matching import covered, other_modes, wave_and_count, why_nobody
from services.notices import (
    BookingCancelled,
    RequestCancelled,
    RequestReceived,
    RequestReferred,
    RequestRejected,
)
from services.offers import (
    fill_offers,
    record_not_covered,
    release_reservation,
    withdraw_open_offers,
)
from services.outbox import notify, tell
from services.policy import Policy, load_policy
from services.reasons import clean_reason
from services.text import N_
from services.transition import move
from services.vocabulary import Gender, Mode, Recipient, RequestState, Topic, UnmetReason

MIN_DURATION = 15
MAX_DURATION = 8 * 60
NOTE_MAX = 200
# What plainly is a phone number (starts with + or 0, at least 7 digits, spaces, slashes, dashes or
# brackets between them; dates and years do not match) or an e-mail address: the note is for what the
# interpreter needs, not for how to reach someone. Names cannot be told apart this cheaply; the
# question asks for none.
_PHONE = re.compile(r"(?<![\w.])(?:\+|0)[\d /()\-]{5,}\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def check_note(note: str) -> None:
    """Refuse a note that is too long or carries a phone number or an e-mail address."""
    if len(note) > NOTE_MAX:
        raise InvalidInput(N_("The note may have at most {max} characters."), max=NOTE_MAX)
    phones = (m.group() for m in _PHONE.finditer(note))
    if _EMAIL.search(note) or any(sum(c.isdigit() for c in p) >= 7 for p in phones):
        raise InvalidInput(
            N_(
                "Please leave phone numbers and e-mail addresses out of the note; the interpreter "
                "reaches the school through the booking."
            )
        )


@dataclass(frozen=True)
class RequestDraft:
    """What a school asks for. `place` empty means the school's own address."""

    school_id: int
    language: str
    mode: Mode
    starts_at: datetime
    duration_minutes: int
    topic: Topic
    place: str = ""
    gender_preference: Gender | None = None
    note: str = ""


@dataclass(frozen=True)
class Quote:
    """What the school sees before confirming: who could take it, the estimate and its effect on the budget.

    With nobody eligible, `reason` says why (language, mode or time) and `other_modes` where
    someone could take it instead.
    """

    covered: bool
    eligible: int  # pool members who could take it: language, mode, gender wish, free at that time
    estimate_cents: int
    available_cents: int | None  # None: no budget for that year
    reason: UnmetReason | None = None
    other_modes: tuple[Mode, ...] = ()

    @property
    def fits_budget(self) -> bool:
        return self.available_cents is not None and self.estimate_cents <= self.available_cents


def validate_draft(
    draft: RequestDraft, policy: Policy, now: datetime, *, override_lead_time: bool = False
) -> str:
    """Check a draft against the rules; returns the normalized language tag or raises InvalidInput."""
    language = normalize_tag(draft.language)
    if draft.starts_at.tzinfo is None:
        raise InvalidInput(N_("The start needs a time zone."))
    if draft.starts_at <= now:
        raise InvalidInput(N_("The start lies in the past."))
    lead = policy.lead_time(draft.mode)
    if not override_lead_time and draft.starts_at - now < lead:
        raise InvalidInput(
            N_("Requests {mode} need more notice; the earliest possible start is {earliest_at}."),
            mode=draft.mode.value,
            earliest_at=now + lead,
        )
    if not MIN_DURATION <= draft.duration_minutes <= MAX_DURATION:
        raise InvalidInput(N_("The duration must be between 15 minutes and 8 hours."))
    if draft.topic is Topic.PARENT_LETTER and draft.mode is not Mode.WRITTEN:
        raise InvalidInput(N_("A parent letter is translated in writing; choose the mode “written”."))
    if draft.mode is Mode.WRITTEN and draft.topic not in (Topic.PARENT_LETTER, Topic.OTHER):
        raise InvalidInput(
            N_("Written translation is for letters and other texts, not for talks or evenings.")
        )
    check_note(draft.note)
    return language


def _school_in(session: Session, district_id: int, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None or school.district_id != district_id or not school.active:
        raise InvalidInput(N_("This school does not belong to the district."))
    return school


def _new_request(
    school: School, draft: RequestDraft, language: str, member_id: int | None, now: datetime
) -> Request:
    assert school.id is not None
    return Request(
        district_id=school.district_id,
        school_id=school.id,
        created_by_member_id=member_id,
        language=language,
        mode=draft.mode.value,
        topic=draft.topic.value,
        starts_at=draft.starts_at,
        duration_minutes=draft.duration_minutes,
        place=draft.place.strip() or school.address,
        # A place typed by the school has no coordinates; the school's own stand in for the estimate.
        place_latitude=school.latitude,
        place_longitude=school.longitude,
        gender_preference=draft.gender_preference.value if draft.gender_preference else None,
        note=draft.note.strip(),
        state=RequestState.REQUESTED.value,
        created_at=now,
        updated_at=now,
    )


def quote(session: Session, *, district_id: int, draft: RequestDraft, now: datetime) -> Quote:
    """The estimate for a draft, without saving anything (the summary before the school confirms)."""
    policy = load_policy(session, district_id)
    school = _school_in(session, district_id, draft.school_id)
    language = validate_draft(draft, policy, now)
    probe = _new_request(school, draft, language, None, now)
    found, eligible = wave_and_count(session, probe, policy, policy.offer_wave_size)
    if found:
        amount = max(c.pay_cents for c in found)
    else:
        amount = estimate(draft.mode, draft.duration_minutes, 0, policy).total_cents
    budget = ledger.find_budget(session, district_id, ledger.fiscal_year(draft.starts_at))
    available = ledger.balance_of(budget).available_cents if budget else None
    is_covered = covered(session, district_id, language)
    if eligible:
        return Quote(is_covered, eligible, amount, available)
    reason = why_nobody(session, probe)
    others = tuple(other_modes(session, probe, policy, now)) if is_covered else ()
    return Quote(is_covered, 0, amount, available, reason, others)


def submit_request(
    session: Session,
    *,
    district_id: int,
    draft: RequestDraft,
    actor: str,
    now: datetime,
    member_id: int | None = None,
    override_lead_time: bool = False,
) -> Request:
    """Save a request and set it on its way (offered, referred, unfilled or awaiting approval)."""
    policy = load_policy(session, district_id)
    school = _school_in(session, district_id, draft.school_id)
    language = validate_draft(draft, policy, now, override_lead_time=override_lead_time)
    request = _new_request(school, draft, language, member_id, now)
    session.add(request)
    session.flush()
    assert request.id is not None
    if not covered(session, district_id, language):
        refer(session, request, reason=UnmetReason.NOT_COVERED, actor=actor, now=now)
        return request
    fill_offers(session, request, actor=actor, now=now)
    if request.state == RequestState.OFFERED:
        # Referred, held and unfilled requests get their own message; this one says the search is on.
        notify(
            session,
            district_id=district_id,
            recipient=Recipient.SCHOOL,
            recipient_id=request.school_id,
            notice=RequestReceived(request_id=request.id),
            now=now,
        )
    return request


def refer(session: Session, request: Request, *, reason: UnmetReason, actor: str, now: datetime) -> None:
    """Send the school to the external service (the district's referral text), keeping the unmet demand."""
    assert request.id is not None
    move(session, request, RequestState.REFERRED, actor=actor, now=now, reason=reason.value)
    if reason is UnmetReason.NOT_COVERED:
        record_not_covered(session, request, now)
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=RequestReferred(
            request_id=request.id,
            language=request.language,
            reason=reason.value,
        ),
        now=now,
    )


def get_request(session: Session, district_id: int, request_id: int, *, lock: bool = False) -> Request:
    """The district's request; `lock`: locked for this transaction and read as it is now (whoever
    changes a request's state or calendar SEQUENCE takes the lock first)."""
    request = (
        session.get(Request, request_id, with_for_update=True, populate_existing=True)
        if lock
        else session.get(Request, request_id)
    )
    if request is None or request.district_id != district_id:
        raise NotFound(N_("Request {request_id} does not exist."), request_id=request_id)
    return request


def refer_unfilled(
    session: Session, *, district_id: int, request_id: int, actor: str, now: datetime
) -> Request:
    """An unfilled request goes to the external service."""
    request = get_request(session, district_id, request_id)
    refer(session, request, reason=UnmetReason.NOT_FILLED, actor=actor, now=now)
    return request


def approve(session: Session, *, district_id: int, request_id: int, actor: str, now: datetime) -> Request:
    """A coordinator lets a held or unfilled request try again.

    The money must be there: a request that still does not fit raises BudgetExceeded (raise the
    budget first); an unfilled one with still nobody available raises NotFound. Those whose offer
    was withdrawn or expired are asked again; those who declined or gave it back are not.
    """
    request = get_request(session, district_id, request_id)
    if request.state not in (RequestState.AWAITING_APPROVAL, RequestState.UNFILLED):
        raise IllegalTransition(
            N_("This request is {state} and cannot become {target}."),
            state=request.state,
            target=RequestState.OFFERED.value,
        )
    fill_offers(session, request, actor=actor, now=now, retry=True)
    return request


def reject(
    session: Session, *, district_id: int, request_id: int, actor: str, now: datetime, reason: str = ""
) -> Request:
    """A coordinator turns a held request down; the school is told, and reads the reason."""
    why = clean_reason(reason)
    request = get_request(session, district_id, request_id)
    event_id = move(session, request, RequestState.REJECTED, actor=actor, now=now, said=why)
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=RequestRejected(request_id=request_id, audit_id=event_id),
        now=now,
    )
    return request


def cancellation_cost(request: Request, policy: Policy, now: datetime) -> Cost:
    """What cancelling now would cost: a fee only for a booked session inside the window."""
    if request.state != RequestState.BOOKED:
        return Cost(0, 0, 0, 0)
    return cancellation_fee(Mode(request.mode), request.starts_at, now, policy)


def cancel_and_settle(
    session: Session,
    request: Request,
    *,
    fee_cents: int,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> int | None:
    """The core of every cancellation: the request is cancelled (its calendar event too, if it has
    one), the fee charged and the rest of its reservation released, open offers withdrawn, and the
    booked interpreter's allowance checked. Returns who was booked; the caller tells whom it must."""
    assert request.id is not None
    interpreter_id = request.interpreter_id if request.state == RequestState.BOOKED else None
    move(session, request, RequestState.CANCELLED, actor=actor, now=now, reason=reason)
    if request.calendar_sequence > 0:
        request.calendar_sequence += 1  # the calendar event is cancelled with a higher SEQUENCE
    if fee_cents:
        budget = ledger.get_budget(
            session, request.district_id, ledger.fiscal_year(request.starts_at), lock=True
        )
        ledger.settle(session, budget, request_id=request.id, charge_cents=fee_cents, actor=actor, now=now)
    else:
        release_reservation(session, request, actor=actor, now=now)
    withdraw_open_offers(session, request, now=now)
    if interpreter_id is not None and fee_cents:
        session.flush()
        check_allowance(
            session,
            district_id=request.district_id,
            interpreter_id=interpreter_id,
            year=ledger.fiscal_year(request.starts_at),
            now=now,
        )
    return interpreter_id


def cancel(
    session: Session,
    *,
    district_id: int,
    request_id: int,
    actor: str,
    now: datetime,
    school_id: int | None = None,
) -> Cost:
    """Cancel for the school (`school_id` given: only its own requests) or by a coordinator.

    Releases the reservation and charges the policy's fee when a booked session is cancelled
    inside the window; open offers are withdrawn and a booked interpreter is told.
    """
    request = get_request(session, district_id, request_id, lock=True)
    if school_id is not None and request.school_id != school_id:
        raise NotFound(N_("Request {request_id} does not exist."), request_id=request_id)
    if request.state == RequestState.BOOKED and request.starts_at <= now:
        raise IllegalTransition(N_("The session has already begun; it can no longer be cancelled."))
    policy = load_policy(session, district_id)
    fee = cancellation_cost(request, policy, now)
    in_calendars = (
        request.calendar_sequence > 0
    )  # booked once: the school has the event, even after a give-back
    interpreter_id = cancel_and_settle(session, request, fee_cents=fee.total_cents, actor=actor, now=now)
    assert request.id is not None
    if interpreter_id is not None:
        notify(
            session,
            district_id=district_id,
            recipient=Recipient.INTERPRETER,
            recipient_id=interpreter_id,
            notice=BookingCancelled(
                request_id=request.id, fee_cents=fee.total_cents, calendar_sequence=request.calendar_sequence
            ),
            now=now,
        )
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.SCHOOL,
        recipient_id=request.school_id,
        notice=RequestCancelled(
            request_id=request.id,
            fee_cents=fee.total_cents,
            calendar_sequence=request.calendar_sequence if in_calendars else None,
        ),
        now=now,
    )
    return fee
