"""How requests and bookings read in chat, in the member's locale."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from bot.conversation.answers import MAX_ID, whole_number
from bot.conversation.turn import Turn
from bot.i18n import Translator
from bot.messages import Choice
from db.models import Interpreter, Request
from services.text import N_
from services.vocabulary import STATE_LABELS, RequestState

# A page of a list: 8 lines of at most 400 characters and at most 3 buttons each keep a message far
# below Telegram's 4,096 characters and its keyboard below 100 buttons and 10 KB.
PAGE_SIZE = 8
MAX_LINE = 400


def request_line(t: Translator, request: Request) -> str:
    """`#12 · Arabic · in person · Tue 10 Mar 2026, 10:00 · 60 min`"""
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
            line += " " + turn._("({name})", name=interpreter.name)
    return line


def page_number(arg: str) -> int:
    """The page a list command names (`/requests 3`); the first when none or nonsense is given."""
    return whole_number(arg.strip(), most=MAX_ID) or 1


@dataclass(frozen=True)
class Section:
    """One heading of a list and its lines, each with the buttons that go with it."""

    title: str
    empty: str  # said on the first page instead, when the first section has no lines
    entries: list[tuple[str, Sequence[Choice]]] = field(default_factory=list)


def show_page(turn: Turn, prefix: str, sections: Sequence[Section], number: int) -> None:
    """Say page `number` of the sections' lines, PAGE_SIZE at a time, with ‹ Back and Next › buttons.

    The buttons are `{prefix}:{page}`, a button action of the role that calls this again. A page
    beyond the last shows the last.
    """
    flat = [(index, entry) for index, section in enumerate(sections) for entry in section.entries]
    pages = max(1, -(-len(flat) // PAGE_SIZE))
    number = min(max(number, 1), pages)
    shown = flat[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    parts: list[str] = []
    choices: list[Choice] = []
    for index, section in enumerate(sections):
        mine = [entry for at, entry in shown if at == index]
        lines = [line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…" for line, _ in mine]
        if lines:
            parts.append("\n".join([turn._(section.title), *lines]))
        elif index == 0 and number == 1 and not section.entries:
            parts.append(turn._(section.empty))
        choices += [choice for _, buttons in mine for choice in buttons]
    if pages > 1:
        parts.append(turn._(N_("Page {page} of {pages}"), page=number, pages=pages))
        if number > 1:
            choices.append(turn.choice(f"{prefix}:{number - 1}", "‹ Back"))
        if number < pages:
            choices.append(turn.choice(f"{prefix}:{number + 1}", "Next ›"))
    turn.say_text("\n\n".join(parts), choices)


def budget_command(district_slug: str, year: int) -> str:
    """The command line that sets a year's budget (bot/cli/main.py), with an amount to change."""
    return f"python -m bot --district {district_slug} budget set --year {year} --amount 5000"


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
