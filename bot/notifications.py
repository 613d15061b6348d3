"""What each notice says, in the recipient's language, with its buttons.

Every `Notice` has one `Template`, made for its params class (`services.notices`): its placeholders are
the params' fields and what its `details` reads from the database, typed for that class. Details
(language, time, place) are read when the message is sent, so a notification always shows the request
as it is now; the outbox keeps only ids and figures. So are names, contact data and what someone typed
(a reason: from its audit event or the closeout): a message never carries a copy of them, and once it
was delivered its params are gone. A row from before a field was added renders with a neutral fallback.

Offers say only what an interpreter needs to decide (language, mode, time, duration, town, topic, pay);
the place details and the school's note go to the booked interpreter alone.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlmodel import Session, select

from bot.calendar_file import calendar_attachment, where
from bot.conversation.plausibility import unusual_text
from bot.conversation.views import budget_command, pace_text, request_line
from bot.i18n import Translator
from bot.messages import Choice, Reply, numbered
from db.models import (
    AuditEvent,
    BookingChange,
    Closeout,
    District,
    Interpreter,
    Member,
    Offer,
    Request,
    School,
)
from services import ledger
from services.audit import said
from services.due import Kind
from services.notices import (
    AboutChange,
    AboutOffer,
    AboutRequest,
    AllowanceExceeded,
    AllowanceNear,
    BookingCancelled,
    BookingReminder,
    BudgetAlert,
    ChangeAsked,
    ChangeConfirmed,
    ChangeDeclined,
    ChangeLapsed,
    CloseoutAutoConfirmed,
    CloseoutCorrected,
    CloseoutDisputed,
    CloseoutPrompt,
    CloseoutReminder,
    CloseoutReported,
    CloseoutSettled,
    CloseoutUnusual,
    DeliveryFailed,
    DigestWeekly,
    DueTaskFailed,
    InterpreterWithoutChat,
    MemberDeactivated,
    Notice,
    NoticeParams,
    OfferConfirmed,
    OfferExpired,
    OfferNew,
    OfferTaken,
    OfferWithdrawn,
    PersonErased,
    PlatformReachable,
    PlatformUnreachable,
    RequestAwaitingApproval,
    RequestBooked,
    RequestCancelled,
    RequestChanged,
    RequestChangeDeclined,
    RequestChangeLapsed,
    RequestHandedBack,
    RequestInterpreterCancelled,
    RequestReceived,
    RequestReferred,
    RequestRejected,
    RequestUnfilled,
    RequestUnfilledCoordinator,
    SettlementBlocked,
    WithCalendar,
    from_json,
)
from services.policy import load_policy
from services.text import N_
from services.vocabulary import MODE_LABELS, Mode, RequestState, Role, UnmetReason

P = TypeVar("P", bound=NoticeParams)
Values = dict[str, Any]


@dataclass(frozen=True)
class Template(Generic[P]):
    """The text of one notice. Its placeholders are the fields of `params` and what `details` adds."""

    params: type[P]
    message: str
    details: Callable[[Session, Translator, P], Values] | None = None  # values read from the database
    buttons: tuple[tuple[str, str], ...] = ()  # (key prefix, label); the key ends in `:<request id>`
    buttons_by_offer: bool = False  # the key ends in `:<offer id>` instead
    buttons_by_change: bool = False  # the key ends in `:<change id>` instead
    buttons_for: Role | None = None  # only this role gets the buttons (None: everyone the message is for)
    buttons_if: Callable[[P], bool] | None = None  # the buttons only for such params (None: always)
    calendar: str | None = None  # "booked" or "cancelled": the booking's calendar file goes with it
    # Another text for some params or roles (a reason, a free cancellation); None keeps `message`.
    pick: Callable[[P, Role], str | None] | None = None

    def reply(self, session: Session, t: Translator, params: P, role: Role) -> Reply:
        """The message for these params, in one locale, for a member of one role."""
        values: Values = {f.name: getattr(params, f.name) for f in fields(params)}
        # Read first and held: the details read it too, and find it in the session then.
        request = session.get(Request, params.request_id) if isinstance(params, AboutRequest) else None
        if self.details is not None:
            values.update(self.details(session, t, params))
        message = self.pick(params, role) if self.pick is not None else None
        text = t.render(message or self.message, values)
        if request is not None:
            text = request_line(t, request) + "\n" + text
        choices: tuple[Choice, ...] = ()
        wanted = self.buttons_if is None or self.buttons_if(params)
        if wanted and self.buttons_for in (None, role) and isinstance(params, AboutRequest):
            target = params.offer_id if self.buttons_by_offer and isinstance(params, AboutOffer) else None
            if self.buttons_by_change and isinstance(params, AboutChange):
                target = params.change_id
            target = params.request_id if target is None else target
            choices = tuple(Choice(f"{prefix}:{target}", t.gettext(label)) for prefix, label in self.buttons)
        attachment = None
        if (
            self.calendar
            and request is not None
            and isinstance(params, WithCalendar)
            and params.calendar_sequence is not None
        ):
            location, description = _calendar_details(session, t, request, params, role)
            attachment = calendar_attachment(
                t,
                request,
                sequence=params.calendar_sequence,
                cancelled=self.calendar == "cancelled",
                now=request.updated_at,
                location=location,
                description=description,
            )
        return Reply(numbered(text, choices), choices, attachment)


def _contact(t: Translator, phone: str, email: str) -> str:
    parts = [p for p in (phone, email) if p]
    return "\n" + t.render("Contact: {contact}", {"contact": ", ".join(parts)}) if parts else ""


def _offer_details(session: Session, t: Translator, params: OfferNew) -> Values:
    offer = session.get(Offer, params.offer_id)
    request = session.get(Request, offer.request_id) if offer else None
    if offer is None or request is None:
        return {}
    school = session.get(School, request.school_id)
    remote = request.mode != Mode.IN_PERSON.value
    # Phone, video and written work happen nowhere near the school's town: the offer names the mode.
    town = t.gettext(MODE_LABELS[Mode(request.mode)]) if remote else (school.municipality if school else "")
    distance = "" if remote else " " + t.render("({km} km away)", {"km": round(offer.distance_m / 1000)})
    return {"place": town, "distance": distance, "pay_cents": offer.pay_cents, "topic": request.topic}


def _booked_place(session: Session, t: Translator, params: AboutRequest) -> Values:
    """The place details and the school's note: for the booked interpreter only."""
    request = session.get(Request, params.request_id)
    if request is None:
        return {"place": "", "note": ""}
    note = "\n" + t.render("Note: {note}", {"note": request.note}) if request.note else ""
    return {"place": where(t, request) or t.render("{mode}", {"mode": request.mode}), "note": note}


