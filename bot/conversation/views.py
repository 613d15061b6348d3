"""How requests and bookings read in chat, in the member's locale."""

from datetime import date

from bot.conversation.turn import Turn
from bot.i18n import Translator
from db.models import Interpreter, Request
from services.vocabulary import STATE_LABELS, RequestState


def request_line(t: Translator, request: Request) -> str:
    """`#12 · Arabic · in person · 3/10/26, 10:00 AM · 60 min`"""
    params = {
        "request_id": request.id,
        "language": request.language,
        "mode": request.mode,
        "starts_at": request.starts_at,
        "minutes": request.duration_minutes,
    }
    return t.render("#{request_id} · {language} · {mode} · {starts_at} · {minutes} min", params)


def status_line(turn: Turn, request: Request) -> str:
    """The request line with its state, and who comes once booked."""
    state = turn.t.gettext(STATE_LABELS[RequestState(request.state)])
    line = f"{request_line(turn.t, request)} — {state}"
    if request.interpreter_id is not None and request.state != RequestState.CANCELLED:
        interpreter = turn.session.get(Interpreter, request.interpreter_id)
        if interpreter is not None:
            line += " " + turn._("({name})", name=interpreter.name.split()[0])
    return line


def listing(turn: Turn, title: str, lines: list[str], empty: str) -> str:
    """A heading and its lines, or the sentence for an empty list."""
    if not lines:
        return turn._(empty)
    return "\n".join([turn._(title), *lines])


def pace_text(t: Translator, runs_out_on: date | None, year_end_cents: int) -> str:
    """Where the budget year's pace leads (services/budget_picture.py): the month the money runs out,
    or the year's end figure if it lasts."""
    if runs_out_on is not None:
        return t.render(
            "At the current pace the money runs out in {runs_out_month}.", {"runs_out_month": runs_out_on}
        )
    return t.render(
        "At the current pace the year ends at {year_end_cents}; the money lasts.",
        {"year_end_cents": year_end_cents},
    )
