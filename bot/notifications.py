"""What each outbox template says, in the recipient's language, with its buttons.

Details (language, time, place) are read from the database when the message is sent, so a
notification always shows the request as it is now; the outbox keeps only ids and figures.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from bot.calendar_file import calendar_attachment
from bot.conversation.messages import Choice, Reply, numbered
from bot.conversation.views import pace_text, request_line
from bot.i18n import Translator
from db.models import Offer, Request, School
from services.text import N_
from services.vocabulary import Mode, Role


@dataclass(frozen=True)
class Template:
    message: str
    buttons: tuple[tuple[str, str], ...] = ()  # (key prefix, label); the key ends in `:<id>`
    button_id: str = "request_id"
    buttons_for: Role | None = None  # only this role gets the buttons (None: everyone the message is for)
    calendar: str | None = None  # "booked" or "cancelled": the booking's calendar file goes with it


TEMPLATES: dict[str, Template] = {
    "request.received": Template(N_("Request received. We are looking for an interpreter.")),
    "request.referred": Template(
        N_("Nobody in our pool can take this. Please turn to this service:\n{referral_text}"),
    ),
    "request.awaiting_approval": Template(
        N_("The estimate of {estimate_cents} does not fit the budget; the coordination office decides."),
        buttons=(("rq:ap", N_("Approve")), ("rq:rj", N_("Reject"))),
        buttons_for=Role.COORDINATOR,
    ),
    "request.unfilled": Template(
        N_(
            "Nobody from the pool is available. The coordination office is told. "
            "Other services:\n{referral_text}"
        ),
        calendar="cancelled",  # only after a give-back: then the school has the event
    ),
    "request.unfilled_coordinator": Template(
        N_("Nobody accepted or is available for this request."),
        buttons=(("rq:ap", N_("Try again")), ("rq:rf", N_("Refer"))),
    ),
    "request.booked": Template(N_("Booked: {interpreter_name} will come.{contact}"), calendar="booked"),
    "request.interpreter_cancelled": Template(
        N_("The interpreter had to hand this job back. We are looking for someone else.")
    ),
    "request.rejected": Template(N_("The coordination office could not approve this request. {reason}")),
    "request.cancelled": Template(N_("Cancelled. Charged to the budget: {fee_cents}."), calendar="cancelled"),
    "offer.new": Template(
        N_("New job: {place}{distance}\nPay about {pay_cents}. Please answer by {expires_at}.{note}"),
        buttons=(("of:a", N_("Accept")), ("of:d", N_("Decline"))),
        button_id="offer_id",
    ),
    "offer.taken": Template(N_("Someone else has already taken this job. Thank you!")),
    "offer.withdrawn": Template(N_("This offer has been withdrawn.")),
    "offer.confirmed": Template(
        N_("You have the job: {place}. /jobs shows all your jobs."), calendar="booked"
    ),
    "booking.cancelled": Template(
        N_("The school has cancelled this job. Compensation: {fee_cents}."), calendar="cancelled"
    ),
    "closeout.reported": Template(
        N_("The interpreter reports {minutes} min, {km} km, other costs {expenses_cents}: {amount_cents}."),
        buttons=(("co:ok", N_("Confirm")), ("co:no", N_("Dispute"))),
    ),
    "closeout.disputed": Template(
        N_("The school disputes the report: “{reason}”"),
        buttons=(("co:fx", N_("Correct")),),
        buttons_for=Role.COORDINATOR,
    ),
    "closeout.settled": Template(N_("Settled: {amount_cents} will be paid to you.")),
    "offer.expired": Template(N_("This offer has expired. Thank you!")),
    "booking.reminder": Template(N_("Reminder: this session starts at {starts_at}.")),
    "closeout.prompt": Template(
        N_("This session is over. Please report it with /report: minutes, km and other costs.")
    ),
    "closeout.reminder": Template(N_("Please report this session with /report so that it can be settled.")),
    "closeout.auto_confirmed": Template(
        N_("Nobody disputed the report in time, so it counts as confirmed: {amount_cents}.")
    ),
    "allowance.near": Template(
        N_("{name}: paid {paid_cents} for {year}, close to the tax-free allowance of {allowance_cents}.")
    ),
    "allowance.exceeded": Template(
        N_("{name}: paid {paid_cents} for {year}, more than the tax-free allowance of {allowance_cents}.")
    ),
    "budget.alert": Template(
        N_("The budget for {year} is {threshold_percent} used. Left: {available_cents}.")
    ),
    "digest.weekly": Template(
        N_(
            "Weekly digest since {since_at}:\n"
            "{bookings} bookings, {charged_cents} charged.\n"
            "Budget left: {available_cents} ({used_percent} used).\n"
            "Unfilled requests: {unfilled}.\n"
            "Languages asked for that nobody in the pool speaks: {languages}.\n"
            "{pace}"
        )
    ),
    "settlement.blocked": Template(
        N_("This session cannot be charged: the budget is short. Raise the budget, then confirm again.")
    ),
}


def _contact(t: Translator, params: dict[str, Any]) -> str:
    parts = [p for p in (params.get("interpreter_phone"), params.get("interpreter_email")) if p]
    return "\n" + t.render("Contact: {contact}", {"contact": ", ".join(parts)}) if parts else ""


def _offer_details(session: Session, t: Translator, params: dict[str, Any]) -> dict[str, Any]:
    offer = session.get(Offer, params.get("offer_id"))
    request = session.get(Request, offer.request_id) if offer else None
    if offer is None or request is None:
        return {}
    school = session.get(School, request.school_id)
    remote = request.mode != Mode.IN_PERSON.value
    town = school.municipality if school else ""
    distance = "" if remote else " " + t.render("({km} km away)", {"km": round(offer.distance_m / 1000)})
    note = "\n" + t.render("Note: {note}", {"note": request.note}) if request.note else ""
    return {"place": town, "distance": distance, "pay_cents": offer.pay_cents, "note": note}


EXTRA: dict[str, Callable[[Session, Translator, dict[str, Any]], dict[str, Any]]] = {
    "request.booked": lambda _s, t, p: {"contact": _contact(t, p)},
    "offer.new": _offer_details,
    "offer.confirmed": lambda s, t, p: {"place": _place(s, p)},
    "booking.reminder": lambda s, t, p: {"starts_at": _starts_at(s, p)},
    "digest.weekly": lambda _s, t, p: {
        "languages": ", ".join(t.language(code) for code in p.get("uncovered", [])) or t.gettext("none"),
        "pace": _pace(t, p),
    },
}


def _pace(t: Translator, params: dict[str, Any]) -> str:
    """Where the year's pace leads, for the digest (nothing without a budget)."""
    if params.get("year_end_cents") is None:
        return ""
    runs_out = params.get("runs_out_on")
    return pace_text(
        t, date.fromisoformat(str(runs_out)) if runs_out else None, int(params["year_end_cents"])
    )


