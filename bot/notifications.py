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
from bot.conversation.messages import Choice, Reply, numbered
from bot.conversation.views import pace_text, request_line
from bot.i18n import Translator
from db.models import BookingChange, Interpreter, Member, Offer, Request, School
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
    CloseoutDisputed,
    CloseoutPrompt,
    CloseoutReminder,
    CloseoutReported,
    CloseoutSettled,
    DeliveryFailed,
    DigestWeekly,
    Notice,
    NoticeParams,
    OfferConfirmed,
    OfferExpired,
    OfferNew,
    OfferTaken,
    OfferWithdrawn,
    RequestAwaitingApproval,
    RequestBooked,
    RequestCancelled,
    RequestChanged,
    RequestChangeDeclined,
    RequestChangeLapsed,
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
from services.text import N_
from services.vocabulary import Mode, Role

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
    calendar: str | None = None  # "booked" or "cancelled": the booking's calendar file goes with it

    def reply(self, session: Session, t: Translator, params: P, role: Role) -> Reply:
        """The message for these params, in one locale, for a member of one role."""
        values: Values = {f.name: getattr(params, f.name) for f in fields(params)}
        if self.details is not None:
            values.update(self.details(session, t, params))
        text = t.render(self.message, values)
        request = session.get(Request, params.request_id) if isinstance(params, AboutRequest) else None
        if request is not None:
            text = request_line(t, request) + "\n" + text
        choices: tuple[Choice, ...] = ()
        if self.buttons_for in (None, role) and isinstance(params, AboutRequest):
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


def _contact(t: Translator, params: RequestBooked) -> str:
    parts = [p for p in (params.interpreter_phone, params.interpreter_email) if p]
    return "\n" + t.render("Contact: {contact}", {"contact": ", ".join(parts)}) if parts else ""


def _offer_details(session: Session, t: Translator, params: OfferNew) -> Values:
    offer = session.get(Offer, params.offer_id)
    request = session.get(Request, offer.request_id) if offer else None
    if offer is None or request is None:
        return {}
    school = session.get(School, request.school_id)
    remote = request.mode != Mode.IN_PERSON.value
    town = school.municipality if school else ""
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


def _digest(_session: Session, t: Translator, params: DigestWeekly) -> Values:
    languages = ", ".join(t.language(code) for code in params.uncovered) or t.gettext("none")
    # Where the year's pace leads (nothing without a budget).
    pace = "" if params.year_end_cents is None else pace_text(t, params.runs_out_on, params.year_end_cents)
    return {"languages": languages, "pace": pace}


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
    if role == Role.SCHOOL and isinstance(params, RequestBooked) and params.interpreter_name:
        lines.append(t.render("Interpreter: {name}", {"name": params.interpreter_name}) + _contact(t, params))
    return "\n".join(lines)


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


def _change_declined(_session: Session, t: Translator, params: RequestChangeDeclined) -> Values:
    if params.new_request_id is None:
        outcome = t.gettext("We are looking for another interpreter for the new time.")
    else:
        outcome = t.render(
            "As a late change, it counts as a late cancellation: {fee_cents} is charged to the budget. "
            "The changed session goes to the pool as request #{new_request_id}.",
            {"fee_cents": params.fee_cents, "new_request_id": params.new_request_id},
        )
    return {"outcome": outcome}


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
        buttons=(("rq:ap", N_("Approve")), ("rq:rj", N_("Reject"))),
        buttons_for=Role.COORDINATOR,
    ),
    Template(
        RequestUnfilled,
        N_(
            "Nobody from the pool is available. The coordination office is told. "
            "Other services:\n{referral_text}"
        ),
        calendar="cancelled",  # only after a give-back: then the school has the event
    ),
    Template(
        RequestUnfilledCoordinator,
        N_("Nobody accepted or is available for this request."),
        buttons=(("rq:ap", N_("Try again")), ("rq:rf", N_("Refer"))),
    ),
    Template(
        RequestBooked,
        N_("Booked: {interpreter_name} will come.{contact}"),
        details=lambda _s, t, p: {"contact": _contact(t, p)},
        calendar="booked",
    ),
    Template(
        RequestInterpreterCancelled,
        N_("The interpreter had to hand this job back. We are looking for someone else."),
    ),
    Template(RequestRejected, N_("The coordination office could not approve this request. {reason}")),
    Template(RequestCancelled, N_("Cancelled. Charged to the budget: {fee_cents}."), calendar="cancelled"),
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
    ),
    Template(
        CloseoutReported,
        N_("The interpreter reports {minutes} min, {km} km, other costs {expenses_cents}: {amount_cents}."),
        buttons=(("co:ok", N_("Confirm")), ("co:no", N_("Dispute"))),
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
            "{bookings} bookings, {charged_cents} charged.\n"
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
        calendar="cancelled",  # only for a late change: that booking is cancelled
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