def _interpreter_name(session: Session, t: Translator, interpreter_id: int | None) -> str:
    """An interpreter's name as it is now (a row from before, or a person erased: a neutral word)."""
    interpreter = session.get(Interpreter, interpreter_id) if interpreter_id is not None else None
    return interpreter.name if interpreter is not None and interpreter.name else t.gettext(SOMEONE)


SOMEONE = N_("Someone from the pool")
NO_REASON = N_("no reason kept")


def _who_and_why(session: Session, t: Translator, audit_id: int | None) -> tuple[str, str]:
    """Who gave a booking back (or declined a change) and why, from the audit event the notice names."""
    event = session.get(AuditEvent, audit_id) if audit_id is not None else None
    detail = json.loads(event.detail or "{}") if event is not None else {}
    who = detail.get("interpreter_id")
    name = _interpreter_name(session, t, who if isinstance(who, int) else None)
    return name, said(session, audit_id) or t.gettext(NO_REASON)


def _handed_back_by(session: Session, t: Translator, params: RequestHandedBack) -> Values:
    name, reason = _who_and_why(session, t, params.audit_id)
    return {"interpreter_name": name, "reason": reason}


def _reason(session: Session, t: Translator, params: RequestRejected | RequestChangeDeclined) -> Values:
    return {"reason": said(session, params.audit_id) or t.gettext(NO_REASON)}


def _closeout_reason(session: Session, t: Translator, params: CloseoutDisputed | CloseoutCorrected) -> Values:
    """The dispute's or the correction's reason, as the closeout keeps it."""
    closeout = session.exec(select(Closeout).where(Closeout.request_id == params.request_id)).first()
    kept = None
    if closeout is not None:
        disputed = isinstance(params, CloseoutDisputed)
        kept = closeout.dispute_reason if disputed else closeout.correction_reason
    return {"reason": kept or t.gettext(NO_REASON)}