def _calendar_details(
    session: Session, t: Translator, request: Request, params: dict[str, Any], role: Role
) -> str:
    """What the calendar entry says besides time and place: the school, the topic, the note, and for
    the school who comes and how to reach them."""
    school = session.get(School, request.school_id)
    lines = [t.render("School: {school}", {"school": f"{school.name}, {school.address}"})] if school else []
    lines.append(t.render("Topic: {topic}", {"topic": request.topic}))
    if request.note:
        lines.append(t.render("Note: {note}", {"note": request.note}))
    if role == Role.SCHOOL and params.get("interpreter_name"):
        lines.append(
            t.render("Interpreter: {name}", {"name": params["interpreter_name"]}) + _contact(t, params)
        )
    return "\n".join(lines)


def _starts_at(session: Session, params: dict[str, Any]) -> datetime | None:
    request = session.get(Request, params.get("request_id"))
    return request.starts_at if request else None


def _place(session: Session, params: dict[str, Any]) -> str:
    request = session.get(Request, params.get("request_id"))
    return request.place if request else ""


def render(session: Session, t: Translator, template: str, params: dict[str, Any], role: Role) -> Reply:
    """The message for one outbox entry, in one locale, for a member of one role."""
    spec = TEMPLATES.get(template)
    if spec is None:
        raise KeyError(f"no text for notification template {template!r}")
    values = {"reason": "", **params}
    extra = EXTRA.get(template)
    if extra is not None:
        values.update(extra(session, t, params))
    text = t.render(spec.message, values)
    request = session.get(Request, params.get("request_id")) if "request_id" in params else None
    if request is not None:
        text = request_line(t, request) + "\n" + text
    target = params.get(spec.button_id)
    buttons = spec.buttons if spec.buttons_for in (None, role) else ()
    choices = tuple(Choice(f"{prefix}:{target}", t.gettext(label)) for prefix, label in buttons)
    attachment = None
    if spec.calendar and request is not None and params.get("calendar_sequence") is not None:
        attachment = calendar_attachment(
            t,
            request,
            sequence=int(params["calendar_sequence"]),
            cancelled=spec.calendar == "cancelled",
            now=request.updated_at,
            description=_calendar_details(session, t, request, params, role),
        )
    return Reply(numbered(text, choices), choices, attachment)
