"""What each notice says, in the recipient's language, with its buttons.

Every `Notice` has one `Template`, made for its params class (`services.notices`): its placeholders are
the params' fields and what its `details` reads from the database, typed for that class. Details
(language, time, place) are read when the message is sent, so a notification always shows the request
as it is now; the outbox keeps only ids and figures.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from bot.calendar_file import calendar_attachment
from bot.conversation.plausibility import unusual_text
from bot.conversation.views import budget_command, pace_text, request_line
from bot.i18n import Translator
from bot.messages import Choice, Reply, numbered
from db.models import BookingChange, District, Interpreter, Member, Offer, Request, School
from services import ledger
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
    Notice,
    NoticeParams,
    OfferConfirmed,
    OfferExpired,
    OfferNew,
    OfferTaken,
    OfferWithdrawn,
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
        if self.details is not None:
            values.update(self.details(session, t, params))
        message = self.pick(params, role) if self.pick is not None else None
        text = t.render(message or self.message, values)
        request = session.get(Request, params.request_id) if isinstance(params, AboutRequest) else None
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
            attachment = calendar_attachment(
                t,
                request,
                sequence=params.calendar_sequence,
                cancelled=self.calendar == "cancelled",
                now=request.updated_at,
                description=_calendar_details(session, t, request, params, role),
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
    note = "\n" + t.render("Note: {note}", {"note": request.note}) if request.note else ""
    return {"place": town, "distance": distance, "pay_cents": offer.pay_cents, "note": note}


def _place(session: Session, _t: Translator, params: AboutRequest) -> Values:
    request = session.get(Request, params.request_id)
    return {"place": request.place if request else ""}


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
) -> str:
    """What the calendar entry says besides time and place: the school, the topic, the note, and for
    the school who comes and how to reach them."""
    school = session.get(School, request.school_id)
    lines = [t.render("School: {school}", {"school": f"{school.name}, {school.address}"})] if school else []
    lines.append(t.render("Topic: {topic}", {"topic": request.topic}))
    if request.note:
        lines.append(t.render("Note: {note}", {"note": request.note}))
    if role == Role.SCHOOL:
        lines += _who_comes(session, t, request, params)
    return "\n".join(lines)


def _who_comes(session: Session, t: Translator, request: Request, params: WithCalendar) -> list[str]:
    """The booked interpreter and how to reach them, in every calendar entry of a booked session (a
    changed booking's file replaces the whole event)."""
    if isinstance(params, RequestBooked):
        name, phone, email = params.interpreter_name, params.interpreter_phone, params.interpreter_email
    elif request.state == RequestState.BOOKED.value and request.interpreter_id is not None:
        interpreter = session.get(Interpreter, request.interpreter_id)
        if interpreter is None:
            return []
        name, phone, email = interpreter.name, interpreter.phone, interpreter.email
    else:
        return []
    return [t.render("Interpreter: {name}", {"name": name}) + _contact(t, phone, email)] if name else []


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


def _invite_for(session: Session, _t: Translator, params: InterpreterWithoutChat) -> Values:
    """The command that makes an invite code for the interpreter, with the district named."""
    interpreter = session.get(Interpreter, params.interpreter_id)
    district = session.get(District, interpreter.district_id) if interpreter else None
    slug = district.slug if district else "SLUG"
    command = (
        f"python -m bot --district {slug} invite create --role interpreter --for {params.interpreter_id}"
    )
    return {"command": command}


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
    if params.reason:
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
    """Why nobody takes the request, and in which other mode someone could."""
    request = session.get(Request, params.request_id)
    mode = request.mode if request is not None else Mode.IN_PERSON.value
    why = _UNFILLED_WHY.get(params.reason or "")
    other = params.other_mode if params.other_mode in {m.value for m in Mode} else None
    return {
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
    if params.interpreter_name is not None and params.change_declined:
        return N_(
            "{interpreter_name} cannot keep the school's change of this booking: “{handed_back_reason}”. "
            "Nobody else in the pool can take it at the new time.{alternative}"
        )
    if params.interpreter_name is not None:
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
        details=lambda _s, t, p: {"contact": _contact(t, p.interpreter_phone, p.interpreter_email)},
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
        pick=_handed_back,
        # Held for the budget: this one message is the coordinators' only one, so it carries the decision.
        buttons=(("rq:ap", N_("Approve")), ("rq:rj", N_("Reject"))),
        buttons_if=lambda p: p.outcome == RequestState.AWAITING_APPROVAL.value,
    ),
    Template(
        RequestRejected,
        N_("The coordination office could not approve this request. Their reason: “{reason}”"),
    ),
    Template(
        RequestCancelled,
        N_("Cancelled. Charged to the budget: {fee_cents}."),
        calendar="cancelled",
        pick=_free_cancellation,
    ),
    Template(
        OfferNew,
        N_("New job: {place}{distance}\nPay about {pay_cents}. Please answer by {expires_at}.{note}"),
        details=_offer_details,
        buttons=(("of:a", N_("Accept")), ("of:d", N_("Decline"))),
        buttons_by_offer=True,
    ),
    Template(OfferTaken, N_("Someone else has already taken this job. Thank you!")),
    Template(OfferWithdrawn, N_("This offer has been withdrawn.")),
    Template(
        OfferConfirmed,
        N_("You have the job: {place}. /jobs shows all your jobs."),
        details=_place,
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
    ),
    Template(
        CloseoutDisputed,
        N_("The school disputes the report: “{reason}”"),
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
    ),
    Template(
        AllowanceExceeded,
        N_("{name}: paid {paid_cents} for {year}, more than the tax-free allowance of {allowance_cents}."),
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
        details=_change_declined,
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
