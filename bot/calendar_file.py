"""A booking as a calendar file (.ics) that school and interpreter import into their calendars.

One booking is one event for its whole life: the UID is the request's, and every change (a new
interpreter after a give-back) or cancellation goes out with a higher SEQUENCE, so calendar
programs update or remove the event they have instead of adding another.

A file holds only what its reader needs on the day (the caller decides): the time, the language
and the number are always there; a place (`location`) and a `description` only when given.
"""

from datetime import UTC, datetime, timedelta

from bot.i18n import Translator
from bot.messages import Attachment
from db.models import Request
from services.vocabulary import Mode

UID_DOMAIN = "dolmetscherpool"


def booking_ics(
    t: Translator,
    request: Request,
    *,
    sequence: int,
    cancelled: bool,
    now: datetime,
    location: str = "",
    description: str = "",
) -> bytes:
    """The event for a booked (or, with `cancelled`, a cancelled) session; times in UTC."""
    from icalendar import Calendar, Event  # 0.1-0.4 s at start; loaded with the first booking

    calendar = Calendar()
    calendar.add("prodid", "-//Dolmetscherpool//DE")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", f"request-{request.id}@{UID_DOMAIN}")
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", request.starts_at.astimezone(UTC))
    event.add("dtend", (request.starts_at + timedelta(minutes=request.duration_minutes)).astimezone(UTC))
    event.add(
        "summary",
        t.render(
            "Interpreting: {language} (#{request_id})",
            {"language": request.language, "request_id": request.id},
        ),
    )
    if location:
        event.add("location", location)
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def where(t: Translator, request: Request) -> str:
    """Where the booked interpreter goes or dials in: the address, the school's number or the meeting
    link (the mode, when the school sends it later), nothing for a written translation."""
    if request.mode == Mode.WRITTEN.value:
        return ""
    if request.mode == Mode.IN_PERSON.value or not request.place:
        return request.place or t.render("{mode}", {"mode": request.mode})
    return t.render("{mode}: {place}", {"mode": request.mode, "place": request.place})


def calendar_attachment(
    t: Translator,
    request: Request,
    *,
    sequence: int,
    cancelled: bool,
    now: datetime,
    location: str = "",
    description: str = "",
) -> Attachment:
    """The booking's calendar file, named after the request, ready to go with a message."""
    data = booking_ics(
        t,
        request,
        sequence=sequence,
        cancelled=cancelled,
        now=now,
        location=location,
        description=description,
    )
    return Attachment(f"dolmetscheinsatz-{request.id}.ics", "text/calendar", data)