def _booked_by(session: Session, t: Translator, params: RequestBooked) -> Values:
    """Who comes and how to reach them, as the interpreter's record says now."""
    request = session.get(Request, params.request_id)
    interpreter_id = params.interpreter_id
    if interpreter_id is None and request is not None:  # a row from before: the one booked now
        interpreter_id = request.interpreter_id
    interpreter = session.get(Interpreter, interpreter_id) if interpreter_id is not None else None
    if interpreter is None:
        return {"interpreter_name": t.gettext(SOMEONE), "contact": ""}
    name = interpreter.name or t.gettext(SOMEONE)
    return {"interpreter_name": name, "contact": _contact(t, interpreter.phone, interpreter.email)}


def _referral(session: Session, _t: Translator, params: AboutRequest) -> Values:
    """The district's referral text as it is set now."""
    request = session.get(Request, params.request_id)
    text = load_policy(session, request.district_id).referral_text if request is not None else ""
    return {"referral_text": text}


def _allowance_of(session: Session, t: Translator, params: AllowanceNear | AllowanceExceeded) -> Values:
    return {"name": _interpreter_name(session, t, params.interpreter_id)}


def _starts_at(session: Session, _t: Translator, params: AboutRequest) -> Values:
    request = session.get(Request, params.request_id)
    starts_at: datetime | None = request.starts_at if request else None
    return {"starts_at": starts_at}


def _reported(session: Session, t: Translator, params: CloseoutReported) -> Values:
    """A report far from the plan says so to the school, which confirms it."""
    request = session.get(Request, params.request_id)
    if request is None or not params.unusual:
        return {"unusual": ""}
    km_max = load_policy(session, request.district_id).report_km_max
    what = unusual_text(t, request, params.unusual, minutes=params.minutes, km=params.km, km_max=km_max)
    return {"unusual": "\n" + t.render("Please check: {what}.", {"what": what})}


def _unusual(session: Session, t: Translator, params: CloseoutUnusual) -> Values:
    request = session.get(Request, params.request_id)
    if request is None:
        return {"what": ""}
    what = unusual_text(
        t, request, params.unusual, minutes=params.minutes, km=params.km, km_max=params.km_max
    )
    return {"what": what}


def _digest(_session: Session, t: Translator, params: DigestWeekly) -> Values:
    languages = ", ".join(t.language(code) for code in params.uncovered) or t.gettext("none")
    # Where the year's pace leads (nothing without a budget).
    pace = "" if params.year_end_cents is None else pace_text(t, params.runs_out_on, params.year_end_cents)
    bookings = t.render_plural("{count} booking", "{count} bookings", params.bookings)
    return {"languages": languages, "pace": pace, "bookings": bookings}


def _budget_year(session: Session, _t: Translator, params: RequestAwaitingApproval) -> Values:
    """The fiscal year of the request, and the command that gives it a budget."""
    request = session.get(Request, params.request_id)
    if request is None:
        return {"year": "", "command": ""}
    year = ledger.fiscal_year(request.starts_at)
    district = session.get(District, request.district_id)
    return {"year": year, "command": budget_command(district.slug if district else "SLUG", year)}


_AWAITING = {
    ("no_budget", Role.SCHOOL): N_(
        "There is no budget for {year} yet. The coordination office decides about this request; "
        "you will hear from us."
    ),
    ("no_budget", Role.COORDINATOR): N_(
        "There is no budget for {year} yet, so this request waits for your decision. Set the budget "
        "on the command line, e.g. {command}, then approve."
    ),
    ("over_budget", Role.COORDINATOR): N_(
        "The estimate of {estimate_cents} does not fit what is left of the budget. Approve or reject?"
    ),
}


def _awaiting(params: RequestAwaitingApproval, role: Role) -> str | None:
    """Why the request is held, in the words for the school or for the coordinators."""
    return _AWAITING.get((params.reason, role))


def _free_cancellation(params: RequestCancelled | BookingCancelled, role: Role) -> str | None:
    """A cancellation without a fee says it cost nothing, instead of showing 0.00."""
    if params.fee_cents:
        return None
    if role == Role.INTERPRETER:
        return N_("The school has cancelled this job in time, so there is no compensation.")
    return N_("Cancelled in time, free of charge: nothing is charged to the budget.")


def _calendar_details(
    session: Session, t: Translator, request: Request, params: WithCalendar, role: Role
) -> tuple[str, str]:
    """The calendar entry's place and description besides time and language: only what its reader
    needs on the day. The interpreter: where, the school, the mode and the note. The school: the mode
    and who comes with their contact, as the booking confirmation shows them (no place: it is theirs)."""
    mode = t.render("Mode: {mode}", {"mode": request.mode})
    if role == Role.SCHOOL:
        return "", "\n".join([mode, *_who_comes(session, t, request, params)])
    school = session.get(School, request.school_id)
    lines = [t.render("School: {school}", {"school": school.name})] if school else []
    lines.append(mode)
    if request.note:
        lines.append(t.render("Note: {note}", {"note": request.note}))
    return where(t, request), "\n".join(lines)


