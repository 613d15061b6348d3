"""The terminal chat: try the bot on the demo data without any account.

Each invited demo person gets a terminal identity; `/as <name>` switches between them. Messages
to the person at the keyboard are printed as they are; notifications to others are printed with
whom they went to. Buttons show as the numbered options already in each message; files (calendar
entries, charts, reports) are saved in `chat-files/` and named in the message.
"""

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import Engine

from bot.conversation.router import Conversation
from bot.delivery import Deliverer
from bot.i18n import Translator
from bot.messages import Incoming, Reply
from bot.rate_limit import RateLimiter
from bot.scheduling import run_due
from db.models import District
from db.uow import UnitOfWork
from services import identities
from services.demo import create_demo, demo_people, find_demo
from services.invites import create_invite
from services.vocabulary import Role

PLATFORM = "terminal"


@dataclass(frozen=True)
class TerminalUser:
    user_id: str
    label: str


def _user_id(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def demo_users(engine: Engine, now: datetime, locale: str) -> list[TerminalUser]:
    """The demo's people as terminal users, creating the demo and linking them on first use."""
    with UnitOfWork(engine) as uow:
        district = find_demo(uow.session)
        if district is None:
            district = create_demo(uow.session, now=now, actor="terminal").district
        users = []
        for person in demo_people(uow.session, district):
            user_id = _user_id(person.label)
            if identities.find_identity(uow.session, PLATFORM, user_id) is None:
                _link(uow, district, person.role, person.for_id, person.name, user_id, now, locale)
            users.append(TerminalUser(user_id, person.label))
        uow.commit()
    return users


def _link(
    uow: UnitOfWork,
    district: District,
    role: Role,
    for_id: int,
    name: str,
    user_id: str,
    now: datetime,
    locale: str,
) -> None:
    """Invite and link in one go: on the local machine the person at the keyboard is everyone."""
    assert district.id is not None
    _, code = create_invite(
        uow.session, district_id=district.id, role=role, for_id=for_id, actor="terminal", now=now, name=name
    )
    identities.link(
        uow.session, platform=PLATFORM, user_id=user_id, chat_id=user_id, code=code, now=now, locale=locale
    )


class TerminalSender:
    """Prints notifications, marked with whom they went to."""

    max_text = 1_000_000  # a terminal takes any length

    def __init__(self, chat: "TerminalChat") -> None:
        self.chat = chat
        self._count = 0

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        self._count += 1
        self.chat.show(chat_id, self.chat.with_file(reply), edited=False)
        return str(self._count)

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        self.chat.show(chat_id, reply.text, edited=True)


class TerminalChat:
    """A read-eval-print loop over the conversation, as any of the demo's people."""

    def __init__(
        self,
        engine: Engine,
        *,
        out: TextIO,
        locale: str = "de",
        clock: Callable[[], datetime] | None = None,
        files: Path = Path("chat-files"),
    ) -> None:
        self.engine = engine
        self.files = files
        self.out = out
        self.t = Translator(locale)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.conversation = Conversation(engine, self.clock)
        self.users = demo_users(engine, self.clock(), self.t.locale)
        self.current = self.users[0]
        self.deliverer = Deliverer(
            engine, {PLATFORM: TerminalSender(self)}, limiter=RateLimiter(per_chat_gap=0), clock=self.clock
        )

    def with_file(self, reply: Reply) -> str:
        """The reply's text; a file that goes with it is saved under `files` and named below the text."""
        if reply.attachment is None:
            return reply.text
        self.files.mkdir(parents=True, exist_ok=True)
        target = self.files / Path(reply.attachment.filename).name
        # Only the user running the chat may read it: a /mydata export holds contact data.
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(reply.attachment.data)
        target.chmod(0o600)  # a file left by an earlier run keeps its mode otherwise
        return reply.text + "\n" + self.t.render("[file: {file}]", {"file": str(target)})

    def _label(self, user_id: str) -> str:
        return next((u.label for u in self.users if u.user_id == user_id), user_id)

    def show(self, chat_id: str, text: str, *, edited: bool) -> None:
        name = {"name": self._label(chat_id)}
        if edited:
            heading = self.t.render("→ to {name} (changed message):", name)
        else:
            heading = self.t.render("→ to {name}:", name)
        self.out.write(f"\n{heading}\n{text}\n")

    def intro(self) -> None:
        names = ", ".join(u.label for u in self.users)
        self.out.write(
            self.t.render(
                "Terminal chat on the demo data. You are {name}. /as NAME switches to: {names}. /quit ends.",
                {"name": self.current.label, "names": names},
            )
            + "\n"
        )

    def switch(self, wanted: str) -> None:
        needle = wanted.strip().casefold()
        found = [u for u in self.users if needle and needle in u.label.casefold()]
        if len(found) != 1:
            self.out.write(
                self.t.render(
                    "Nobody unique by that name; choose one of: {names}",
                    {"names": ", ".join(u.label for u in self.users)},
                )
                + "\n"
            )
            return
        self.current = found[0]
        self.out.write(self.t.render("You are now {name}.", {"name": self.current.label}) + "\n")

    def say(self, text: str) -> None:
        """Handle one line typed by the current user, then deliver what became due."""
        if text.strip().lower().startswith("/as "):
            self.switch(text.strip()[4:])
            return
        event = Incoming(PLATFORM, self.current.user_id, self.current.user_id, text=text)
        for reply in self.conversation.handle(event):
            self.out.write(f"\n{self.with_file(reply)}\n")
        run_due(self.engine, self.clock)  # what became due meanwhile, as the timers of the bot do
        asyncio.run(self.deliverer.run_once())

    def run(self, read: Callable[[str], str] = input) -> int:
        self.intro()
        while True:
            try:
                line = read(f"\n[{self.current.label}] > ")
            except (EOFError, KeyboardInterrupt):
                return 0
            if line.strip() in ("/quit", "/exit"):
                return 0
            if line.strip():
                self.say(line)
