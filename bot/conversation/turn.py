"""One handled event: the member (role read from the database), their dialog, and the replies so far."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.conversation.answers import Answer
from bot.i18n import Translator
from bot.messages import Attachment, Choice, Reply, numbered, with_values
from db.models import Member
from services.dialogs import Dialog
from services.text import N_
from services.vocabulary import Role

log = logging.getLogger(__name__)

STAY = "."  # an answer that replied itself and keeps the dialog at its step
OUTER = "_outer"  # in a dialog's draft: the unfinished dialog it was begun on top of (see router.py)


@dataclass
class Turn:
    session: Session
    member: Member
    t: Translator
    now: datetime
    dialog: Dialog
    replies: list[Reply] = field(default_factory=list)
    pending_files: list[tuple[int, str, str, Callable[[], bytes]]] = field(default_factory=list)
    erased: bool = False  # the person erased their data (/mydata): no chat link is left to answer on

    @property
    def role(self) -> Role:
        return Role(self.member.role)

    @property
    def district_id(self) -> int:
        return self.member.district_id

    @property
    def member_id(self) -> int:
        assert self.member.id is not None
        return self.member.id

    @property
    def actor(self) -> str:
        return f"member:{self.member.id}"

    @property
    def draft(self) -> dict[str, Any]:
        return self.dialog.draft

    def _(self, message: str, **params: Any) -> str:
        return self.t.render(message, params)

    def say(self, message: str, **params: Any) -> None:
        self.replies.append(Reply(self.t.render(message, params)))

    def say_text(self, text: str, choices: Sequence[Choice] = (), *, values: bool = False) -> None:
        """A reply already rendered; its choices are listed and become the ones a number picks.

        With `values`, the choices are quick picks of a number (`0 km`), listed without numbers
        (the step is a `Step(..., numeric=True)`, where a typed number is the value).
        """
        offered = tuple(choices)
        self.replies.append(Reply((with_values if values else numbered)(text, offered), offered))
        if offered:
            self.dialog.choices = {c.key: c.label for c in offered}

    def attach(self, attachment: Attachment) -> None:
        """Send a file right after the last reply (a chart, a report)."""
        self.replies[-1] = replace(self.replies[-1], attachment=attachment)

    def attach_rendered(self, filename: str, mime_type: str, render: Callable[[], bytes]) -> None:
        """Send a file made only after the transaction has ended, right after the last reply.

        Charts and PDFs take up to a second to draw and need nothing from the database, so they are
        drawn without holding a transaction (on SQLite, the write lock). `render` must use only data
        already read.
        """
        self.pending_files.append((len(self.replies) - 1, filename, mime_type, render))

    def render_files(self) -> list[Reply]:
        """The replies with the files of `attach_rendered` drawn and attached.

        The event is already saved: a file that cannot be drawn costs only the file, and the reply
        says so instead of being lost with it.
        """
        for index, filename, mime_type, render in self.pending_files:
            reply = self.replies[index]
            try:
                self.replies[index] = replace(reply, attachment=Attachment(filename, mime_type, render()))
            except Exception:
                log.exception("could not draw %s", filename)
                note = self.t.gettext("The file could not be made; please try again later.")
                self.replies[index] = replace(reply, text=f"{reply.text}\n\n{note}")
        self.pending_files.clear()
        return self.replies

    def ask(self, message: str, choices: Sequence[Choice] = (), **params: Any) -> None:
        self.say_text(self.t.render(message, params), choices)

    def ask_number(self, message: str, picks: Sequence[Choice] = (), **params: Any) -> None:
        """Ask for a number, with quick picks that are values (`30 min`), not numbered options."""
        self.say_text(self.t.render(message, params), picks, values=True)

    def choice(self, key: str, message: str, **params: Any) -> Choice:
        return Choice(key, self.t.render(message, params))

    def start(self, flow: str, step: str, **draft: Any) -> None:
        self.dialog.flow, self.dialog.step = flow, step
        self.dialog.draft = dict(draft)
        self.dialog.choices = {}

    def restart_draft(self, **keep: Any) -> None:
        """Begin the dialog's answers afresh with `keep`, still holding the dialog beneath it (OUTER)."""
        outer = self.dialog.draft.get(OUTER)
        self.dialog.draft = dict(keep) if outer is None else {**keep, OUTER: outer}

    def finish(self) -> None:
        self.dialog.flow, self.dialog.step = "", ""
        self.dialog.draft = {}
        self.dialog.choices = {}


@dataclass(frozen=True)
class Step:
    """A question (`ask`) and what to do with its answer (`take` returns the next step, STAY, or None).

    A `numeric` step asks for a number (minutes, km, euros): a typed number is its value, never the
    place of one of its quick picks, which `Turn.ask_number` shows as values.
    """

    ask: Callable[[Turn], None]
    take: Callable[[Turn, Answer], str | None]
    numeric: bool = False


UNFINISHED = N_("You have not finished what you began.")


@dataclass(frozen=True)
class Flow:
    """A dialog: its steps, what to call it when a command interrupts it (`unfinished`), and the
    command that takes it up again (`resume`, without the slash)."""

    role: Role | None
    steps: dict[str, Step]
    unfinished: str = UNFINISHED
    resume: str = "continue"


Command = Callable[[Turn, str], None]
Action = Callable[[Turn, int], None]


@dataclass(frozen=True)
class Feature:
    """What one role can do: commands (with help text), button actions by prefix, and dialogs."""

    role: Role | None
    commands: dict[str, tuple[Command, str]] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