def _who_comes(session: Session, t: Translator, request: Request, params: WithCalendar) -> list[str]:
    """The booked interpreter and how to reach them, in every calendar entry of a booked session (a
    changed booking's file replaces the whole event)."""
    interpreter_id = params.interpreter_id if isinstance(params, RequestBooked) else None
    if interpreter_id is None and request.state == RequestState.BOOKED.value:
        interpreter_id = request.interpreter_id
    interpreter = session.get(Interpreter, interpreter_id) if interpreter_id is not None else None
    if interpreter is None or not interpreter.name:
        return []
    line = t.render("Interpreter: {name}", {"name": interpreter.name})
    return [line + _contact(t, interpreter.phone, interpreter.email)]


def _unreachable(session: Session, t: Translator, params: DeliveryFailed) -> Values:
    """Who could not be reached, by the name the coordinators know them by."""
    member = session.get(Member, params.member_id)
    name = member.name if member else ""
    if member is not None and member.interpreter_id is not None:
        interpreter = session.get(Interpreter, member.interpreter_id)
        name = interpreter.name if interpreter else name
    elif member is not None and member.school_id is not None:
        school = session.get(School, member.school_id)
        name = f"{name}, {school.name}" if school and name else (school.name if school else name)
    if params.cause == "gone":
        cause = t.gettext("the bot was blocked or the chat no longer exists.")
    else:
        cause = t.gettext("the messenger did not take it for hours.")
    return {"name": name or f"#{params.member_id}", "cause": cause}


_TASK_LABELS: dict[str, str] = {  # by services.due.Kind value; a kind not named here shows as itself
    Kind.OFFER_EXPIRY: N_("the end of a round of offers"),
    Kind.REMINDER: N_("a reminder before a session"),
    Kind.CLOSEOUT_PROMPT: N_("the question for the report after a session"),
    Kind.CLOSEOUT_REMINDER: N_("the reminder to report a session"),
    Kind.AUTO_CONFIRM: N_("the automatic confirmation of a report"),
    Kind.DIGEST: N_("the weekly digest"),
    Kind.CHANGE_EXPIRY: N_("the deadline of a change to a booking"),
}
_PLATFORMS = {"telegram": "Telegram", "matrix": "Matrix"}


def _due_failed(session: Session, t: Translator, params: DueTaskFailed) -> Values:
    """What the task was for, and the request it was about (as its line, like every request notice)."""
    label = _TASK_LABELS.get(params.task_kind)
    request = session.get(Request, params.request_id) if params.request_id is not None else None
    return {
        "what": t.gettext(label) if label else params.task_kind,
        "request": "\n" + request_line(t, request) if request is not None else "",
        "error": params.error or "?",
    }


def _invite_for(session: Session, t: Translator, params: InterpreterWithoutChat) -> Values:
    """The command that makes an invite code for the interpreter, with the district named."""
    interpreter = session.get(Interpreter, params.interpreter_id)
    district = session.get(District, interpreter.district_id) if interpreter else None
    slug = district.slug if district else "SLUG"
    name = interpreter.name if interpreter is not None and interpreter.name else t.gettext(SOMEONE)
    command = (
        f"python -m bot --district {slug} invite create --role interpreter --for {params.interpreter_id}"
    )
    return {"command": command, "name": name}


def _district_of(session: Session, _t: Translator, params: MemberDeactivated) -> Values:
    member = session.get(Member, params.member_id)
    district = session.get(District, member.district_id) if member is not None else None
    return {"district": district.name if district is not None else "—"}


def _erased_role(_session: Session, t: Translator, params: PersonErased) -> Values:
    return {"role": t.gettext(ROLE_LABELS.get(params.role, params.role))}


ROLE_LABELS = {
    Role.SCHOOL.value: N_("school contact"),
    Role.INTERPRETER.value: N_("interpreter"),
    Role.COORDINATOR.value: N_("coordinator"),
}


def _deactivated(_params: MemberDeactivated, role: Role) -> str | None:
    if role is not Role.INTERPRETER:
        return None
    return N_(
        "Your access to Dolmetscherpool has ended: the coordination office of {district} has deactivated "
        "it. You will get no more job offers; your open offers are withdrawn, and any sessions still "
        "ahead go to other interpreters. This bot will not answer you or write to you any more. If you "
        "have questions, please contact the coordination office."
    )


def _platform(_session: Session, _t: Translator, params: PlatformUnreachable | PlatformReachable) -> Values:
    return {"platform": _PLATFORMS.get(params.platform, params.platform)}


def _change_details(session: Session, t: Translator, params: ChangeAsked) -> Values:
    """What the change would make of the booking, field by field (the request line above is as it is now)."""
    change = session.get(BookingChange, params.change_id)
    request = session.get(Request, params.request_id)
    if change is None or request is None:
        return {"changes": ""}
    lines = []
    if change.starts_at != request.starts_at:
        lines.append(t.render("New start: {starts_at}", {"starts_at": change.starts_at}))
    if change.duration_minutes != request.duration_minutes:
        lines.append(t.render("New duration: {minutes} min", {"minutes": change.duration_minutes}))
    if change.mode != request.mode:
        lines.append(t.render("New mode: {mode}", {"mode": change.mode}))
    if change.place != request.place and change.mode != Mode.WRITTEN.value:
        lines.append(t.render("New place: {place}", {"place": change.place}))
    if params.fee_cents:
        lines.append(
            t.render(
                "This late, the school pays {fee_cents} as a late cancellation if you cannot keep it.",
                {"fee_cents": params.fee_cents},
            )
        )
    return {"changes": "\n".join(lines)}


_CHANGE_OUTCOME = {
    RequestState.OFFERED.value: N_("We are looking for another interpreter for the new time."),
    RequestState.AWAITING_APPROVAL.value: N_(
        "Another interpreter would cost more than the budget has left; the coordination office decides."
    ),
    RequestState.UNFILLED.value: N_(
        "Nobody else in the pool can take it at the new time. The coordination office is told and will "
        "get back to you."
    ),
}


def _change_declined(_session: Session, t: Translator, params: RequestChangeDeclined) -> Values:
    """What happens now, as `fill_offers` left it (rows from before: offered)."""
    outcome = t.gettext(
        _CHANGE_OUTCOME.get(params.outcome or "", _CHANGE_OUTCOME[RequestState.OFFERED.value])
    )
    if params.new_request_id is not None:
        late = t.render(
            "As a late change, it counts as a late cancellation: {fee_cents} is charged to the budget. "
            "The changed session goes to the pool as request #{new_request_id}.",
            {"fee_cents": params.fee_cents, "new_request_id": params.new_request_id},
        )
        outcome = f"{late} {outcome}"
    return {"outcome": outcome}


def _change_declined_why(params: RequestChangeDeclined, _role: Role) -> str | None:
    if params.audit_id is not None:
        return N_("The interpreter cannot keep the change: “{reason}” {outcome}")
    return None


_UNFILLED_WHY = {
    UnmetReason.NOT_COVERED.value: N_("Nobody in the pool speaks {language}."),
    UnmetReason.NOT_IN_MODE.value: N_("Nobody in the pool who speaks {language} works {mode}."),
    UnmetReason.NOT_GENDER.value: N_(
        "Nobody in the pool who speaks {language} and works {mode} is of the gender wished; "
        "without that wish, someone could take it."
    ),
    UnmetReason.NOT_FREE.value: N_(
        "Everyone in the pool who could take it {mode} is busy or away at that time."
    ),
}


def _unfilled(
    session: Session, t: Translator, params: RequestUnfilled | RequestUnfilledCoordinator
) -> Values:
    """Why nobody takes the request, and in which other mode someone could; for the coordinators
    after a hand-back, who gave it back and why."""
    request = session.get(Request, params.request_id)
    mode = request.mode if request is not None else Mode.IN_PERSON.value
    why = _UNFILLED_WHY.get(params.reason or "")
    other = params.other_mode if params.other_mode in {m.value for m in Mode} else None
    handed_back: Values = {}
    if isinstance(params, RequestUnfilledCoordinator) and params.audit_id is not None:
        name, reason = _who_and_why(session, t, params.audit_id)
        handed_back = {"interpreter_name": name, "handed_back_reason": reason}
    return {
        **_referral(session, t, params),
        **handed_back,
        "why": t.render(why, {"language": params.language, "mode": mode}) if why else "",
        "other": t.gettext(MODE_LABELS[Mode(other)]) if other else "",
        "alternative": " " + t.render(N_("Someone could take it {mode}."), {"mode": other}) if other else "",
    }


def _unfilled_school(params: RequestUnfilled, _role: Role) -> str | None:
    """The school's text by reason: never the referral for a language the pool covers."""
    if params.handed_back and params.change_dropped:
        return N_(
            "The interpreter had to hand this job back before answering your change, so the change was "
            "not applied. Nobody else in the pool can take it at that time. The coordination office is "
            "told and will get back to you."
        )
    if params.handed_back:
        return N_(
            "The interpreter had to hand this job back, and nobody else in the pool can take it at that "
            "time. The coordination office is told and will get back to you."
        )
    if params.reason in (None, UnmetReason.NOT_FILLED.value):
        return N_(
            "Nobody from the pool has accepted this request. The coordination office is told and will "
            "get back to you."
        )
    if params.reason == UnmetReason.NOT_COVERED.value:
        return N_("{why} Please turn to this service:\n{referral_text}")
    if params.other_mode:
        return N_(
            "{why} Someone could take it {other}: if that suits you, send a new request with /request. "
            "The coordination office is told as well."
        )
    return None


def _unfilled_office(params: RequestUnfilledCoordinator, _role: Role) -> str | None:
    """The coordinators' text by reason; after a hand-back with who gave it back and why."""
    if params.audit_id is not None and params.change_declined:
        return N_(
            "{interpreter_name} cannot keep the school's change of this booking: “{handed_back_reason}”. "
            "Nobody else in the pool can take it at the new time.{alternative}"
        )
    if params.audit_id is not None:
        return N_(
            "{interpreter_name} handed this job back: “{handed_back_reason}”. Nobody else in the pool "
            "can take it at that time.{alternative}"
        )
    if params.reason == UnmetReason.NOT_FILLED.value:
        return N_("Nobody accepted this request: all who were asked declined or let the offer expire.")
    return None


def _handed_back(params: RequestInterpreterCancelled | RequestHandedBack, _role: Role) -> str | None:
    """Held for the budget instead of offered again (rare: the next interpreters cost more); a change
    still waiting that was not applied; a change the interpreter declined."""
    if isinstance(params, RequestInterpreterCancelled) and params.change_dropped:
        if params.held:
            return N_(
                "The interpreter had to hand this job back before answering your change, so the change "
                "was not applied. Someone else would cost more than the budget has left; the "
                "coordination office decides."
            )
        return N_(
            "The interpreter had to hand this job back before answering your change, so the change was "
            "not applied. We are looking for someone else for the booking as it was."
        )
    if isinstance(params, RequestHandedBack) and params.change_declined:
        if params.outcome == RequestState.AWAITING_APPROVAL.value:
            return N_(
                "{interpreter_name} cannot keep the school's change of this booking: “{reason}”. Another "
                "interpreter would cost more than the budget has left, so it waits for your decision."
            )
        return N_(
            "{interpreter_name} cannot keep the school's change of this booking: “{reason}”. It is "
            "offered to other interpreters at the new time."
        )
    if isinstance(params, RequestInterpreterCancelled) and params.held:
        return N_(
            "The interpreter had to hand this job back. Someone else would cost more than the budget "
            "has left; the coordination office decides."
        )
    if isinstance(params, RequestHandedBack) and params.outcome == RequestState.AWAITING_APPROVAL.value:
        return N_(
            "{interpreter_name} handed this job back: “{reason}”. Another interpreter would cost more "
            "than the budget has left, so it waits for your decision."
        )
    return None


def _by_notice(*templates: Template[Any]) -> dict[Notice, Template[Any]]:
    return {template.params.notice: template for template in templates}


TEMPLATES: dict[Notice, Template[Any]] = _by_notice(
    Template(RequestReceived, N_("Request received. We are looking for an interpreter.")),
    Template(
        RequestReferred,
        N_("Nobody in our pool can take this. Please turn to this service:\n{referral_text}"),
        details=_referral,
    ),
    Template(
        RequestAwaitingApproval,
        N_("The estimate of {estimate_cents} does not fit the budget; the coordination office decides."),
        details=_budget_year,
        buttons=(("rq:ap", N_("Approve")), ("rq:rj", N_("Reject"))),
        buttons_for=Role.COORDINATOR,
        pick=_awaiting,
    ),
    Template(
        RequestUnfilled,
        N_("{why} The coordination office is told and will get back to you."),
        details=_unfilled,
        calendar="cancelled",  # only after a give-back: then the school has the event
        pick=_unfilled_school,
    ),
    Template(
        RequestUnfilledCoordinator,
        N_("Unfilled: {why}{alternative}"),
        details=_unfilled,
        buttons=(("rq:ap", N_("Try again")), ("rq:rf", N_("Refer"))),
        pick=_unfilled_office,
    ),
    Template(
        RequestBooked,
        N_("Booked: {interpreter_name} will come.{contact}"),
        details=_booked_by,
        calendar="booked",
    ),
    Template(
        RequestInterpreterCancelled,
        N_("The interpreter had to hand this job back. We are looking for someone else."),
        pick=_handed_back,
    ),
    Template(
        RequestHandedBack,
        N_("{interpreter_name} handed this job back: “{reason}”. It is offered to other interpreters."),
        details=_handed_back_by,
        pick=_handed_back,
        # Held for the budget: this one message is the coordinators' only one, so it carries the decision.
        buttons=(("rq:ap", N_("Approve")), ("rq:rj", N_("Reject"))),
        buttons_if=lambda p: p.outcome == RequestState.AWAITING_APPROVAL.value,
    ),
    Template(
        RequestRejected,
        N_("The coordination office could not approve this request. Their reason: “{reason}”"),
        details=_reason,
    ),
    Template(
        RequestCancelled,
        N_("Cancelled. Charged to the budget: {fee_cents}."),
        calendar="cancelled",
        pick=_free_cancellation,
    ),
    Template(
        OfferNew,
        N_("New job: {place}{distance}, {topic}\nPay about {pay_cents}. Please answer by {expires_at}."),
        details=_offer_details,
        buttons=(("of:a", N_("Accept")), ("of:d", N_("Decline"))),
        buttons_by_offer=True,
    ),
    Template(OfferTaken, N_("Someone else has already taken this job. Thank you!")),
    Template(OfferWithdrawn, N_("This offer has been withdrawn.")),
    Template(
        OfferConfirmed,
        N_("You have the job: {place}.{note}\n/jobs shows all your jobs."),
        details=_booked_place,
        calendar="booked",
    ),
    Template(
        BookingCancelled,
        N_("The school has cancelled this job. Compensation: {fee_cents}."),
        calendar="cancelled",
        pick=_free_cancellation,
    ),
    Template(
        CloseoutReported,
        N_(
            "The interpreter reports {minutes} min, {km} km, other costs {expenses_cents}: "
            "{amount_cents}.{unusual}"
        ),
        details=_reported,
        buttons=(("co:ok", N_("Confirm")), ("co:no", N_("Dispute"))),
    ),
    Template(
        CloseoutUnusual,
        N_("This report is unusual: {what}. The school is asked to check it; you can correct it."),
        details=_unusual,
        buttons=(("co:fx", N_("Correct")),),
    ),
    Template(
        CloseoutCorrected,
        N_(
            "The coordination office has corrected the report: {minutes} min, {km} km, other costs "
            "{expenses_cents}, in all {amount_cents} (before: {previous_cents}). Reason: “{reason}”"
        ),
        details=_closeout_reason,
    ),
    Template(
        CloseoutDisputed,
        N_("The school disputes the report: “{reason}”"),
        details=_closeout_reason,
        buttons=(("co:fx", N_("Correct")),),
        buttons_for=Role.COORDINATOR,
    ),
    Template(CloseoutSettled, N_("Settled: {amount_cents} will be paid to you.")),
    Template(OfferExpired, N_("This offer has expired. Thank you!")),
    Template(BookingReminder, N_("Reminder: this session starts at {starts_at}."), details=_starts_at),
    Template(
        CloseoutPrompt,
        N_("This session is over. Please report it with /report: minutes, km and other costs."),
    ),
    Template(CloseoutReminder, N_("Please report this session with /report so that it can be settled.")),
    Template(
        CloseoutAutoConfirmed,
        N_("Nobody disputed the report in time, so it counts as confirmed: {amount_cents}."),
    ),
    Template(
        AllowanceNear,
        N_("{name}: paid {paid_cents} for {year}, close to the tax-free allowance of {allowance_cents}."),
        details=_allowance_of,
    ),
    Template(
        AllowanceExceeded,
        N_("{name}: paid {paid_cents} for {year}, more than the tax-free allowance of {allowance_cents}."),
        details=_allowance_of,
    ),
    Template(BudgetAlert, N_("The budget for {year} is {threshold_percent} used. Left: {available_cents}.")),
    Template(
        DigestWeekly,
        N_(
            "Weekly digest since {since_at}:\n"
            "{bookings}, {charged_cents} charged.\n"
            "Budget left: {available_cents} ({used_percent} used).\n"
            "Unfilled requests: {unfilled}.\n"
            "Languages asked for that nobody in the pool speaks: {languages}.\n"
            "{pace}"
        ),
        details=_digest,
    ),
    Template(
        SettlementBlocked,
        N_("This session cannot be charged: the budget is short. Raise the budget, then confirm again."),
    ),
    Template(
        ChangeAsked,
        N_(
            "The school asks to change this booking:\n{changes}\n"
            "Pay about {pay_cents}. Can you keep it? Please answer by {expires_at}."
        ),
        details=_change_details,
        buttons=(("cg:ok", N_("Yes, I can")), ("cg:no", N_("No, I cannot"))),
        buttons_by_change=True,
    ),
    Template(
        ChangeConfirmed,
        N_("You have confirmed the change. /jobs shows all your jobs."),
        calendar="booked",
    ),
    Template(
        ChangeDeclined,
        N_("You have declined the change; the job is no longer yours.{compensation}"),
        details=lambda _s, t, p: {
            "compensation": " " + t.render("Compensation: {fee_cents}.", {"fee_cents": p.fee_cents})
            if p.fee_cents
            else ""
        },
        calendar="cancelled",
    ),
    Template(ChangeLapsed, N_("This change was not answered in time; the booking stays as it was.")),
    Template(
        RequestChanged,
        N_("The interpreter has confirmed the change. Reserved in the budget now: {reserved_cents}."),
        calendar="booked",
    ),
    Template(
        RequestChangeDeclined,
        N_("The interpreter cannot keep the change. {outcome}"),
        details=lambda s, t, p: {**_change_declined(s, t, p), **_reason(s, t, p)},
        calendar="cancelled",  # only when the school's event goes: a late change, or nobody else
        pick=_change_declined_why,
    ),
    Template(
        RequestChangeLapsed,
        N_(
            "The interpreter has not answered the change in time; the booking stays as it was. "
            "You can cancel it or ask for the change again under /bookings."
        ),
    ),
    Template(
        DeliveryFailed,
        N_("A notification did not reach {name}: {cause} Please get in touch with them another way."),
        details=_unreachable,
    ),
    Template(
        DueTaskFailed,
        N_(
            "Alert: {what} failed {attempts} times and was given up (last at {failed_at}, error: {error})."
            "{request}\n"
            "The bot's log has the error under “due task {task_id}”; “python -m bot doctor” checks the "
            "set-up."
        ),
        details=_due_failed,
    ),
    Template(
        InterpreterWithoutChat,
        N_(
            "{name} (interpreter {interpreter_id}) has no linked chat, so offers do not reach them: "
            "each one waits unanswered until it expires. Send them an invite code:\n{command}"
        ),
        details=_invite_for,
    ),
    Template(
        PlatformUnreachable,
        N_(
            "Alert: the bot has not reached {platform} since {since_at}. Messages wait and go out once it is "
            "back. Check the server's network; “python -m bot doctor” tests the connection."
        ),
        details=_platform,
    ),
    Template(
        PlatformReachable,
        N_(
            "{platform} is reachable again since {back_at} (away since {since_at}). "
            "Waiting messages go out now."
        ),
        details=_platform,
    ),
    Template(
        MemberDeactivated,
        N_(
            "Your access to Dolmetscherpool has ended: the coordination office of {district} has "
            "deactivated it. This bot will not answer you or write to you any more. If you have "
            "questions, please contact the coordination office."
        ),
        details=_district_of,
        pick=_deactivated,
    ),
    Template(
        PersonErased,
        N_(
            "The data of member {member_id} ({role}) was erased (Art. 17 GDPR): contact "
            "data, chat links, dialog and typed texts. Requests, reports and the budget's books stay "
            "under the number, for budget law. “python -m bot person export --member {member_id}” "
            "shows what is left."
        ),
        details=_erased_role,
    ),
)


def render_notice(session: Session, t: Translator, params: NoticeParams, role: Role) -> Reply:
    """The message for one notice, in one locale, for a member of one role."""
    return TEMPLATES[params.notice].reply(session, t, params, role)


def render(session: Session, t: Translator, template: str, params: dict[str, Any], role: Role) -> Reply:
    """The message for one outbox entry (its template key and stored params), in one locale, for a
    member of one role."""
    if template not in TEMPLATES:
        raise KeyError(f"no text for notification template {template!r}")
    return render_notice(session, t, from_json(Notice(template), params), role)
